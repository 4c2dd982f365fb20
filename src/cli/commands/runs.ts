import { VeritrailError } from '../../core/errors.js';
import { resolveHome } from '../../local/home.js';
import { openLocalRuntime } from '../../local/runtime.js';
import type { RunRecord } from '../../ports.js';
import { parseCli, usageError } from '../args.js';
import { type CliIo, EXIT } from '../io.js';

export const summary = 'list recorded runs, or show one with its steps';

const USAGE = `usage: veritrail runs list [--pipeline <name>] [--limit <n>] [--json] [--home <dir>]
       veritrail runs show <runId> [--json] [--home <dir>]`;

export async function run(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCli(
    args,
    {
      json: { type: 'boolean' },
      home: { type: 'string' },
      pipeline: { type: 'string' },
      limit: { type: 'string' },
      stage: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    USAGE,
  );
  if (values.help) {
    io.out(USAGE);
    return EXIT.OK;
  }
  const [sub, id, ...extra] = positionals;
  if (sub !== 'list' && sub !== 'show') throw usageError('say "runs list" or "runs show <runId>"', USAGE);
  if (sub === 'show' && (!id || extra.length > 0))
    throw usageError('runs show takes exactly one run id', USAGE);
  if (sub === 'list' && id) throw usageError('runs list takes no run id', USAGE);
  const limit = values.limit === undefined ? 50 : Number(values.limit);
  if (!Number.isInteger(limit) || limit < 1)
    throw usageError('--limit must be a positive whole number', USAGE);
  if (values.stage) {
    const { openDeployedRuns } = await import('../../aws/deployed.js');
    const store = await openDeployedRuns(values.stage, io.env);
    return sub === 'list'
      ? printList(
          io,
          await store.list({ limit, ...(values.pipeline ? { pipeline: values.pipeline } : {}) }),
          values.json,
        )
      : printShow(io, await store.get(id as string), id as string, values.json);
  }
  const rt = await openLocalRuntime(resolveHome(values.home, io.env, io.cwd));
  try {
    if (sub === 'list') {
      return printList(
        io,
        await rt.runs.list({ limit, ...(values.pipeline ? { pipeline: values.pipeline } : {}) }),
        values.json,
      );
    }
    return printShow(io, await rt.runs.get(id as string), id as string, values.json);
  } finally {
    await rt.close();
  }
}

function printList(io: CliIo, runs: RunRecord[], json: boolean | undefined): number {
  if (json) {
    io.out(
      JSON.stringify(
        runs.map((r) => ({
          runId: r.runId,
          pipeline: r.pipeline,
          status: r.status,
          createdAt: r.createdAt,
          updatedAt: r.updatedAt,
          dataset: r.dataset.uri,
          ...(r.error ? { error: r.error } : {}),
        })),
      ),
    );
    return EXIT.OK;
  }
  if (runs.length === 0) {
    io.out('no runs recorded yet; start one with: npm start');
    return EXIT.OK;
  }
  io.out(`${'RUN'.padEnd(30)}${'STATUS'.padEnd(11)}${'PIPELINE'.padEnd(24)}CREATED`);
  for (const r of runs)
    io.out(`${r.runId.padEnd(30)}${r.status.padEnd(11)}${r.pipeline.padEnd(24)}${r.createdAt}`);
  return EXIT.OK;
}

function printShow(io: CliIo, r: RunRecord | undefined, id: string, json: boolean | undefined): number {
  if (!r)
    throw new VeritrailError(
      'RUN_NOT_FOUND',
      `no run ${id} is recorded here; list runs with: veritrail runs list`,
    );
  if (json) {
    io.out(JSON.stringify(r));
    return EXIT.OK;
  }
  const f = r.facts as Record<string, unknown>;
  const lines = [
    `run ${r.runId}  ${r.status}`,
    `  pipeline     ${r.pipeline} (${r.pipelineDigest})`,
    `  trigger      ${r.trigger}`,
    `  dataset      ${r.dataset.uri}`,
    `  created      ${r.createdAt}`,
    `  updated      ${r.updatedAt}`,
  ];
  for (const [k, label] of [
    ['rawDigest', 'raw data'],
    ['processedDigest', 'processed'],
    ['modelDigest', 'model'],
  ] as const) {
    if (typeof f[k] === 'string') lines.push(`  ${label.padEnd(13)}${f[k]}`);
  }
  const gate = f.gate as { decision?: string; reasons?: string[] } | undefined;
  if (gate?.decision) {
    lines.push(`  gate         ${gate.decision}`);
    for (const reason of gate.reasons ?? []) lines.push(`               - ${reason}`);
  }
  if (r.error) lines.push(`  error        ${r.error.code}: ${r.error.message}`);
  lines.push('  steps');
  for (const s of r.steps) {
    const ms = s.endedAt ? Date.parse(s.endedAt) - Date.parse(s.startedAt) : undefined;
    lines.push(
      `    ${s.name.padEnd(14)}${s.status.padEnd(10)}${s.startedAt}  ${ms === undefined ? '' : `${(ms / 1000).toFixed(2)} s`}`,
    );
    for (const [role, d] of Object.entries(s.digests ?? {})) lines.push(`      ${role.padEnd(16)}${d}`);
    if (s.error) lines.push(`      error           ${s.error.code}: ${s.error.message}`);
  }
  io.out(lines.join('\n'));
  return EXIT.OK;
}
