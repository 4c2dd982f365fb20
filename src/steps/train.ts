import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { hashStream, loadPipeline } from '../cas.js';
import { encodedFeatureColumns } from '../core/dataset-schema.js';
import { casKey, digestFromHex } from '../core/digest.js';
import { type ErrorInfo, VeritrailError } from '../core/errors.js';
import {
  CodeResultSchema,
  type ExecState,
  PreprocessResultSchema,
  resultOf,
  type TrainResult,
} from '../core/exec-state.js';
import { CONTENT_PREFIX, TRAINING_PREFIX } from '../core/layout.js';
import { CODE_CHANNEL, type PipelineDefinition } from '../core/pipeline.js';
import { factsOf } from '../core/run-facts.js';
import type { TrainingJobResult, TrainingJobSpec } from '../ports.js';
import type { Runtime } from '../runtime.js';
import { runStep, StepFailure, type StepOutcome, taskTokensOf } from './step.js';

/** SageMaker job names: 1-63 of [a-zA-Z0-9-], unique per run. The `vt-` prefix scopes our rules. */
export function trainingJobName(runId: string): string {
  return `vt-${runId.replace(/[^A-Za-z0-9-]/g, '-')}`.slice(0, 63);
}

export function trainingSpec(state: ExecState, def: PipelineDefinition, taskToken?: string): TrainingJobSpec {
  const pre = resultOf(state, 'preprocess', PreprocessResultSchema);
  const jobName = trainingJobName(state.runId);
  const hyperparameters: Record<string, string> = {};
  for (const [k, v] of Object.entries(def.hyperparameters)) hyperparameters[k] = String(v);
  // SageMaker passes hyperparameters as strings; these tell the container what to read and what
  // digests to insist on before it reads a single row.
  hyperparameters.veritrail_label = def.dataset.label.column;
  // The processed channels' feature columns (categorical features one-hot encoded by Preprocess).
  hyperparameters.veritrail_features = encodedFeatureColumns(def).join(',');
  // On AWS CheckCode shipped the scanned code as a content-addressed bundle: it becomes the `code`
  // channel, pinned by digest like the data, and the image's entrypoint runs trainer.command in it.
  const bundle = CodeResultSchema.safeParse(state.results?.code).data?.bundle;
  if (bundle) hyperparameters.veritrail_command = JSON.stringify(def.trainer.command);
  // The inference contract (trainer.predict) travels inside model.tar.gz with the code it runs, so
  // the image's `serve` (Batch Transform scoring) answers with exactly the code that was scanned.
  if (bundle && def.trainer.predict) hyperparameters.veritrail_predict = JSON.stringify(def.trainer.predict);
  hyperparameters.veritrail_channel_digests = JSON.stringify({
    train: pre.train.digest,
    validation: pre.validation.digest,
    ...(bundle ? { [CODE_CHANNEL]: bundle.digest } : {}),
  });
  const base = state.pipeline.base?.startsWith('file:') ? fileURLToPath(state.pipeline.base) : undefined;
  return {
    jobName,
    runId: state.runId,
    pipeline: state.pipeline.name,
    command: def.trainer.command,
    ...(base ? { workingDir: base, codeDir: join(base, def.trainer.code) } : {}),
    ...(def.trainer.aws
      ? {
          image: def.trainer.aws.image,
          instanceType: def.trainer.aws.instanceType,
          instanceCount: def.trainer.aws.instanceCount,
          volumeSizeGB: def.trainer.aws.volumeSizeGb,
          networkIsolation: def.trainer.aws.networkIsolation,
          ...(def.trainer.aws.vpc
            ? {
                vpc: {
                  subnets: def.trainer.aws.vpc.subnets,
                  securityGroupIds: def.trainer.aws.vpc.securityGroups,
                },
              }
            : {}),
        }
      : {}),
    hyperparameters,
    channels: {
      train: { key: pre.train.key, digest: pre.train.digest, fileName: pre.train.fileName },
      validation: {
        key: pre.validation.key,
        digest: pre.validation.digest,
        fileName: pre.validation.fileName,
      },
      ...(bundle ? { [CODE_CHANNEL]: bundle } : {}),
    },
    // Each pipeline's SageMaker role may write only under its own training/<pipeline>/ prefix.
    outputPrefix: `${TRAINING_PREFIX}${state.pipeline.name}/`,
    maxRuntimeSeconds: def.trainer.aws?.maxRuntimeSeconds ?? 3600,
    ...(taskToken ? { taskToken } : {}),
  };
}

/** Train, first half: launch the job pinned to the processed digests. */
export async function launchTraining(
  rt: Runtime,
  state: ExecState,
  taskToken?: string,
): Promise<StepOutcome<{ jobName: string; startedAt: string }>> {
  const def = await loadPipeline(rt.objects, state.pipeline.digest);
  const spec = trainingSpec(state, def, taskToken);
  const startedAt = rt.now().toISOString();
  // The token is a bearer credential: its own item, stored before the job can end (never in facts).
  if (taskToken) await taskTokensOf(rt.runs).putTaskToken(state.runId, 'Train', taskToken);
  await rt.trainer.start(spec);
  return {
    output: { jobName: spec.jobName, startedAt },
    digests: Object.fromEntries(Object.entries(spec.channels).map(([name, ch]) => [name, ch.digest])),
    // The callback (AWS) finds the run and its state here when the job ends; the token is apart.
    facts: { training: { jobName: spec.jobName, startedAt, state } },
    detail: { jobName: spec.jobName },
  };
}

/** Train, second half: the job ended; hash what it produced. */
async function completeTraining(
  rt: Runtime,
  _state: ExecState,
  job: TrainingJobResult,
  startedAt: string,
): Promise<StepOutcome<TrainResult>> {
  if (job.status !== 'Completed' || !job.modelKey || !job.outputKey) {
    throw new VeritrailError(
      job.errorCode ?? 'TRAINING_FAILED',
      `training job ${job.jobName} ${job.status.toLowerCase()}: ${job.failureReason ?? 'no reason given'}`,
    );
  }
  const model = await hashStream(await rt.objects.open('artifacts', job.modelKey));
  const output = await hashStream(await rt.objects.open('artifacts', job.outputKey));
  const modelDigest = digestFromHex(model.hex);
  const outputDigest = digestFromHex(output.hex);
  if (job.modelKey.startsWith(CONTENT_PREFIX) && job.modelKey !== casKey(modelDigest)) {
    throw new VeritrailError(
      'DIGEST_MISMATCH',
      `model.tar.gz at ${job.modelKey} does not hash to its address (${modelDigest})`,
    );
  }
  const endedAt = rt.now().toISOString();
  return {
    output: {
      jobName: job.jobName,
      model: { key: job.modelKey, digest: modelDigest },
      output: { key: job.outputKey, digest: outputDigest },
      startedAt,
      endedAt,
      ...(job.isolation ? { isolation: job.isolation } : {}),
      ...(job.channelsSealed ? { channelsSealed: true } : {}),
    },
    digests: { model: modelDigest, trainingOutput: outputDigest },
    facts: {
      modelDigest,
      modelKey: job.modelKey,
      trainingOutputKey: job.outputKey,
      trainingJob: job.jobName,
      ...(job.isolation ? { trainerIsolation: job.isolation.level } : {}),
    },
    detail: {
      jobName: job.jobName,
      modelSize: model.size,
      ...(job.isolation ? { isolation: job.isolation.level } : {}),
    },
    startedAt,
  };
}

export interface TrainingEnd {
  /** The task token the execution waits on (AWS); absent locally. */
  taskToken?: string;
  output?: TrainResult;
  error?: ErrorInfo;
}

/**
 * What happens when a training job ends, on AWS (the SageMaker state-change event reaches the
 * callback function) and locally (the child process exits) alike: find the run the job belongs to,
 * finish the Train step through runStep (audited), and say what to tell the waiting execution.
 */
export async function handleTrainingEnd(
  rt: Runtime,
  runId: string,
  job: TrainingJobResult,
): Promise<TrainingEnd> {
  const run = await rt.runs.get(runId);
  const training = run ? factsOf(run).training : undefined;
  if (!run || !training?.state || training.jobName !== job.jobName) {
    throw new VeritrailError(
      'RUN_NOT_FOUND',
      `training job ${job.jobName} belongs to no recorded run (run ${runId})`,
    );
  }
  const startedAt = training.startedAt ?? rt.now().toISOString();
  const taskToken = await taskTokensOf(rt.runs).getTaskToken(runId, 'Train');
  try {
    const output = await runStep(rt, 'Train', training.state, (s) => completeTraining(rt, s, job, startedAt));
    return { ...(taskToken ? { taskToken } : {}), output };
  } catch (e) {
    if (e instanceof StepFailure) return { ...(taskToken ? { taskToken } : {}), error: e.info };
    throw e;
  }
}
