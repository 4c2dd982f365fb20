import { loadPipeline } from '../cas.js';
import { type ErrorInfo, toErrorInfo, VeritrailError } from '../core/errors.js';
import { type ExecState, ExecStateSchema } from '../core/exec-state.js';
import { isTerminal, type RunStatus } from '../core/run.js';
import type { StartOutcome } from '../core/start.js';
import type { ExecutionIndex, Launch, RunRecord } from '../ports.js';
import type { Runtime } from '../runtime.js';
import { executionsOf, runStep, StepFailure, type StepOutcome, unwrapTaskInput } from './step.js';

/**
 * What RegisterRun came to; the state machine's `Registered` Choice routes on `outcome`:
 * - `registered`: this execution owns the run, now RUNNING; go on. `state` is set when the input was
 *   an operator start (the Step Functions console): the execution state the start service built,
 *   which replaces the console input (`AdoptStartedRun`).
 * - `duplicate`: the run belongs to another execution or has ended; this execution ends
 *   (`NothingToRun`) without touching it.
 * - `skipped`: an operator start whose inputs are unchanged since a successful run (signed retrain skip).
 * - `rejected`: the operator start is invalid; it is in the audit log as `trigger.rejected`.
 */
export type Registration =
  | { outcome: 'registered'; runId: string; startedAt: string; state?: ExecState }
  | { outcome: 'duplicate'; runId: string; runStatus: RunStatus | 'SKIPPED'; reason: string }
  | { outcome: 'skipped'; runId: string; sinceRunId: string; reason: string; bundleKey: string }
  | { outcome: 'rejected'; error: ErrorInfo };

/** Builds the start service an operator start goes through, with the launch RegisterRun supplies. */
export type ConsoleStarter = (launch: Launch) => Promise<{ handle(raw: unknown): Promise<StartOutcome> }>;

export interface RegisterRunDeps {
  /** The deployed pipelines' start service; absent where no console start can arrive (locally). */
  consoleStart?: ConsoleStarter;
}

/** RegisterRun's own work once the run is this execution's: the run item exists and becomes RUNNING. */
async function register(rt: Runtime, state: ExecState): Promise<StepOutcome<{ startedAt: string }>> {
  // The definition must be the one the trigger pinned: loadPipeline checks the bytes against the digest.
  const def = await loadPipeline(rt.objects, state.pipeline.digest);
  if (def.name !== state.pipeline.name) {
    throw new VeritrailError(
      'PIPELINE_INVALID',
      `pipeline digest names "${def.name}", not "${state.pipeline.name}"`,
    );
  }
  let run = await rt.runs.get(state.runId);
  if (!run) {
    run = await rt.runs.create({
      runId: state.runId,
      pipeline: state.pipeline.name,
      pipelineDigest: state.pipeline.digest,
      trigger: state.trigger.type,
      idempotencyKey: state.trigger.idempotencyKey,
      dataset: {
        uri: state.dataset.uri,
        ...(state.dataset.versionId ? { versionId: state.dataset.versionId } : {}),
      },
      createdAt: rt.now().toISOString(),
    });
  }
  // A retried RegisterRun of this execution finds the run RUNNING already: that is fine.
  if (run.status !== 'RUNNING') run = await rt.runs.transition(state.runId, 'RUNNING');
  return {
    output: { startedAt: run.updatedAt },
    digests: { pipeline: state.pipeline.digest },
    detail: { dataset: state.dataset.uri, trigger: state.trigger.type },
  };
}

/** The execution state of a recorded run (AWS form: no local `base`). */
function stateOfRun(run: RunRecord): ExecState {
  return ExecStateSchema.parse({
    runId: run.runId,
    pipeline: { name: run.pipeline, digest: run.pipelineDigest },
    dataset: {
      uri: run.dataset.uri,
      ...(run.dataset.versionId !== undefined ? { versionId: run.dataset.versionId } : {}),
    },
    trigger: { type: run.trigger, idempotencyKey: run.idempotencyKey },
  });
}

/** Whether an input is an execution state (has a run id) rather than an operator start. */
function isExecState(input: unknown): boolean {
  return typeof input === 'object' && input !== null && 'runId' in input;
}

/**
 * An execution state (from the start function, or re-run from a past execution): the run is this
 * execution's if nobody else claimed it and it has not ended. Otherwise `duplicate`, and nothing
 * is written: no audit entry, no step record, no status change.
 */
async function registerState(
  rt: Runtime,
  claims: ExecutionIndex,
  executionArn: string,
  input: unknown,
): Promise<Registration> {
  const runId = (input as { runId?: unknown }).runId;
  const existing = typeof runId === 'string' ? await rt.runs.get(runId) : undefined;
  if (existing && isTerminal(existing.status)) {
    return {
      outcome: 'duplicate',
      runId: existing.runId,
      runStatus: existing.status,
      reason: `run ${existing.runId} has ended ${existing.status}; a finished run is never run again. Start a new run (new requestId) instead`,
    };
  }
  if (existing) {
    const held = await claims.claim(existing.runId, executionArn);
    if (held.executionArn !== executionArn) {
      return {
        outcome: 'duplicate',
        runId: existing.runId,
        runStatus: existing.status,
        reason: `run ${existing.runId} is ${existing.status} in execution ${held.executionArn}`,
      };
    }
  }
  const out = await runStep(rt, 'RegisterRun', input, async (state) => {
    if (!existing) {
      // Created here (an execution state whose run is not recorded): claim it before creating it.
      const held = await claims.claim(state.runId, executionArn);
      if (held.executionArn !== executionArn) {
        throw new VeritrailError(
          'RUN_EXISTS',
          `run ${state.runId} was claimed by execution ${held.executionArn} meanwhile`,
        );
      }
    }
    return register(rt, state);
  });
  return { outcome: 'registered', runId: (input as { runId: string }).runId, startedAt: out.startedAt };
}

/**
 * An operator start typed as the execution input in the Step Functions console: the very start
 * service the start function and the CLI use (validate, pin the dataset version, dedupe by content,
 * record the run PENDING, audit), whose "launch" is this execution claiming the run.
 */
async function registerOperatorStart(
  rt: Runtime,
  claims: ExecutionIndex,
  executionArn: string,
  input: unknown,
  consoleStart: ConsoleStarter | undefined,
): Promise<Registration> {
  if (!consoleStart) {
    return {
      outcome: 'rejected',
      error: {
        code: 'USAGE',
        message:
          'this RegisterRun has no pipeline definitions to start from an operator start; start with `veritrail start` or the start function',
      },
    };
  }
  let adopted: ExecState | undefined;
  const service = await consoleStart(async (state) => {
    const held = await claims.claim(state.runId, executionArn);
    if (held.executionArn !== executionArn) return { alreadyStarted: true };
    adopted = state;
    return { alreadyStarted: false };
  });
  const outcome = await service.handle(input);
  switch (outcome.status) {
    case 'started':
    case 'duplicate': {
      if (adopted === undefined && outcome.status === 'duplicate' && outcome.runStatus === 'RUNNING') {
        // This execution's own RegisterRun, retried after the run became RUNNING: carry on with it.
        const held = await claims.holder(outcome.runId);
        const run = held?.executionArn === executionArn ? await rt.runs.get(outcome.runId) : undefined;
        if (run) adopted = stateOfRun(run);
      }
      if (adopted === undefined) {
        if (outcome.status === 'started') {
          throw new VeritrailError('INTERNAL', `run ${outcome.runId} started without being handed over`);
        }
        return {
          outcome: 'duplicate',
          runId: outcome.runId,
          runStatus: outcome.runStatus,
          reason: `this start was made before (run ${outcome.runId} is ${outcome.runStatus}); use a new requestId for a deliberate new run`,
        };
      }
      const state = adopted;
      const out = await runStep(rt, 'RegisterRun', state, (s) => register(rt, s));
      const registerRun = { outcome: 'registered' as const, runId: state.runId, startedAt: out.startedAt };
      return { ...registerRun, state: { ...state, results: { registerRun } } };
    }
    case 'skipped':
      return {
        outcome: 'skipped',
        runId: outcome.runId,
        sinceRunId: outcome.sinceRunId,
        reason: outcome.reason,
        bundleKey: outcome.bundleKey,
      };
    case 'rejected':
      return { outcome: 'rejected', error: outcome.error };
    case 'ignored':
      return { outcome: 'rejected', error: { code: 'EVENT_INVALID', message: outcome.reason } };
  }
}

/**
 * RegisterRun. Its Task state passes `{input: $, executionArn: $$.Execution.Id}`. The run becomes
 * this execution's and RUNNING, exactly once however many executions name it: the first to claim it
 * (ExecutionIndex) owns it, any other ends in `NothingToRun` without writing to it.
 */
export async function registerRun(
  rt: Runtime,
  event: unknown,
  deps: RegisterRunDeps = {},
): Promise<Registration> {
  const { input, executionArn } = unwrapTaskInput(event);
  if (executionArn === undefined) {
    throw new StepFailure({
      code: 'INTERNAL',
      message:
        'RegisterRun needs {input, executionArn} (its Task state passes $$.Execution.Id); deploy the state machine from state-machines/',
    });
  }
  try {
    const claims = executionsOf(rt.runs);
    return isExecState(input)
      ? await registerState(rt, claims, executionArn, input)
      : await registerOperatorStart(rt, claims, executionArn, input, deps.consoleStart);
  } catch (e) {
    if (e instanceof StepFailure) throw e;
    throw new StepFailure(toErrorInfo(e), e);
  }
}
