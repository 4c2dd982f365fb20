import { emitRunEnd } from '../app/lineage.js';
import { type ErrorInfo, toErrorInfo } from '../core/errors.js';
import type { RunStatus } from '../core/run.js';
import type { Runtime } from '../runtime.js';
import { type ExecState, GateResultSchema, resultOf } from './state.js';
import { errorFromCatch, parseState } from './step.js';

export interface FinishOutput {
  runId: string;
  status: RunStatus;
  error?: ErrorInfo;
}

async function checkpoint(rt: Runtime): Promise<void> {
  // A signed checkpoint at the end of every run: the run's entries become provable from it.
  if (rt.audit.checkpoint) await rt.audit.checkpoint();
}

/** The run's OpenLineage COMPLETE or FAIL event. Lineage serves consumers; it never fails a run. */
async function emitLineage(rt: Runtime, runId: string): Promise<void> {
  if (!rt.lineage) return;
  try {
    await emitRunEnd(rt.lineage.sink, await rt.runs.get(runId), {
      namespace: rt.lineage.namespace,
      now: rt.now(),
    });
  } catch {
    /* the audit log, not lineage, is the record */
  }
}

/**
 * Finish: the run ends SUCCEEDED (gate allowed) or REJECTED (gate denied, with signed evidence of
 * why). The audit entry is durable before the status changes, and the log is checkpointed.
 */
export async function finish(rt: Runtime, input: unknown): Promise<FinishOutput> {
  const state = parseState(input);
  const decision = resultOf(state, 'gate', GateResultSchema);
  const status: RunStatus = decision.decision === 'allow' ? 'SUCCEEDED' : 'REJECTED';
  await rt.audit.append({
    eventId: `${state.runId}/Finish/${status}`,
    pipeline: state.pipeline.name,
    runId: state.runId,
    step: 'Finish',
    type: 'run.finished',
    outcome: status === 'SUCCEEDED' ? 'success' : 'refused',
    actor: state.trigger.actor ?? rt.actor,
    detail: { status, reasons: decision.reasons },
  });
  const run = await rt.runs.get(state.runId);
  if (run?.status !== status)
    await rt.runs.transition(state.runId, status, { facts: { finishedAt: rt.now().toISOString() } });
  await checkpoint(rt);
  await emitLineage(rt, state.runId);
  return { runId: state.runId, status };
}

/**
 * RecordFailure (the Catch target): the run ends FAILED with the reason, recorded in the audit log
 * and the run store. Whatever was written before stays as it was.
 */
export async function recordFailure(rt: Runtime, input: unknown): Promise<FinishOutput> {
  const raw = input as Partial<ExecState> & { error?: { Error?: string; Cause?: string } };
  const error = errorFromCatch(raw.error);
  const runId = typeof raw.runId === 'string' ? raw.runId : 'unknown';
  await rt.audit.append({
    eventId: `${runId}/RecordFailure/${error.code}`,
    pipeline: raw.pipeline?.name ?? 'unknown',
    runId,
    step: 'RecordFailure',
    type: 'run.failed',
    outcome: 'failure',
    actor: raw.trigger?.actor ?? rt.actor,
    detail: { error },
  });
  try {
    const run = await rt.runs.get(runId);
    if (run && run.status !== 'FAILED') {
      await rt.runs.transition(runId, 'FAILED', { error, facts: { finishedAt: rt.now().toISOString() } });
    }
  } catch (e) {
    // A run that already ended keeps its status; the failure is still in the audit log.
    if (toErrorInfo(e).code !== 'RUN_TRANSITION_ILLEGAL') throw e;
  }
  await checkpoint(rt);
  await emitLineage(rt, runId);
  return { runId, status: 'FAILED', error };
}
