import { isDigest } from '../core/digest.js';
import { type ErrorInfo, errorFromCatch, toErrorInfo } from '../core/errors.js';
import { type ExecState, GateResultSchema, resultOf } from '../core/exec-state.js';
import type { RunStatus } from '../core/run.js';
import { factsOf } from '../core/run-facts.js';
import type { ExecutionIndex } from '../ports.js';
import { endOfRunReport } from '../report/produce.js';
import type { Runtime } from '../runtime.js';
import { noteSigningKey } from './attest.js';
import { emitRunEnd } from './lineage.js';
import { parseState, unwrapTaskInput } from './step.js';

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
  if (run?.status !== status) {
    // The signed model report (docs/report.md) is made as the run ends, and named with its status.
    await noteSigningKey(rt);
    const report = await endOfRunReport(rt, state.runId, { status });
    await rt.runs.transition(state.runId, status, {
      facts: { finishedAt: rt.now().toISOString(), ...report },
    });
  }
  await auditReport(rt, {
    runId: state.runId,
    pipeline: state.pipeline.name,
    step: 'Finish',
    actor: state.trigger.actor ?? rt.actor,
  });
  await settle(rt, state.runId);
  await checkpoint(rt);
  await emitLineage(rt, state.runId);
  return { runId: state.runId, status };
}

/** What a failed run's closing records: who closes it, and why. */
export interface RunFailure {
  runId: string;
  pipeline: string;
  actor: string;
  /** The state (or the reconciler) that closes the run: the audit entry's step. */
  step: 'RecordFailure' | 'Reconcile';
  error: ErrorInfo;
  detail?: Record<string, unknown>;
}

/**
 * Ends a run FAILED with its reason: the audit entry first (idempotent per run, step and code), then
 * the status, then the claim leaves the reconciler's list, a checkpoint, lineage. A run that has
 * already ended keeps its status; nothing already written is altered.
 */
export async function failRun(rt: Runtime, f: RunFailure): Promise<FinishOutput> {
  await rt.audit.append({
    eventId: `${f.runId}/${f.step}/${f.error.code}`,
    pipeline: f.pipeline,
    runId: f.runId,
    step: f.step,
    type: 'run.failed',
    outcome: 'failure',
    actor: f.actor,
    detail: { error: f.error, ...(f.detail ?? {}) },
  });
  try {
    const run = await rt.runs.get(f.runId);
    if (run && run.status !== 'FAILED') {
      // A run that already ended keeps its status (below), so it gets no report saying FAILED.
      const ended = run.status === 'SUCCEEDED' || run.status === 'REJECTED';
      if (!ended) await noteSigningKey(rt);
      const report = ended ? {} : await endOfRunReport(rt, f.runId, { status: 'FAILED', error: f.error });
      await rt.runs.transition(f.runId, 'FAILED', {
        error: f.error,
        facts: { finishedAt: rt.now().toISOString(), ...report },
      });
    }
  } catch (e) {
    // A run that already ended keeps its status; the failure is still in the audit log.
    if (toErrorInfo(e).code !== 'RUN_TRANSITION_ILLEGAL') throw e;
  }
  await auditReport(rt, f);
  await settle(rt, f.runId);
  await checkpoint(rt);
  await emitLineage(rt, f.runId);
  return { runId: f.runId, status: 'FAILED', error: f.error };
}

/**
 * The log names the run's signed report (its statement digest, content address and signing key),
 * as the run record recorded it: read back, so a retried Finish names the report the run kept,
 * and idempotent per run and report. A run whose report could not be made has no such entry (its
 * `reportError` is in the run record).
 */
async function auditReport(
  rt: Runtime,
  who: { runId: string; pipeline: string; step: 'Finish' | 'RecordFailure' | 'Reconcile'; actor: string },
): Promise<void> {
  const run = await rt.runs.get(who.runId);
  const facts = run ? factsOf(run) : {};
  const digest = facts.reportDigest;
  const key = facts.reportKey;
  if (digest === undefined || key === undefined) return;
  const signer = facts.reportSigningKey;
  await rt.audit.append({
    eventId: `${who.runId}/report/${digest}`,
    pipeline: who.pipeline,
    runId: who.runId,
    step: who.step,
    type: 'report.signed',
    outcome: 'info',
    actor: who.actor,
    subjects: { report: digest },
    detail: { reportKey: key, ...(isDigest(signer) ? { key: signer, bundles: ['report'] } : {}) },
  });
}

/** The run's claim leaves the reconciler's work list (a store without claims has no list). */
async function settle(rt: Runtime, runId: string): Promise<void> {
  const store = rt.runs as Partial<ExecutionIndex>;
  if (typeof store.settle === 'function') await store.settle(runId);
}

export interface RecordFailureOutput extends Omit<FinishOutput, 'status'> {
  status: RunStatus;
  /** False when the run was left as it was: it belongs to another execution, or it has ended. */
  recorded: boolean;
}

/**
 * RecordFailure (the Catch target): the run ends FAILED with the reason, recorded in the audit log
 * and the run store. Whatever was written before stays as it was. Only the execution that owns the
 * run (its claim) may close it: a second execution of a run never writes to it, and a run that
 * ended SUCCEEDED or REJECTED never gets a failure entry.
 */
export async function recordFailure(rt: Runtime, event: unknown): Promise<RecordFailureOutput> {
  const { input, executionArn } = unwrapTaskInput(event);
  const raw = (typeof input === 'object' && input !== null ? input : {}) as Partial<ExecState> & {
    error?: { Error?: string; Cause?: string };
  };
  const error = errorFromCatch(raw.error);
  const runId = typeof raw.runId === 'string' ? raw.runId : 'unknown';
  const run = runId === 'unknown' ? undefined : await rt.runs.get(runId);
  const leave = async (why: string): Promise<RecordFailureOutput> => {
    console.warn(JSON.stringify({ source: 'record-failure', runId, message: why, error }));
    return { runId, status: run?.status ?? 'FAILED', error, recorded: false };
  };
  if (run && (run.status === 'SUCCEEDED' || run.status === 'REJECTED')) {
    return leave(`run ${runId} ended ${run.status}; a finished run is never changed`);
  }
  const claims = rt.runs as Partial<ExecutionIndex>;
  if (run && executionArn !== undefined && typeof claims.claim === 'function') {
    // Reading the claim through claim(): with none recorded, this execution takes it (legacy runs).
    const held = await claims.claim(runId, executionArn);
    if (held.executionArn !== executionArn) {
      return leave(`run ${runId} belongs to execution ${held.executionArn}; this one leaves it alone`);
    }
  }
  const pipeline = typeof raw.pipeline === 'object' ? raw.pipeline?.name : undefined;
  const out = await failRun(rt, {
    runId,
    pipeline: pipeline ?? run?.pipeline ?? 'unknown',
    actor: (typeof raw.trigger === 'object' ? raw.trigger?.actor : undefined) ?? rt.actor,
    step: 'RecordFailure',
    error,
  });
  return { ...out, recorded: true };
}
