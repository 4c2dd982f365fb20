import type { Digest } from '../../core/digest.js';
import { VeritrailError } from '../../core/errors.js';
import type { RunStatus } from '../../core/run.js';
import { DEFAULT_UNIT } from '../../core/unit.js';
import { FsDatasetSource, toFileUri } from '../../local/fs-dataset-source.js';
import { assertHomeUsable, resolveHome } from '../../local/home.js';
import { attemptOf, retryRun } from '../../local/retry.js';
import { mainPathStates, type ProgressEvent } from '../../local/runner.js';
import { openLocalRuntime } from '../../local/runtime.js';
import { loadPipelineFile, preflightDataset, preflightPipeline, runOnce } from '../../local/start-run.js';
import { parseCli, usageError } from '../args.js';
import { type CliIo, EXIT } from '../io.js';
import { type RunSummary, runSummary } from '../summary.js';

export const summary = 'run a whole pipeline locally and print a summary';

const USAGE = 'usage: veritrail run <dataset> --pipeline <definition.json> [--json] [--home <dir>]';

export async function run(
  args: string[],
  io: CliIo,
  options: { signal?: AbortSignal } = {},
): Promise<number> {
  const { values, positionals } = parseCli(
    args,
    {
      pipeline: { type: 'string' },
      json: { type: 'boolean' },
      home: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    USAGE,
  );
  if (values.help) {
    io.out(USAGE);
    return EXIT.OK;
  }
  if (positionals.length !== 1)
    throw usageError('name exactly one dataset (a CSV file or a folder of CSV files)', USAGE);
  if (!values.pipeline) throw usageError('--pipeline <definition.json> is required', USAGE);
  const datasetPath = positionals[0] as string;

  // Everything a user can get wrong is checked before a run exists: exit 2, one line, nothing recorded.
  const home = resolveHome(values.home, io.env, io.cwd);
  let pipeline: Awaited<ReturnType<typeof loadPipelineFile>>;
  const uri = toFileUri(datasetPath, io.cwd);
  let digest: Digest;
  try {
    await assertHomeUsable(home);
    pipeline = await loadPipelineFile(values.pipeline, io.cwd);
    await preflightPipeline(pipeline);
    digest = await preflightDataset(new FsDatasetSource(), uri, pipeline.def);
  } catch (e) {
    if (e instanceof VeritrailError) {
      io.err(`veritrail run: ${e.message}`);
      return EXIT.USAGE;
    }
    throw e;
  }

  // SIGINT/SIGTERM stop the run: it ends FAILED (CANCELLED), recorded, and the trainer is killed.
  const stop = new AbortController();
  const onInt = () => stop.abort('SIGINT');
  const onTerm = () => stop.abort('SIGTERM');
  const signal = options.signal ?? stop.signal;
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  const rt = await openLocalRuntime(home).catch((e: unknown) => {
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
    throw e;
  });
  try {
    io.err(`veritrail: pipeline ${pipeline.def.name} on ${datasetPath}`);
    const t0 = Date.now();
    const { outcome, execution } = await runOnce(rt, pipeline, { uri, digest }, progressPrinter(io), {
      signal,
    });
    if (!execution) {
      const why = outcome.status === 'rejected' ? outcome.error.message : `the start was ${outcome.status}`;
      io.err(`veritrail run: ${why}`);
      return outcome.status === 'rejected' ? EXIT.USAGE : EXIT.FAILED;
    }
    const record = await rt.runs.get(execution.runId);
    const result = runSummary(rt.home, record, execution.state?.results, execution.error);
    if (values.json) {
      io.out(JSON.stringify(result));
    } else {
      io.err(`finished in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
      io.out(formatSummary(result, home, record?.unit));
    }
    if (signal.aborted && result.error?.code === 'CANCELLED')
      return signal.reason === 'SIGTERM' ? EXIT.TERMINATED : EXIT.INTERRUPTED;
    return exitCodeOf(result.status);
  } finally {
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
    await rt.close();
  }
}

const RETRY_USAGE =
  'usage: veritrail runs retry <runId> --pipeline <definition.json> [--json] [--home <dir>]';

/**
 * `veritrail runs retry <runId>`: the FAILED run again, as attempt n of the same trigger
 * (src/local/retry.ts), executed here with the same progress, summary and signals as `run`.
 */
export async function retry(
  args: string[],
  io: CliIo,
  options: { signal?: AbortSignal } = {},
): Promise<number> {
  const { values, positionals } = parseCli(
    args,
    {
      pipeline: { type: 'string' },
      json: { type: 'boolean' },
      home: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    RETRY_USAGE,
  );
  if (values.help) {
    io.out(RETRY_USAGE);
    return EXIT.OK;
  }
  if (positionals.length !== 1) throw usageError('name exactly one run id', RETRY_USAGE);
  if (!values.pipeline)
    throw usageError('--pipeline <definition.json> (the one the run used) is required', RETRY_USAGE);
  const runId = positionals[0] as string;
  const home = resolveHome(values.home, io.env, io.cwd);
  let pipeline: Awaited<ReturnType<typeof loadPipelineFile>>;
  try {
    await assertHomeUsable(home, { mustExist: true });
    pipeline = await loadPipelineFile(values.pipeline, io.cwd);
    await preflightPipeline(pipeline);
  } catch (e) {
    if (e instanceof VeritrailError) {
      io.err(`veritrail runs retry: ${e.message}`);
      return EXIT.USAGE;
    }
    throw e;
  }
  const stop = new AbortController();
  const onInt = () => stop.abort('SIGINT');
  const onTerm = () => stop.abort('SIGTERM');
  const signal = options.signal ?? stop.signal;
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  const rt = await openLocalRuntime(home).catch((e: unknown) => {
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
    throw e;
  });
  try {
    const first = await rt.runs.get(runId);
    let digest: Digest | undefined;
    if (first?.dataset.uri.startsWith('file://')) {
      // The same bytes as the first run, or it is not a retry (checked by retryRun).
      try {
        digest = await preflightDataset(new FsDatasetSource(), first.dataset.uri, pipeline.def);
      } catch (e) {
        if (e instanceof VeritrailError) {
          io.err(`veritrail runs retry: ${e.message}`);
          return EXIT.USAGE;
        }
        throw e;
      }
    }
    let result: Awaited<ReturnType<typeof retryRun>>;
    try {
      io.err(`veritrail: retrying run ${runId} of ${pipeline.def.name}`);
      result = await retryRun(rt, runId, pipeline, digest, progressPrinter(io), { signal });
    } catch (e) {
      if (e instanceof VeritrailError && e.code === 'USAGE') {
        io.err(`veritrail runs retry: ${e.message}`);
        return EXIT.USAGE;
      }
      throw e;
    }
    const record = await rt.runs.get(result.runId);
    const summary = {
      ...runSummary(rt.home, record, result.execution.state?.results, result.execution.error),
      retryOf: result.retryOf,
      attempt: result.attempt,
    };
    if (values.json) io.out(JSON.stringify(summary));
    else {
      io.err(`attempt ${result.attempt} of run ${attemptOf(result.runId).first}`);
      io.out(formatSummary(summary, home, record?.unit));
    }
    if (signal.aborted && summary.error?.code === 'CANCELLED')
      return signal.reason === 'SIGTERM' ? EXIT.TERMINATED : EXIT.INTERRUPTED;
    return exitCodeOf(summary.status);
  } finally {
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
    await rt.close();
  }
}

export function exitCodeOf(status: RunStatus): number {
  return status === 'SUCCEEDED' ? EXIT.OK : status === 'REJECTED' ? EXIT.REJECTED : EXIT.FAILED;
}

function progressPrinter(io: CliIo): (e: ProgressEvent) => void {
  const TOTAL_STATES = mainPathStates().length;
  let n = 0;
  // A state that failed also "exits" in the event log: it was reported FAILED, never "ok".
  const failed = new Set<string>();
  return (e) => {
    if (e.type === 'entered' || e.type === 'retried') failed.delete(e.state);
    if (e.type === 'exited' && failed.has(e.state)) return;
    if (e.type === 'failed') failed.add(e.state);
    if (e.type === 'exited') {
      if (e.state !== 'RecordFailure') n++;
      io.err(
        `  [${String(n).padStart(2)}/${TOTAL_STATES}] ${e.state.padEnd(14)} ok      ${(e.ms / 1000).toFixed(2)} s`,
      );
    } else if (e.type === 'failed') {
      io.err(
        `  [  /${TOTAL_STATES}] ${e.state.padEnd(14)} FAILED  ${(e.ms / 1000).toFixed(2)} s  (${e.error})`,
      );
    } else if (e.type === 'retried') {
      io.err(`         ${e.state.padEnd(14)} retry ${e.attempt}`);
    }
  };
}

function formatSummary(s: RunSummary, home: string, unit: string | undefined): string {
  const lines = [
    `run ${s.runId}  ${s.status}  (pipeline ${s.pipeline}${unit && unit !== DEFAULT_UNIT ? `, unit ${unit}` : ''})`,
  ];
  const row = (k: string, v: string | undefined) => {
    if (v) lines.push(`  ${k.padEnd(16)}${v}`);
  };
  row('dataset', `${s.dataset.uri}`);
  row('raw data', s.dataset.digest);
  row('processed data', s.processed?.digest);
  row('model', s.model?.digest);
  if (s.fairness) {
    const f = s.fairness as Record<string, number | null>;
    const fmt = (v: unknown) => (typeof v === 'number' ? v.toFixed(3) : 'n/a');
    const attrs = [
      ...new Set(
        Object.keys(f)
          .filter((k) => k.includes('.'))
          .map((k) => k.split('.')[0] as string),
      ),
    ];
    row('accuracy', fmt(f.accuracy));
    attrs.forEach((a, i) => {
      const text = `${a}: disparate impact ${fmt(f[`${a}.disparateImpact`])}, demographic parity diff ${fmt(f[`${a}.demographicParityDifference`])}, equalized odds diff ${fmt(f[`${a}.equalizedOddsDifference`])}`;
      if (i === 0) row('fairness', text);
      else lines.push(`  ${''.padEnd(16)}${text}`);
    });
  }
  if (s.gate) {
    row('gate', `${s.gate.decision}${s.gate.reasons.length ? '' : ' (every policy held)'}`);
    for (const r of s.gate.reasons) lines.push(`  ${''.padEnd(16)}- ${r}`);
  }
  if (s.error) row('error', `${s.error.code}: ${s.error.message}`);
  if (s.report) row('report', `${s.report.statement} (signed model-report/v1)`);
  const bundles = Object.entries(s.attestations ?? {});
  if (bundles.length) {
    lines.push('  attestations');
    for (const [k, p] of bundles) lines.push(`    ${k.padEnd(16)}${p}`);
  }
  lines.push(
    '',
    `inspect: npx veritrail runs show ${s.runId}${home.endsWith('.veritrail') ? '' : ` --home ${home}`}`,
  );
  const at = home.endsWith('.veritrail') ? '' : ` --home ${home}`;
  if (s.report) lines.push(`report:  npx ${s.report.render}${at}`);
  if (s.status !== 'FAILED')
    lines.push(
      `verify:  npx veritrail verify ${s.runId}${at} --trust-state-keys   (an auditor names the published keys: --key, --audit-key)`,
    );
  return `${lines.join('\n')}\n`;
}
