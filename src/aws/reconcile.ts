/**
 * The reconciler (functions/reconcile.ts, every 5 minutes on an EventBridge schedule): no run stays
 * RUNNING after the work behind it has ended, whatever was lost on the way.
 *
 * For each run whose claim is still active (ExecutionIndex: the runs not yet settled):
 * - its execution has ended (DescribeExecution: FAILED, TIMED_OUT, ABORTED, or SUCCEEDED/unknown
 *   without the run having ended) but the run has not: the run ends FAILED with ORCHESTRATOR_LOST
 *   and an audit entry (RecordFailure failed, or never ran);
 * - its Train step waits on a training job that has ended (DescribeTrainingJob) but no state-change
 *   event arrived: the Train step is finished exactly as the callback does (finishTrainingStep, the
 *   same code path) and the task token resolved;
 * - the job still runs: SendTaskHeartbeat, so that the Train state's HeartbeatSeconds only fires
 *   when neither the callback nor this reconciler is alive;
 * - the run has ended: its claim is settled (leaves the active list).
 * Every action is idempotent (audit entries by event id, conditional status changes, task tokens
 * that can be resolved once), so overlapping invocations are harmless.
 */
import {
  DescribeTrainingJobCommand,
  type DescribeTrainingJobCommandOutput,
  type SageMakerClient,
} from '@aws-sdk/client-sagemaker';
import { type ErrorInfo, toErrorInfo, VeritrailError } from '../core/errors.js';
import { isTerminal, type RunStatus } from '../core/run.js';
import { factsOf } from '../core/run-facts.js';
import type { ExecutionClaim } from '../ports.js';
import { failRun } from '../steps/finish.js';
import { executionsOf, taskTokensOf } from '../steps/step.js';
import { awsErrorName, translateAwsError } from './errors.js';
import { type EndedTrainingJob, endedTrainingJobOf } from './sagemaker-trainer.js';
import type { ExecutionStatus, StepFunctions } from './sfn.js';
import { type CallbackOutcome, type CallbackRuntime, finishTrainingStep } from './training-callback.js';

/** A training job as DescribeTrainingJob reports it. */
export type TrainingJobState =
  | { status: 'running'; sagemakerStatus: string }
  | { status: 'ended'; job: EndedTrainingJob }
  | { status: 'missing' };

/** Reads a training job's status (SageMaker on AWS). */
interface TrainingJobs {
  describe(jobName: string): Promise<TrainingJobState>;
}

/** DescribeTrainingJob over the SageMaker client. */
export class SageMakerTrainingJobs implements TrainingJobs {
  constructor(private readonly sagemaker: SageMakerClient) {}

  async describe(jobName: string): Promise<TrainingJobState> {
    let job: DescribeTrainingJobCommandOutput;
    try {
      job = await this.sagemaker.send(new DescribeTrainingJobCommand({ TrainingJobName: jobName }));
    } catch (e) {
      // SageMaker answers ValidationException "Requested resource not found" (or ResourceNotFound)
      // for an unknown job.
      const name = awsErrorName(e);
      if (
        name === 'ResourceNotFound' ||
        (name === 'ValidationException' && /not found/i.test(String((e as Error).message)))
      ) {
        return { status: 'missing' };
      }
      throw translateAwsError(e, {
        action: 'sagemaker:DescribeTrainingJob',
        resource: `training-job/${jobName}`,
      });
    }
    const ended = endedTrainingJobOf(jobName, job);
    if (ended) return { status: 'ended', job: ended };
    return { status: 'running', sagemakerStatus: job.TrainingJobStatus ?? 'unknown' };
  }
}

/** What the reconciler needs: the callback's ports, execution status and heartbeats, training jobs. */
export interface ReconcileRuntime extends CallbackRuntime {
  stepFunctions: Pick<
    StepFunctions,
    'sendTaskSuccess' | 'sendTaskFailure' | 'sendTaskHeartbeat' | 'describeExecution'
  >;
  trainingJobs: TrainingJobs;
}

type ReconcileAction =
  | { runId: string; action: 'settled'; runStatus: RunStatus | 'MISSING' }
  | { runId: string; action: 'failed'; executionStatus: ExecutionStatus; error: ErrorInfo }
  | { runId: string; action: 'training-ended'; outcome: CallbackOutcome }
  | { runId: string; action: 'heartbeat'; jobName: string; delivered: boolean }
  | { runId: string; action: 'unchanged'; reason: string }
  | { runId: string; action: 'error'; error: ErrorInfo };

export interface ReconcileReport {
  checked: number;
  actions: ReconcileAction[];
}

export interface ReconcileOptions {
  /**
   * An execution stopped less than this long ago is left for the next pass: a task it started
   * (RecordFailure) may still be writing. Default 2 minutes, well under the 5-minute schedule.
   */
  graceMs?: number;
  /** Claims looked at per pass (oldest first). */
  limit?: number;
}

const ENDED: ReadonlySet<ExecutionStatus> = new Set([
  'FAILED',
  'TIMED_OUT',
  'ABORTED',
  'SUCCEEDED',
  'MISSING',
]);

function log(entry: Record<string, unknown>): void {
  // One JSON object per line (LoggingConfig JSON). Never a task token.
  console.info(JSON.stringify({ source: 'reconcile', ...entry }));
}

async function reconcileOne(
  rt: ReconcileRuntime,
  claim: ExecutionClaim,
  graceMs: number,
): Promise<ReconcileAction> {
  const { runId, executionArn } = claim;
  const claims = executionsOf(rt.runs);
  // The execution first, then the run: a run read after its execution ended holds every write
  // the execution made (Finish and RecordFailure change the status before the execution ends).
  const execution = await rt.stepFunctions.describeExecution(executionArn);
  const run = await rt.runs.get(runId);
  if (!run || isTerminal(run.status)) {
    if (!run && !ENDED.has(execution.status)) {
      return { runId, action: 'unchanged', reason: 'the execution has not recorded its run yet' };
    }
    await claims.settle(runId);
    return { runId, action: 'settled', runStatus: run?.status ?? 'MISSING' };
  }
  if (ENDED.has(execution.status)) {
    const stoppedAt = execution.stopDate?.getTime();
    if (stoppedAt !== undefined && rt.now().getTime() - stoppedAt < graceMs) {
      return { runId, action: 'unchanged', reason: `execution ${execution.status} moments ago` };
    }
    const error: ErrorInfo = {
      code: 'ORCHESTRATOR_LOST',
      message: `execution ${executionArn} ended ${execution.status} while run ${runId} was ${run.status}, and nothing recorded why; see the execution's history in the Step Functions console, then start the run again`,
    };
    // Open steps end first (a step can be recorded only while the run is RUNNING).
    const at = rt.now().toISOString();
    for (const step of run.steps.filter((s) => s.status === 'RUNNING')) {
      await rt.runs
        .recordStep(runId, { ...step, status: 'FAILED', endedAt: at, error })
        .catch((e: unknown) => {
          if (toErrorInfo(e).code !== 'RUN_TRANSITION_ILLEGAL') throw e;
        });
    }
    await failRun(rt, {
      runId,
      pipeline: run.pipeline,
      actor: rt.actor,
      step: 'Reconcile',
      error,
      detail: { executionArn, executionStatus: execution.status },
    });
    return { runId, action: 'failed', executionStatus: execution.status, error };
  }
  const train = run.steps.find((s) => s.name === 'Train');
  const jobName = factsOf(run).training?.jobName;
  if (train?.status !== 'RUNNING' || jobName === undefined) {
    return { runId, action: 'unchanged', reason: 'running, not waiting on a training job' };
  }
  const job = await rt.trainingJobs.describe(jobName);
  if (job.status === 'ended') {
    return { runId, action: 'training-ended', outcome: await finishTrainingStep(rt, runId, job.job) };
  }
  if (job.status === 'missing') {
    return { runId, action: 'unchanged', reason: `training job ${jobName} is unknown to SageMaker` };
  }
  const token = await taskTokensOf(rt.runs).getTaskToken(runId, 'Train');
  if (token === undefined) {
    return { runId, action: 'unchanged', reason: 'the Train step stored no task token' };
  }
  const beat = await rt.stepFunctions.sendTaskHeartbeat(token);
  return { runId, action: 'heartbeat', jobName, delivered: beat.delivered };
}

/** One pass over the active claims. A claim that fails is reported and the others still run. */
export async function reconcile(
  rt: ReconcileRuntime,
  options: ReconcileOptions = {},
): Promise<ReconcileReport> {
  const graceMs = options.graceMs ?? 120_000;
  const claims = await executionsOf(rt.runs).active({ limit: options.limit ?? 200 });
  const actions: ReconcileAction[] = [];
  for (const claim of claims) {
    let action: ReconcileAction;
    try {
      action = await reconcileOne(rt, claim, graceMs);
    } catch (e) {
      action = { runId: claim.runId, action: 'error', error: toErrorInfo(e) };
    }
    if (action.action !== 'unchanged') log({ ...action });
    actions.push(action);
  }
  return { checked: claims.length, actions };
}

/**
 * The scheduled Lambda's work: one pass; if any run could not be reconciled, the invocation fails
 * (visible in the function's Errors metric and its on-failure queue) after every other run was.
 */
export async function reconcileOrThrow(
  rt: ReconcileRuntime,
  options: ReconcileOptions = {},
): Promise<ReconcileReport> {
  const report = await reconcile(rt, options);
  const failed = report.actions.filter((a) => a.action === 'error');
  if (failed.length > 0) {
    throw new VeritrailError(
      'TRANSIENT',
      `reconciling ${failed.length} of ${report.checked} run(s) failed (${failed
        .map((a) => `${a.runId}: ${a.action === 'error' ? a.error.code : ''}`)
        .join(', ')}); the next pass retries them`,
      { details: { report } },
    );
  }
  return report;
}
