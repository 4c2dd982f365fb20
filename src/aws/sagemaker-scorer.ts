/**
 * The inference contract on AWS (docs/trainers.md): the control plane scores a trained model itself
 * with a SageMaker Batch Transform job over the held-out test features in S3. The model is
 * registered as a SageMaker Model of the same image that trained it (network isolation on, the
 * pipeline's own execution role, model.tar.gz as SageMaker wrote it), and the transform writes its
 * output encrypted with the data key. SageMaker runs the image as `serve` and POSTs the whole
 * features file (SplitType None) to /invocations; the response is the predictions CSV, written to
 * `<S3OutputPath>/<input file name>.out` (Batch Transform's documented output naming).
 */
import {
  CreateModelCommand,
  type CreateModelInput,
  CreateTransformJobCommand,
  type CreateTransformJobRequest,
  DescribeTransformJobCommand,
  type SageMakerClient,
  type TransformInstanceType,
} from '@aws-sdk/client-sagemaker';
import { VeritrailError } from '../core/errors.js';
import type { ScoringJobResult, ScoringJobSpec } from '../ports.js';
import { awsCall, awsErrorName, translateAwsError } from './errors.js';

export interface BatchTransformConfig {
  artifactsBucket: string;
  kmsKeyId: string;
  roleArnFor(pipeline: string): string;
  defaultInstanceType?: string;
  poll?: { initialDelayMs?: number; maxDelayMs?: number; timeoutMs?: number };
  sleep(ms: number): Promise<void>;
}

/** Batch Transform supports fewer instance types than training; this one is in both lists. */
const DEFAULT_TRANSFORM_INSTANCE = 'ml.m5.large';

/** The SageMaker Model and the transform job a scoring spec becomes (pure, for tests and the emulator). */
export function batchTransformRequests(
  spec: ScoringJobSpec,
  config: Pick<BatchTransformConfig, 'artifactsBucket' | 'kmsKeyId' | 'roleArnFor' | 'defaultInstanceType'>,
): { model: CreateModelInput; transform: CreateTransformJobRequest; outputKey: string } {
  if (!spec.image) {
    throw new VeritrailError(
      'PIPELINE_INVALID',
      `scoring job ${spec.jobName} needs the trainer image (trainer.aws.image): Batch Transform serves the model with it`,
    );
  }
  const s3 = (key: string) => `s3://${config.artifactsBucket}/${key}`;
  const prefix = spec.outputPrefix.endsWith('/') ? spec.outputPrefix : `${spec.outputPrefix}/`;
  const outputPath = `${prefix}${spec.jobName}`;
  const inputName = spec.input.key.split('/').pop() ?? 'features.csv';
  const tags = [
    { Key: 'veritrail:run-id', Value: spec.runId },
    { Key: 'veritrail:pipeline', Value: spec.pipeline },
  ];
  const model: CreateModelInput = {
    ModelName: spec.jobName,
    ExecutionRoleArn: config.roleArnFor(spec.pipeline),
    PrimaryContainer: {
      Image: spec.image,
      ModelDataUrl: s3(spec.model.key),
      Environment: { VERITRAIL_MODEL_DIGEST: spec.model.digest },
    },
    EnableNetworkIsolation: spec.networkIsolation ?? true,
    Tags: tags,
  };
  const transform: CreateTransformJobRequest = {
    TransformJobName: spec.jobName,
    ModelName: spec.jobName,
    TransformInput: {
      DataSource: { S3DataSource: { S3DataType: 'S3Prefix', S3Uri: s3(spec.input.key) } },
      ContentType: 'text/csv',
      SplitType: 'None',
    },
    TransformOutput: { S3OutputPath: s3(outputPath), Accept: 'text/csv', KmsKeyId: config.kmsKeyId },
    TransformResources: {
      InstanceType: (spec.instanceType ??
        config.defaultInstanceType ??
        DEFAULT_TRANSFORM_INSTANCE) as TransformInstanceType,
      InstanceCount: 1,
      VolumeKmsKeyId: config.kmsKeyId,
    },
    MaxPayloadInMB: 100,
    Tags: tags,
  };
  return { model, transform, outputKey: `${outputPath}/${inputName}.out` };
}

/**
 * Creates the model and the transform job (both idempotent by name: a retried Evaluate finds them)
 * and polls DescribeTransformJob until it ends. SCORING_FAILED carries SageMaker's failure reason.
 */
export async function scoreWithBatchTransform(
  sagemaker: SageMakerClient,
  config: BatchTransformConfig,
  spec: ScoringJobSpec,
): Promise<ScoringJobResult> {
  const { model, transform, outputKey } = batchTransformRequests(spec, config);
  for (const [command, action, resource] of [
    [new CreateModelCommand(model), 'sagemaker:CreateModel', `model/${spec.jobName}`],
    [
      new CreateTransformJobCommand(transform),
      'sagemaker:CreateTransformJob',
      `transform-job/${spec.jobName}`,
    ],
  ] as const) {
    try {
      await sagemaker.send(command as CreateModelCommand);
    } catch (e) {
      const name = awsErrorName(e);
      const exists =
        name === 'ResourceInUse' ||
        (name === 'ValidationException' && /already exist/i.test((e as Error).message));
      if (!exists) throw translateAwsError(e, { action, resource });
    }
  }
  const initial = config.poll?.initialDelayMs ?? 10_000;
  const cap = config.poll?.maxDelayMs ?? 30_000;
  const timeout = config.poll?.timeoutMs ?? Math.min(spec.maxRuntimeSeconds * 1000, 12 * 60 * 1000);
  let delay = initial;
  let waited = 0;
  for (;;) {
    const job = await awsCall(
      { action: 'sagemaker:DescribeTransformJob', resource: `transform-job/${spec.jobName}` },
      () => sagemaker.send(new DescribeTransformJobCommand({ TransformJobName: spec.jobName })),
    );
    const status = job.TransformJobStatus;
    if (status === 'Completed') {
      return {
        predictionsKey: outputKey,
        isolation: {
          level: 'sagemaker-batch-transform',
          network: !(spec.networkIsolation ?? true),
          stateDirVisible: false,
        },
      };
    }
    if (status === 'Failed' || status === 'Stopped') {
      throw new VeritrailError(
        'SCORING_FAILED',
        `Batch Transform job ${spec.jobName} ${status.toLowerCase()}: ${job.FailureReason ?? 'no reason given'}; the image must serve the inference contract (docs/trainers.md)`,
        { details: { jobName: spec.jobName, status } },
      );
    }
    if (waited >= timeout) {
      // TRANSIENT: the state machine retries Evaluate, which finds the job by name and waits on.
      throw new VeritrailError(
        'TRANSIENT',
        `Batch Transform job ${spec.jobName} is still ${status ?? 'unknown'} after ${Math.round(waited / 1000)} s; Evaluate is retried and waits on`,
        { details: { jobName: spec.jobName, status } },
      );
    }
    await config.sleep(delay);
    waited += delay;
    delay = Math.min(cap, delay * 2);
  }
}
