/**
 * Lambda for the EventBridge rule on "SageMaker Training Job State Change" (stacks/Triggers.ts):
 * the second half of the Train state. The Train function launched the job and the execution waits
 * on a task token (`lambda:invoke.waitForTaskToken`); when the job reaches a terminal status, this
 * finishes the Train step through the same code the local runner uses (`handleTrainingEnd`:
 * hash model.tar.gz and output.tar.gz, audit before success) and resolves the token.
 *
 * EventBridge delivers at least once, and the rule matches every `vt-*` job of the account (other
 * stages too), so every path is idempotent: a job of no run in this table, a run that already
 * ended, or a token already used or timed out is logged and dropped, never an error.
 */

import { isVeritrailError, VeritrailError } from '../core/errors.js';
import {
  parseTrainingJobStateChangeEvent,
  type TrainingJobStateChangeEvent,
  tagsOf,
  trainingJobOutcomeOf,
} from '../core/events/index.js';
import { TRAINING_JOB_NAME_PREFIX } from '../core/rules.js';
import type { Runtime } from '../runtime.js';
import { handleTrainingEnd } from '../steps/train.js';
import { type EndedTrainingJob, RUN_ID_TAG, trainingJobResultOf } from './sagemaker-trainer.js';
import type { StepFunctions, TaskResult } from './sfn.js';

/** What the callback needs beyond the shared ports: the task-token API and the artifacts bucket. */
export interface CallbackRuntime extends Runtime {
  stepFunctions: Pick<StepFunctions, 'sendTaskSuccess' | 'sendTaskFailure'>;
  config: { buckets: { artifacts: string } };
}

export type CallbackOutcome =
  | { action: 'ignored'; jobName: string; runId?: string; reason: string }
  | {
      action: 'succeeded' | 'failed';
      jobName: string;
      runId: string;
      /** False when Step Functions no longer waits on the token (an earlier delivery resolved it). */
      delivered: boolean;
    };

/**
 * The run a job belongs to: the `veritrail:run-id` tag the trainer sets, else the job name, which
 * is `vt-<runId>` (src/steps/train.ts `trainingJobName`; run ids are `r-<base32>`, already valid
 * in job names). `handleTrainingEnd` then checks that the run's recorded job is this very job.
 */
export function runIdOfJob(event: TrainingJobStateChangeEvent): string | undefined {
  const tagged = tagsOf(event)[RUN_ID_TAG];
  if (tagged) return tagged;
  const name = event.detail.TrainingJobName;
  return name.startsWith(TRAINING_JOB_NAME_PREFIX) && name.length > TRAINING_JOB_NAME_PREFIX.length
    ? name.slice(TRAINING_JOB_NAME_PREFIX.length)
    : undefined;
}

function log(entry: Record<string, unknown>): void {
  // JSON log format (LoggingConfig): one object per line. Never the task token: it is a bearer credential.
  console.info(JSON.stringify({ source: 'training-callback', ...entry }));
}

function delivered(result: TaskResult): boolean {
  if (!result.delivered)
    log({ message: 'task token no longer waited on; nothing to do', reason: result.reason });
  return result.delivered;
}

export async function handleTrainingJobEvent(rt: CallbackRuntime, value: unknown): Promise<CallbackOutcome> {
  const event = parseTrainingJobStateChangeEvent(value);
  const jobName = event.detail.TrainingJobName;
  const ignored = (reason: string, runId?: string): CallbackOutcome => {
    log({ message: 'event ignored', jobName, ...(runId ? { runId } : {}), reason });
    return { action: 'ignored', jobName, ...(runId ? { runId } : {}), reason };
  };
  const outcome = trainingJobOutcomeOf(event);
  if (!outcome) return ignored(`status ${event.detail.TrainingJobStatus} is not terminal`);
  const runId = runIdOfJob(event);
  if (!runId)
    return ignored(
      `job has no ${RUN_ID_TAG} tag and its name does not start with ${TRAINING_JOB_NAME_PREFIX}`,
    );

  const outputConfig = event.detail.OutputDataConfig as { S3OutputPath?: unknown } | undefined;
  return finishTrainingStep(rt, runId, {
    jobName,
    status: outcome.status,
    ...(outcome.failureReason !== undefined ? { failureReason: outcome.failureReason } : {}),
    ...(outcome.modelArtifactsUri !== undefined ? { modelArtifactsUri: outcome.modelArtifactsUri } : {}),
    ...(typeof outputConfig?.S3OutputPath === 'string' ? { outputPath: outputConfig.S3OutputPath } : {}),
  });
}

/**
 * A training job of run `runId` has ended (the state-change event said so, or the reconciler saw it
 * with DescribeTrainingJob): finish the Train step (`handleTrainingEnd`: hash, audit before success)
 * and resolve the task token. Idempotent: a run that already ended, or a token already used, is a no-op.
 */
export async function finishTrainingStep(
  rt: CallbackRuntime,
  runId: string,
  ended: EndedTrainingJob,
): Promise<CallbackOutcome> {
  const { jobName } = ended;
  const ignored = (reason: string): CallbackOutcome => {
    log({ message: 'event ignored', jobName, runId, reason });
    return { action: 'ignored', jobName, runId, reason };
  };
  const run = await rt.runs.get(runId);
  if (!run) return ignored('no such run in this deployment (a job of another stage, or not ours)');
  if (run.status !== 'RUNNING') return ignored(`run is ${run.status} already (a late redelivery)`);

  const job = trainingJobResultOf(ended, rt.config.buckets.artifacts);
  let end: Awaited<ReturnType<typeof handleTrainingEnd>>;
  try {
    end = await handleTrainingEnd(rt, runId, job);
  } catch (e) {
    if (isVeritrailError(e, 'RUN_NOT_FOUND')) return ignored(e.message);
    throw e;
  }
  if (!end.taskToken) return ignored('the run recorded no task token to resolve');
  if (end.error) {
    if (end.error.code === 'TRANSIENT') {
      // Failing the task would make the Train state retry and launch again, while this job has
      // already ended. Throwing lets Lambda's asynchronous retries deliver the event again instead.
      throw new VeritrailError('TRANSIENT', `finishing training job ${jobName}: ${end.error.message}`);
    }
    log({ message: 'training step failed', jobName, runId, error: end.error });
    // Error and Cause as RecordFailure reads them (src/core/errors.ts errorFromCatch): Cause is {code, message}.
    const result = await rt.stepFunctions.sendTaskFailure(
      end.taskToken,
      `Veritrail.${end.error.code}`,
      JSON.stringify(end.error),
    );
    return { action: 'failed', jobName, runId, delivered: delivered(result) };
  }
  const result = await rt.stepFunctions.sendTaskSuccess(end.taskToken, end.output);
  log({ message: 'training step succeeded', jobName, runId });
  return { action: 'succeeded', jobName, runId, delivered: delivered(result) };
}
