/**
 * `veritrail runs retry <runId>`: a FAILED run driven again as a new attempt linked to the first.
 *
 * The attempt has the first run's idempotency key, definition and dataset, and the run id
 * `<first run id>-a<n>` (n = 2, 3, …), so `runs list` shows the attempts side by side and the
 * audit log's `run.requested` entry of the attempt names the run it retries. The definition and the
 * dataset must still be the bytes the first run had: anything else is new content (a new identity,
 * started with `veritrail run`), not a retry.
 */
import type { Digest } from '../core/digest.js';
import { VeritrailError } from '../core/errors.js';
import type { ExecState } from '../core/exec-state.js';
import type { RunRecord } from '../ports.js';
import { executeLocally, type LocalExecution, type ProgressEvent } from './runner.js';
import type { LocalRuntime } from './runtime.js';
import { awaitExecution, type LoadedPipeline } from './start-run.js';
import { forRun } from './units.js';

const ATTEMPT = /^(.*)-a(\d+)$/;

/** The first run of a chain of attempts, and this run's attempt number (1 for the first run). */
export function attemptOf(runId: string): { first: string; attempt: number } {
  const m = ATTEMPT.exec(runId);
  return m ? { first: m[1] as string, attempt: Number(m[2]) } : { first: runId, attempt: 1 };
}

export interface Retry {
  retryOf: string;
  runId: string;
  attempt: number;
  execution: LocalExecution;
}

export async function retryRun(
  rt: LocalRuntime,
  runId: string,
  pipeline: LoadedPipeline,
  datasetDigest: Digest | undefined,
  onProgress?: (e: ProgressEvent) => void,
  options: { signal?: AbortSignal } = {},
): Promise<Retry> {
  const run = await rt.runs.get(runId);
  if (!run)
    throw new VeritrailError('USAGE', `run ${runId} is not recorded here; check the run id and --home`);
  if (run.status !== 'FAILED') {
    throw new VeritrailError(
      'USAGE',
      `run ${runId} is ${run.status}; only a FAILED run can be retried${run.status === 'RUNNING' || run.status === 'PENDING' ? ' (wait for it to end)' : ''}`,
    );
  }
  if (pipeline.digest !== run.pipelineDigest) {
    throw new VeritrailError(
      'USAGE',
      `${pipeline.path} is not the definition run ${runId} used (${run.pipelineDigest}); a changed definition is a new run: start it with \`veritrail run\``,
    );
  }
  if (
    datasetDigest !== undefined &&
    run.dataset.digest !== undefined &&
    datasetDigest !== run.dataset.digest
  ) {
    throw new VeritrailError(
      'USAGE',
      `the dataset ${run.dataset.uri} has changed since run ${runId} (${run.dataset.digest}, now ${datasetDigest}); new data is a new run: start it with \`veritrail run\``,
    );
  }
  const { first } = attemptOf(runId);
  const attempts = (await rt.runs.list({ pipeline: run.pipeline, limit: 100_000 })).filter(
    (r) => attemptOf(r.runId).first === first,
  );
  let attempt = Math.max(...attempts.map((r) => attemptOf(r.runId).attempt), 1) + 1;
  let created: RunRecord | undefined;
  let newId = '';
  for (let tries = 0; created === undefined; tries++) {
    newId = `${first}-a${attempt}`;
    try {
      created = await rt.runs.create({
        runId: newId,
        pipeline: run.pipeline,
        ...(run.unit !== undefined ? { unit: run.unit } : {}),
        pipelineDigest: run.pipelineDigest,
        trigger: run.trigger,
        idempotencyKey: run.idempotencyKey,
        dataset: run.dataset,
        createdAt: rt.now().toISOString(),
      });
    } catch (e) {
      // Another retry took this attempt number at the same moment: take the next one.
      if (!(e instanceof VeritrailError && e.code === 'RUN_EXISTS') || tries > 20) throw e;
      attempt++;
    }
  }
  // In the log of the run's unit, with every other entry of the attempt.
  await (await forRun(rt, run)).audit.append({
    eventId: `${newId}/Start/run.requested`,
    pipeline: run.pipeline,
    runId: newId,
    step: 'Start',
    type: 'run.requested',
    outcome: 'info',
    actor: rt.actor,
    subjects: { pipeline: run.pipelineDigest, ...(run.dataset.digest ? { raw: run.dataset.digest } : {}) },
    detail: {
      trigger: 'retry',
      retryOf: runId,
      firstRun: first,
      attempt,
      idempotencyKey: run.idempotencyKey,
      dataset: run.dataset.uri,
    },
  });
  const input: ExecState = {
    runId: newId,
    pipeline: { name: run.pipeline, digest: run.pipelineDigest, base: pipeline.base },
    dataset: {
      uri: run.dataset.uri,
      ...(run.dataset.versionId !== undefined ? { versionId: run.dataset.versionId } : {}),
    },
    trigger: {
      type: run.trigger as ExecState['trigger']['type'],
      idempotencyKey: run.idempotencyKey,
      actor: rt.actor,
    },
  };
  await rt.owners.own(newId);
  try {
    const execution = await awaitExecution(rt, newId, executeLocally(rt, input, onProgress), options.signal);
    return { retryOf: runId, runId: newId, attempt, execution };
  } finally {
    await rt.owners.release(newId);
  }
}
