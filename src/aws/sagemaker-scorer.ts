/**
 * The inference contract on AWS (docs/trainers.md): the control plane scores a trained model itself
 * with a SageMaker Batch Transform job over the held-out test features in S3. The model is
 * registered as a SageMaker Model of the same image that trained it (network isolation on, the
 * pipeline's own execution role, model.tar.gz as SageMaker wrote it), and the transform writes its
 * output encrypted with the data key. SageMaker runs the image as `serve` and POSTs the whole
 * features file (SplitType None) to /invocations; the response is the predictions CSV, written to
 * `<S3OutputPath>/<input file name>.out` (Batch Transform's documented output naming).
 *
 * Sharded features (`spec.shards`): one transform job whose input is a ManifestFile listing the
 * shards, still SplitType None, so each shard (a complete CSV with the header, at most ~64 MiB, under
 * MaxPayloadInMB) is one POST and gets one `.out` object of its own.
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
import { putBytesCas } from '../cas.js';
import { casKey, digestOf } from '../core/digest.js';
import { VeritrailError } from '../core/errors.js';
import type { ObjectStore, ScoringJobResult, ScoringJobSpec } from '../ports.js';
import { awsCall, awsErrorName, translateAwsError } from './errors.js';

export interface BatchTransformConfig {
  artifactsBucket: string;
  kmsKeyId: string;
  roleArnFor(pipeline: string): string;
  defaultInstanceType?: string;
  /**
   * The most instances a sharded transform asks for (default 1): it asks for one per
   * SHARDS_PER_INSTANCE shards up to this cap. Unsharded scoring always uses one.
   */
  maxInstanceCount?: number;
  /** Where a sharded transform's manifest is written (the artifacts bucket); required for shards. */
  objects?: ObjectStore;
  poll?: { initialDelayMs?: number; maxDelayMs?: number; timeoutMs?: number };
  sleep(ms: number): Promise<void>;
}

/** Batch Transform supports fewer instance types than training; this one is in both lists. */
const DEFAULT_TRANSFORM_INSTANCE = 'ml.m5.large';

/**
 * Shards per transform instance: SageMaker spreads a manifest's objects over the job's instances,
 * so 8 shards of ~64 MiB (~512 MiB of features) is each instance's share before another is asked
 * for (up to `maxInstanceCount`). Each instance still takes one request per shard.
 */
export const SHARDS_PER_INSTANCE = 8;

/** The longest one scoring request may take: ModelClientConfig.InvocationsTimeoutInSeconds' maximum. */
const TRANSFORM_REQUEST_TIMEOUT_SECONDS = 3600;

/** The most bytes of features Evaluate puts in one shard: one request, under MaxPayloadInMB's 100 MB with room to spare. */
export const TRANSFORM_SHARD_BYTES = 64 * 1024 * 1024;

/**
 * How long one Evaluate invocation polls the transform (under the 15-minute Lambda limit, leaving
 * time to read the predictions and compute the metrics). Past it the scorer throws
 * PROCESSING_RUNNING and Evaluate's second retrier in the ASL invokes it again; the job is found by
 * name and the wait goes on.
 */
const POLL_BUDGET_MS = 8 * 60 * 1000;

/** The manifest a sharded transform reads: where it is and its bytes (content-addressed). */
export interface TransformManifest {
  key: string;
  bytes: Uint8Array;
}

/** The SageMaker Model and the transform job a scoring spec becomes (pure, for tests and the emulator). */
export function batchTransformRequests(
  spec: ScoringJobSpec,
  config: Pick<
    BatchTransformConfig,
    'artifactsBucket' | 'kmsKeyId' | 'roleArnFor' | 'defaultInstanceType' | 'maxInstanceCount'
  >,
): {
  model: CreateModelInput;
  transform: CreateTransformJobRequest;
  outputKey: string;
  /** With shards: each shard's predictions key, in the shards' order. */
  shardOutputKeys?: string[];
  /** With shards: the manifest to write before the job is created. */
  manifest?: TransformManifest;
} {
  if (!spec.image) {
    throw new VeritrailError(
      'PIPELINE_INVALID',
      `scoring job ${spec.jobName} needs the trainer image (trainer.aws.image): Batch Transform serves the model with it`,
    );
  }
  const s3 = (key: string) => `s3://${config.artifactsBucket}/${key}`;
  const prefix = spec.outputPrefix.endsWith('/') ? spec.outputPrefix : `${spec.outputPrefix}/`;
  const outputPath = `${prefix}${spec.jobName}`;
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
  let dataSource: { S3DataType: 'S3Prefix' | 'ManifestFile'; S3Uri: string };
  let outputKey: string;
  let shardOutputKeys: string[] | undefined;
  let manifest: TransformManifest | undefined;
  let instanceCount = 1;
  if (spec.shards) {
    const m = shardManifest(spec, config.artifactsBucket, outputPath);
    manifest = m.manifest;
    shardOutputKeys = m.outputKeys;
    outputKey = m.outputKeys[0] as string;
    dataSource = { S3DataType: 'ManifestFile', S3Uri: s3(m.manifest.key) };
    instanceCount = transformInstanceCount(spec.shards.length, config.maxInstanceCount);
  } else {
    const inputName = spec.input.key.split('/').pop() ?? 'features.csv';
    outputKey = `${outputPath}/${inputName}.out`;
    dataSource = { S3DataType: 'S3Prefix', S3Uri: s3(spec.input.key) };
  }
  const transform: CreateTransformJobRequest = {
    TransformJobName: spec.jobName,
    ModelName: spec.jobName,
    TransformInput: {
      DataSource: { S3DataSource: dataSource },
      ContentType: 'text/csv',
      SplitType: 'None',
    },
    TransformOutput: { S3OutputPath: s3(outputPath), Accept: 'text/csv', KmsKeyId: config.kmsKeyId },
    TransformResources: {
      InstanceType: (spec.instanceType ??
        config.defaultInstanceType ??
        DEFAULT_TRANSFORM_INSTANCE) as TransformInstanceType,
      InstanceCount: instanceCount,
      VolumeKmsKeyId: config.kmsKeyId,
    },
    MaxPayloadInMB: 100,
    // A shard of up to 64 MiB is one request: give the model the longest a request may take (3600 s,
    // SageMaker's maximum; its default is 600 s), rather than fail a slow but working model.
    ModelClientConfig: { InvocationsTimeoutInSeconds: TRANSFORM_REQUEST_TIMEOUT_SECONDS },
    Tags: tags,
  };
  return {
    model,
    transform,
    outputKey,
    ...(shardOutputKeys ? { shardOutputKeys } : {}),
    ...(manifest ? { manifest } : {}),
  };
}

/** One instance per SHARDS_PER_INSTANCE shards, at least one, at most `max` (default 1). */
export function transformInstanceCount(shards: number, max = 1): number {
  if (!Number.isInteger(max) || max < 1) {
    throw new VeritrailError(
      'USAGE',
      `the Batch Transform instance cap must be a whole number ≥ 1, got ${max}`,
    );
  }
  return Math.min(max, Math.max(1, Math.ceil(shards / SHARDS_PER_INSTANCE)));
}

/**
 * The ManifestFile of a sharded transform, and the key each shard's predictions land at.
 *
 * The manifest (TransformS3DataSource, SageMaker API Reference) is a JSON array: first
 * `{"prefix": "s3://bucket/some/prefix/"}`, then each object's path relative to that prefix. Its
 * prefix here is the folder all shard keys share (`sha256/` for content-addressed shards), so each
 * entry is the shard's path below it (for content-addressed shards, just the hex).
 *
 * Output naming (TransformOutput.S3OutputPath, SageMaker API Reference): "For every S3 object used
 * as input for the transform job, batch transform stores the transformed data with an .out suffix
 * in a corresponding subfolder in the location in the output prefix", i.e. the object's path
 * relative to the input prefix, under S3OutputPath, plus `.out`. So a shard listed as `<hex>` is
 * scored to `<S3OutputPath>/<hex>.out`. Choosing the prefix so that content-addressed entries are
 * bare file names makes "relative path" and "file name" the same key, the naming the unsharded
 * path already relies on. The same shard listed twice (identical bytes) is listed once: both
 * positions read the one output.
 */
function shardManifest(
  spec: Pick<ScoringJobSpec, 'jobName' | 'shards'>,
  bucket: string,
  outputPath: string,
): { manifest: TransformManifest; outputKeys: string[] } {
  const shards = spec.shards ?? [];
  if (shards.length === 0) {
    throw new VeritrailError(
      'SCORING_FAILED',
      `scoring job ${spec.jobName} was given an empty list of shards`,
    );
  }
  const keys = shards.map((s) => s.key);
  for (const key of keys) {
    if (
      !key ||
      key.startsWith('/') ||
      key.endsWith('/') ||
      key.split('/').some((p) => p === '' || p === '.' || p === '..')
    ) {
      throw new VeritrailError(
        'SCORING_FAILED',
        `scoring job ${spec.jobName}: shard key "${key}" is not an object key`,
      );
    }
  }
  const folder = commonFolder(keys);
  const entries = [...new Set(keys.map((k) => k.slice(folder.length)))];
  const bytes = new TextEncoder().encode(
    JSON.stringify([{ prefix: `s3://${bucket}/${folder}` }, ...entries]),
  );
  return {
    manifest: { key: casKey(digestOf(bytes)), bytes },
    outputKeys: keys.map((k) => `${outputPath}/${k.slice(folder.length)}.out`),
  };
}

/** The longest folder (ending in `/`, possibly empty) that every key lies under. */
function commonFolder(keys: readonly string[]): string {
  let folder = keys[0]?.slice(0, keys[0].lastIndexOf('/') + 1) ?? '';
  for (const key of keys) {
    while (folder && !key.startsWith(folder)) {
      folder = folder.slice(0, folder.slice(0, -1).lastIndexOf('/') + 1);
    }
  }
  return folder;
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
  const { model, transform, outputKey, shardOutputKeys, manifest } = batchTransformRequests(spec, config);
  if (manifest) {
    if (!config.objects) {
      throw new VeritrailError(
        'INTERNAL',
        `scoring job ${spec.jobName} has shards but the Batch Transform scorer was given no object store to write their manifest to`,
      );
    }
    // Content-addressed and idempotent: a retried Evaluate writes (or finds) the same manifest.
    await putBytesCas(config.objects, manifest.bytes, digestOf(manifest.bytes));
  }
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
  const timeout = config.poll?.timeoutMs ?? Math.min(spec.maxRuntimeSeconds * 1000, POLL_BUDGET_MS);
  let delay = initial;
  let waited = 0;
  for (;;) {
    const job = await awsCall(
      { action: 'sagemaker:DescribeTransformJob', resource: `transform-job/${spec.jobName}` },
      () => sagemaker.send(new DescribeTransformJobCommand({ TransformJobName: spec.jobName })),
    );
    // A job found by name must be the one this request makes (same model, input and output), or a
    // job of that name made by someone else would be taken for ours.
    const same =
      job.ModelName === transform.ModelName &&
      job.TransformInput?.DataSource?.S3DataSource?.S3Uri ===
        transform.TransformInput?.DataSource?.S3DataSource?.S3Uri &&
      job.TransformOutput?.S3OutputPath === transform.TransformOutput?.S3OutputPath;
    if (!same) {
      throw new VeritrailError(
        'SCORING_FAILED',
        `a Batch Transform job named ${spec.jobName} exists but is not the one this run asks for (model, input or output differ); start a new run`,
        { details: { jobName: spec.jobName } },
      );
    }
    const status = job.TransformJobStatus;
    if (status === 'Completed') {
      return {
        predictionsKey: outputKey,
        ...(shardOutputKeys ? { shardPredictionKeys: shardOutputKeys } : {}),
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
      // PROCESSING_RUNNING: Evaluate's own retrier in the ASL (99 attempts, not TRANSIENT's 3)
      // invokes it again; it finds the model and the job by name and waits on.
      throw new VeritrailError(
        'PROCESSING_RUNNING',
        `Batch Transform job ${spec.jobName} is still ${status ?? 'unknown'} after ${Math.round(waited / 1000)} s; Evaluate is invoked again and waits on`,
        { details: { jobName: spec.jobName, status } },
      );
    }
    await config.sleep(delay);
    waited += delay;
    delay = Math.min(cap, delay * 2);
  }
}
