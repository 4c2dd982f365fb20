import { join } from 'node:path';
import { signedOutcomeOfRun } from '../../app/signed-truth.js';
import { loadPipeline } from '../../cas.js';
import { VeritrailError } from '../../core/errors.js';
import { factsOf } from '../../core/run-facts.js';
import { DEFAULT_UNIT, parseUnitName } from '../../core/unit.js';
import { assertHomeUsable, assertUnitKnown, homePaths, resolveHome } from '../../local/home.js';
import { openLocalRuntime } from '../../local/runtime.js';
import { forRun } from '../../local/units.js';
import type { RunRecord } from '../../ports.js';
import { parseCli, usageError } from '../args.js';
import { type CliIo, EXIT } from '../io.js';

export const summary = 'list recorded runs, show one, or compare two';

const USAGE = `usage: veritrail runs list [--pipeline <name>] [--unit <unit>] [--limit <n>] [--json] [--home <dir> | --stage <stage>]
       veritrail runs show <runId> [--json] [--home <dir> | --stage <stage>]
       veritrail runs compare <runA> <runB> [--json] [--home <dir> | --stage <stage>]
       veritrail runs retry <runId> --pipeline <definition.json> [--json] [--home <dir>]

  list      accuracy, the worst fairness figure (the lowest disparate impact, four-fifths
            rule) and the gate decision of each run, with its business unit; --unit keeps
            one unit's runs (docs/units.md)
  show      metrics, small-group warnings, hyperparameters, steps, and where the training log is
  compare   what changed between two runs: digests, definition, hyperparameters, metrics, decision
  retry     run a FAILED run again as its next attempt (<runId>-a<n>, same trigger identity)`;

/** Where a run's figures are: `facts.fairness` headline, `facts.gate`, `facts.fairnessWarnings`. */
interface Figures {
  accuracy?: number;
  /** The lowest disparate impact ratio over the protected attributes, with its attribute. */
  worst?: { attribute: string; disparateImpact: number };
  decision?: string;
}

function figuresOf(r: RunRecord): Figures {
  const facts = factsOf(r);
  const f = facts.fairness ?? {};
  const out: Figures = {};
  if (typeof f.accuracy === 'number') out.accuracy = f.accuracy;
  for (const [k, v] of Object.entries(f)) {
    if (!k.endsWith('.disparateImpact') || typeof v !== 'number') continue;
    // A ratio of 1.25 is as far from parity as 0.8: compare min(DI, 1/DI).
    const far = v > 1 ? 1 / v : v;
    const cur = out.worst
      ? Math.min(out.worst.disparateImpact, 1 / out.worst.disparateImpact)
      : Number.POSITIVE_INFINITY;
    if (far < cur) out.worst = { attribute: k.slice(0, -'.disparateImpact'.length), disparateImpact: v };
  }
  const decision = facts.gate?.decision;
  if (decision !== undefined) out.decision = decision;
  return out;
}

const fmt = (v: number | undefined) => (v === undefined ? '-' : v.toFixed(3));

interface Source {
  list(o: { limit: number; pipeline?: string; unit?: string }): Promise<RunRecord[]>;
  get(id: string): Promise<RunRecord | undefined>;
  /** The pipeline definition a run used (hyperparameters), when this source can read it. */
  hyperparameters(r: RunRecord): Promise<Record<string, unknown> | undefined>;
  /** Where the training job's log is. */
  trainingLog(r: RunRecord): string | undefined;
}

export async function run(args: string[], io: CliIo): Promise<number> {
  // `runs retry` executes a run: it lives with `run` (src/cli/commands/run.ts).
  if (args[0] === 'retry') return (await import('./run.js')).retry(args.slice(1), io);
  const { values, positionals } = parseCli(
    args,
    {
      json: { type: 'boolean' },
      home: { type: 'string' },
      pipeline: { type: 'string' },
      unit: { type: 'string' },
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
  const [sub, ...ids] = positionals;
  if (sub !== 'list' && sub !== 'show' && sub !== 'compare')
    throw usageError('say "runs list", "runs show <runId>" or "runs compare <runA> <runB>"', USAGE);
  if (sub === 'show' && ids.length !== 1) throw usageError('runs show takes exactly one run id', USAGE);
  if (sub === 'compare' && ids.length !== 2)
    throw usageError('runs compare takes exactly two run ids', USAGE);
  if (sub === 'list' && ids.length > 0) throw usageError('runs list takes no run id', USAGE);
  const limit = values.limit === undefined ? 50 : Number(values.limit);
  if (!Number.isInteger(limit) || limit < 1)
    throw usageError('--limit must be a positive whole number', USAGE);
  if (values.unit !== undefined && sub !== 'list') throw usageError('--unit goes with runs list', USAGE);
  const unit = values.unit === undefined ? undefined : parseUnitName(values.unit);

  const go = async (src: Source) => {
    if (sub === 'list')
      return printList(
        io,
        await src.list({
          limit,
          ...(values.pipeline ? { pipeline: values.pipeline } : {}),
          ...(unit !== undefined ? { unit } : {}),
        }),
        values.json,
      );
    const found = await Promise.all(ids.map((id) => src.get(id)));
    found.forEach((r, i) => {
      if (!r)
        throw new VeritrailError(
          'RUN_NOT_FOUND',
          `no run ${ids[i]} is recorded here; list runs with: veritrail runs list`,
        );
    });
    const runs = found as RunRecord[];
    if (sub === 'show') return printShow(io, runs[0] as RunRecord, src, values.json);
    return printCompare(io, runs[0] as RunRecord, runs[1] as RunRecord, src, values.json);
  };

  if (values.stage) {
    const { openDeployedRuns } = await import('../../aws/deployed.js');
    const store = await openDeployedRuns(values.stage, io.env);
    return go({
      list: (o) => store.list(o),
      get: (id) => store.get(id),
      // The deployed store reads the run table only; the definition is in the artifacts bucket.
      hyperparameters: async () => undefined,
      trainingLog: (r) => {
        const job = factsOf(r).trainingJob;
        return job === undefined
          ? undefined
          : `CloudWatch Logs: log group /aws/sagemaker/TrainingJobs, streams ${job}/algo-*`;
      },
    });
  }
  const home = resolveHome(values.home, io.env, io.cwd);
  // Reading runs never creates a state dir: a wrong --home is a usage error, not an empty list.
  if (unit !== undefined) {
    await assertHomeUsable(home, { mustExist: true });
    await assertUnitKnown(home, unit);
  }
  const rt = await openLocalRuntime(home, { mustExist: true });
  try {
    return await go({
      list: (o) => rt.runs.list(o),
      // A finished run's status is what its signed gate statement says: a record that disagrees is
      // reported as STATE_TAMPERED, never printed as if true (issue 11 item 6). Signed with the key
      // of the run's unit.
      get: async (id) => {
        const run = await rt.runs.get(id);
        if (run && (run.status === 'SUCCEEDED' || run.status === 'REJECTED'))
          await signedOutcomeOfRun(rt.objects, await (await forRun(rt, run)).signer.publicKeyPem(), run);
        return run;
      },
      hyperparameters: async (r) => {
        try {
          return (await loadPipeline(rt.objects, r.pipelineDigest)).hyperparameters;
        } catch {
          return undefined;
        }
      },
      trainingLog: (r) => {
        const job = factsOf(r).trainingJob;
        return job === undefined ? undefined : join(homePaths(home).jobs, job, 'training.log');
      },
    });
  } finally {
    await rt.close();
  }
}

function printList(io: CliIo, runs: RunRecord[], json: boolean | undefined): number {
  if (json) {
    io.out(
      JSON.stringify(
        runs.map((r) => {
          const fig = figuresOf(r);
          return {
            runId: r.runId,
            pipeline: r.pipeline,
            unit: r.unit ?? DEFAULT_UNIT,
            status: r.status,
            createdAt: r.createdAt,
            updatedAt: r.updatedAt,
            dataset: r.dataset.uri,
            ...(fig.accuracy !== undefined ? { accuracy: fig.accuracy } : {}),
            ...(fig.worst ? { worstFairness: { metric: 'disparateImpact', ...fig.worst } } : {}),
            ...(fig.decision ? { gate: fig.decision } : {}),
            ...(r.error ? { error: r.error } : {}),
          };
        }),
      ),
    );
    return EXIT.OK;
  }
  if (runs.length === 0) {
    io.out('no runs recorded yet; start one with: npm start');
    return EXIT.OK;
  }
  const head = `${'RUN'.padEnd(30)}${'STATUS'.padEnd(11)}${'PIPELINE'.padEnd(20)}${'ACCURACY'.padEnd(10)}${'WORST DI'.padEnd(22)}${'GATE'.padEnd(6)}${'UNIT'.padEnd(12)}CREATED`;
  const lines = [head];
  for (const r of runs) {
    const fig = figuresOf(r);
    const worst = fig.worst ? `${fmt(fig.worst.disparateImpact)} (${fig.worst.attribute})` : '-';
    lines.push(
      `${r.runId.padEnd(30)}${r.status.padEnd(11)}${r.pipeline.padEnd(20)}${fmt(fig.accuracy).padEnd(10)}${worst.padEnd(22)}${(fig.decision ?? '-').padEnd(6)}${(r.unit ?? DEFAULT_UNIT).padEnd(12)}${r.createdAt}`,
    );
  }
  lines.push(
    '',
    'WORST DI: the disparate impact furthest from parity over the protected attributes (four-fifths rule: 0.8-1.25)',
  );
  io.out(lines.join('\n'));
  return EXIT.OK;
}

/** Small-group warnings: the groups under the pipeline's minimum size, as Evaluate recorded them. */
function smallGroups(r: RunRecord): string[] {
  return (factsOf(r).fairnessWarnings ?? []).filter((x) => x.startsWith('group '));
}

async function printShow(io: CliIo, r: RunRecord, src: Source, json: boolean | undefined): Promise<number> {
  if (json) {
    io.out(JSON.stringify(r));
    return EXIT.OK;
  }
  const f = r.facts as Record<string, unknown>;
  const lines = [
    `run ${r.runId}  ${r.status}`,
    `  pipeline     ${r.pipeline} (${r.pipelineDigest})`,
    `  unit         ${r.unit ?? DEFAULT_UNIT}`,
    `  trigger      ${r.trigger}`,
    `  dataset      ${r.dataset.uri}`,
    `  created      ${r.createdAt}`,
    `  updated      ${r.updatedAt}`,
  ];
  for (const [k, label] of [
    ['rawDigest', 'raw data'],
    ['processedDigest', 'processed'],
    ['codeDigest', 'code'],
    ['modelDigest', 'model'],
  ] as const) {
    if (typeof f[k] === 'string') lines.push(`  ${label.padEnd(13)}${f[k]}`);
  }
  const fairness = (f.fairness ?? {}) as Record<string, unknown>;
  const metrics = Object.entries(fairness).filter(([, v]) => typeof v === 'number');
  if (metrics.length) {
    lines.push('  metrics (held-out set)');
    for (const [k, v] of metrics)
      lines.push(`    ${k.padEnd(40)}${k === 'rows' ? String(v) : fmt(v as number)}`);
  }
  const small = smallGroups(r);
  if (small.length) {
    lines.push('  warnings (small groups: their figures are not reliable)');
    for (const w of small) lines.push(`    - ${w}`);
  }
  const hp = await src.hyperparameters(r);
  if (hp) {
    lines.push('  hyperparameters');
    for (const [k, v] of Object.entries(hp).sort(([a], [b]) => (a < b ? -1 : 1)))
      lines.push(`    ${k.padEnd(20)}${String(v)}`);
  }
  const log = src.trainingLog(r);
  if (log) lines.push(`  training log ${log}`);
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

interface Change {
  what: string;
  a: string;
  b: string;
}

async function printCompare(
  io: CliIo,
  a: RunRecord,
  b: RunRecord,
  src: Source,
  json: boolean | undefined,
): Promise<number> {
  const rows: Change[] = [];
  const add = (what: string, x: unknown, y: unknown) => {
    const sx = x === undefined ? '-' : typeof x === 'number' ? fmt(x) : String(x);
    const sy = y === undefined ? '-' : typeof y === 'number' ? fmt(y) : String(y);
    rows.push({ what, a: sx, b: sy });
  };
  add('status', a.status, b.status);
  add('unit', a.unit ?? DEFAULT_UNIT, b.unit ?? DEFAULT_UNIT);
  add('pipeline definition', a.pipelineDigest, b.pipelineDigest);
  const [xa, xb] = [factsOf(a), factsOf(b)];
  for (const k of ['rawDigest', 'processedDigest', 'codeDigest', 'modelDigest'] as const)
    add(k.replace('Digest', ' digest'), xa[k], xb[k]);
  const [ha, hb] = await Promise.all([src.hyperparameters(a), src.hyperparameters(b)]);
  for (const k of [...new Set([...Object.keys(ha ?? {}), ...Object.keys(hb ?? {})])].sort())
    add(`hyperparameter ${k}`, ha?.[k], hb?.[k]);
  const fa = xa.fairness ?? {};
  const fb = xb.fairness ?? {};
  for (const k of [...new Set([...Object.keys(fa), ...Object.keys(fb)])].sort())
    add(`metric ${k}`, fa[k], fb[k]);
  add('gate decision', figuresOf(a).decision, figuresOf(b).decision);
  const ra = (xa.gate?.reasons ?? []).join('; ');
  const rb = (xb.gate?.reasons ?? []).join('; ');
  add('gate reasons', ra || undefined, rb || undefined);
  const changed = rows.filter((r) => r.a !== r.b);
  if (json) {
    io.out(
      JSON.stringify({
        a: a.runId,
        b: b.runId,
        changed,
        same: rows.filter((r) => r.a === r.b).map((r) => r.what),
      }),
    );
    return EXIT.OK;
  }
  const lines = [`compare ${a.runId} (a) with ${b.runId} (b)`];
  if (changed.length === 0) lines.push('  nothing differs');
  for (const c of changed) lines.push(`  ${c.what}`, `    a  ${c.a}`, `    b  ${c.b}`);
  const same = rows.length - changed.length;
  lines.push('', `${changed.length} change(s); ${same} item(s) the same`);
  io.out(lines.join('\n'));
  return EXIT.OK;
}
