import type { Digest } from '../core/digest.js';
import { type ErrorInfo, toErrorInfo, VeritrailError } from '../core/errors.js';
import { type ExecState, ExecStateSchema } from '../core/exec-state.js';
import { describeIssues } from '../core/pipeline.js';
import type { RunFactsPatch } from '../core/run-facts.js';
import type { StepName } from '../core/states.js';
import type { ExecutionIndex, RunStore, TaskTokenStore } from '../ports.js';
import type { Runtime } from '../runtime.js';

export interface StepOutcome<T> {
  output: T;
  /** Digests this step produced or checked, by role: recorded in the run and the audit entry. */
  digests?: Record<string, Digest>;
  /** Facts merged into the run record: this step's fields of the run facts schema (./facts.ts). */
  facts?: RunFactsPatch;
  /** Small detail recorded in the audit entry. */
  detail?: Record<string, unknown>;
  /** When the step really began, if before this invocation (training: the job's launch). */
  startedAt?: string;
}

/**
 * The error a failed step throws to the state machine. Its `name` is what Step Functions matches
 * in Retry/Catch (`Veritrail.TRANSIENT` is retried); the message carries the code for RecordFailure.
 */
export class StepFailure extends Error {
  override readonly name: string;
  readonly info: ErrorInfo;
  constructor(info: ErrorInfo, cause?: unknown) {
    super(JSON.stringify(info), { cause });
    this.name = `Veritrail.${info.code}`;
    this.info = info;
  }
}

export function parseState(input: unknown): ExecState {
  const parsed = ExecStateSchema.safeParse(input);
  if (!parsed.success) {
    throw new VeritrailError('EVENT_INVALID', `execution input is invalid: ${describeIssues(parsed.error)}`);
  }
  return parsed.data;
}

/**
 * Runs one step of a run. Invariant 1: the step's audit entry is appended (and durable) before the
 * step reports success; a failure is audited too, then surfaces as a StepFailure. Nothing already
 * written is touched on failure: artifacts are content-addressed and written once.
 */
export async function runStep<T>(
  rt: Runtime,
  step: StepName,
  input: unknown,
  work: (state: ExecState) => Promise<StepOutcome<T>>,
  options: { phase?: 'launched' } = {},
): Promise<T> {
  const startedAt = rt.now().toISOString();
  let state: ExecState;
  try {
    state = parseState(input);
  } catch (e) {
    throw new StepFailure(toErrorInfo(e), e);
  }
  let outcome: StepOutcome<T>;
  try {
    outcome = await work(state);
  } catch (e) {
    const info = toErrorInfo(e);
    await recordFailure(rt, state, step, startedAt, info).catch(() => undefined);
    throw new StepFailure(info, e);
  }
  const endedAt = rt.now().toISOString();
  const launched = options.phase === 'launched';
  await rt.audit.append({
    eventId: `${state.runId}/${step}/${launched ? 'launched' : 'succeeded'}`,
    pipeline: state.pipeline.name,
    runId: state.runId,
    step,
    type: launched ? 'step.launched' : 'step.succeeded',
    outcome: launched ? 'info' : 'success',
    actor: state.trigger.actor ?? rt.actor,
    ...(outcome.digests ? { subjects: outcome.digests } : {}),
    ...(outcome.detail ? { detail: outcome.detail } : {}),
  });
  await rt.runs.recordStep(
    state.runId,
    launched
      ? { name: step, status: 'RUNNING', startedAt }
      : {
          name: step,
          status: 'SUCCEEDED',
          startedAt: outcome.startedAt ?? startedAt,
          endedAt,
          ...(outcome.digests ? { digests: outcome.digests } : {}),
        },
    outcome.facts,
  );
  return outcome.output;
}

async function recordFailure(
  rt: Runtime,
  state: ExecState,
  step: StepName,
  startedAt: string,
  info: ErrorInfo,
): Promise<void> {
  const endedAt = rt.now().toISOString();
  await rt.audit.append({
    // Each failed attempt is its own event: a retried step may fail more than once.
    eventId: `${state.runId}/${step}/failed/${endedAt}`,
    pipeline: state.pipeline.name,
    runId: state.runId,
    step,
    type: 'step.failed',
    outcome: info.code === 'CODE_SECRET_FOUND' || info.code === 'CODE_IMAGE_UNPINNED' ? 'refused' : 'failure',
    actor: state.trigger.actor ?? rt.actor,
    detail: { error: info },
  });
  await rt.runs
    .recordStep(state.runId, { name: step, status: 'FAILED', startedAt, endedAt, error: info })
    .catch(() => undefined);
}

/**
 * The task-token store of a run store. Both runtimes' run stores (DynamoDB, and dynalite locally)
 * keep tokens in their own items; a store without them cannot run a step that waits on a token.
 */
export function taskTokensOf(runs: RunStore): TaskTokenStore {
  const store = runs as Partial<TaskTokenStore>;
  if (typeof store.putTaskToken !== 'function' || typeof store.getTaskToken !== 'function') {
    throw new VeritrailError('INTERNAL', 'this run store keeps no task tokens; use the DynamoDB run store');
  }
  return store as TaskTokenStore;
}

/** The execution claims of a run store (see ExecutionIndex). */
export function executionsOf(runs: RunStore): ExecutionIndex {
  const store = runs as Partial<ExecutionIndex>;
  if (typeof store.claim !== 'function' || typeof store.active !== 'function') {
    throw new VeritrailError(
      'INTERNAL',
      'this run store records no execution claims; use the DynamoDB run store',
    );
  }
  return store as ExecutionIndex;
}

/** The Task states that need their execution pass `{input: $, executionArn: $$.Execution.Id}`. */
export function unwrapTaskInput(event: unknown): { input: unknown; executionArn?: string } {
  if (typeof event === 'object' && event !== null && 'input' in event && 'executionArn' in event) {
    const { input, executionArn } = event as { input: unknown; executionArn: unknown };
    return { input, ...(typeof executionArn === 'string' ? { executionArn } : {}) };
  }
  return { input: event };
}
