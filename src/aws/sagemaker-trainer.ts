/**
 * Trainer over SageMaker training jobs.
 *
 * The job is pinned end to end (invariant 2): the image by `@sha256:` digest, every input channel
 * to one content-addressed key of the artifacts bucket, and the expected digest of every channel
 * is passed to the container as the `veritrail_channel_digests` hyperparameter (canonical JSON
 * `{"<channel>":"sha256:<hex>"}`) so the training code verifies the bytes before reading a row —
 * the same contract the embedded trainer gives its child process.
 *
 * Security settings are always on: inter-container traffic encryption, the output KMS key, and the
 * volume KMS key wherever SageMaker accepts one (EBS volumes; instance-store NVMe is encrypted by
 * the instance itself, see hasInstanceStorage); network isolation defaults to on, and a VPC config
 * is applied when given.
 *
 * `wait()` polls DescribeTrainingJob with backoff. It is for the CLI and tests: the deployed state
 * machine does not poll, it waits on the "SageMaker Training Job State Change" EventBridge event
 * through a Step Functions task token (the callback function resolves the token). The task token
 * is therefore never sent to SageMaker.
 */
import {
  CreateTrainingJobCommand,
  type CreateTrainingJobRequest,
  DescribeTrainingJobCommand,
  type DescribeTrainingJobCommandOutput,
  type SageMakerClient,
  type TrainingInstanceType,
} from '@aws-sdk/client-sagemaker';
import { hexOf } from '../core/digest.js';
import { VeritrailError } from '../core/errors.js';
import { isImagePinned, unpinnedImage } from '../core/image.js';
import { canonicalJson } from '../core/jcs.js';
import type {
  ObjectStore,
  ScoringJobResult,
  ScoringJobSpec,
  Trainer,
  TrainingJobResult,
  TrainingJobSpec,
} from '../ports.js';
import { awsCall, awsErrorName, translateAwsError } from './errors.js';
import { scoreWithBatchTransform, TRANSFORM_SHARD_BYTES } from './sagemaker-scorer.js';

/** Hyperparameter carrying the expected digest of every channel. */
const CHANNEL_DIGESTS_HYPERPARAMETER = 'veritrail_channel_digests';
/** Hyperparameters starting with this are veritrail's own; a pipeline may not set them. */
const RESERVED_HYPERPARAMETER_PREFIX = 'veritrail_';
/**
 * Reserved hyperparameters the Train step itself sets (src/steps/train.ts `trainingSpec`): the
 * label column and the feature list, which tell the container what to read. Any other key in the
 * reserved namespace is refused; the channel digests are always recomputed here from the channels.
 */
const STEP_HYPERPARAMETERS: readonly string[] = [
  'veritrail_label',
  'veritrail_features',
  // The trainer command the image's entrypoint runs inside the code channel (JSON array).
  'veritrail_command',
  // The inference command the image's `serve` runs from the model's copy of the code (JSON array).
  'veritrail_predict',
];

export const RUN_ID_TAG = 'veritrail:run-id';
export const PIPELINE_TAG = 'veritrail:pipeline';

/** SageMaker's limits (CreateTrainingJob API reference). */
const JOB_NAME_RE = /^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$/;
const CHANNEL_NAME_RE = /^[A-Za-z0-9.\-_]{1,64}$/;
const MAX_HYPERPARAMETERS = 100;
const MAX_HYPERPARAMETER_KEY = 256;
const MAX_HYPERPARAMETER_VALUE = 2500;
const MAX_TAG_VALUE = 256;

interface VpcSettings {
  subnets: readonly string[];
  securityGroupIds: readonly string[];
}

export interface SageMakerTrainerConfig {
  /**
   * The SageMaker execution role of each pipeline (pipeline name → role ARN), each scoped by the
   * stack to its own `training/<pipeline>/` prefix; the spec's `pipeline` picks one.
   */
  roleArns?: Readonly<Record<string, string>>;
  /** The role of a pipeline missing from `roleArns` (a single-pipeline setup outside the stack). */
  roleArn?: string;
  /** Real name of the artifacts bucket: channels are read from it and output is written to it. */
  artifactsBucket: string;
  /** KMS key for the output artifacts and the training volume. */
  kmsKeyId: string;
  defaultInstanceType?: string;
  instanceCount?: number;
  volumeSizeGB?: number;
  /** Default true: the container gets no network at all. */
  networkIsolation?: boolean;
  vpc?: VpcSettings;
  /**
   * The artifacts store: a sharded scoring job writes its Batch Transform manifest there
   * (src/aws/sagemaker-scorer.ts). Without it only unsharded features can be scored.
   */
  objects?: ObjectStore;
  /** Most instances a sharded Batch Transform asks for (default 1; src/aws/sagemaker-scorer.ts). */
  transformMaxInstances?: number;
  /** The most bytes of features in one transform request (default TRANSFORM_SHARD_BYTES). */
  transformShardBytes?: number;
  /** Backoff of `wait()`: first delay, cap, and overall limit. */
  poll?: { initialDelayMs?: number; maxDelayMs?: number; timeoutMs?: number };
  /** Injected for tests. */
  sleep?: (ms: number) => Promise<void>;
}

/** The port's spec: its SageMaker settings (instances, volume, isolation, VPC) override the trainer's defaults. */
export type SageMakerJobSpec = TrainingJobSpec;

const DEFAULT_INSTANCE_TYPE = 'ml.m5.large';

/**
 * Instance families whose storage is local NVMe instance store rather than EBS, beyond those whose
 * name carries the `d` attribute (m5d, c5d, r5d, g4dn, p3dn, p4d, p4de, m6id…): the GPU, Trainium
 * and Gaudi families that ship NVMe drives (EC2 User Guide, "Instance store volumes": g5, g6, g6e,
 * gr6, p5, p5e, p5en, trn1, trn1n, trn2, dl1).
 */
const INSTANCE_STORE_FAMILIES: ReadonlySet<string> = new Set([
  'g5',
  'g6',
  'g6e',
  'gr6',
  'p5',
  'p5e',
  'p5en',
  'trn1',
  'trn1n',
  'trn2',
  'dl1',
]);

/**
 * Whether a SageMaker instance type trains on local NVMe instance storage. SageMaker refuses a
 * VolumeKmsKeyId for those (CreateTrainingJob API reference, ResourceConfig.VolumeKmsKeyId:
 * "Certain Nitro-based instances include local storage … Local storage volumes are encrypted using
 * a hardware module on the instance. You can't request a VolumeKmsKeyId when using an instance
 * type with local storage"; https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_ResourceConfig.html).
 * The family is `ml.<family>.<size>`; `<letters><generation><attributes>`, where a `d` among the
 * attributes means instance store (EC2 instance type naming conventions).
 */
function hasInstanceStorage(instanceType: string): boolean {
  const family = instanceType.split('.')[1] ?? '';
  if (INSTANCE_STORE_FAMILIES.has(family)) return true;
  const m = /^[a-z]+[0-9]+([a-z-]*)$/.exec(family);
  return m !== null && (m[1] ?? '').includes('d');
}
const DEFAULT_VOLUME_GB = 30;

function invalid(jobName: string, message: string): VeritrailError {
  return new VeritrailError('TRAINING_FAILED', `training job ${jobName}: ${message}`, {
    details: { jobName },
  });
}

/**
 * The output prefix as an S3 key prefix ending in one `/`: relative (no leading `/`), no `.`/`..`
 * or empty segments, so the S3OutputPath cannot escape the pipeline's prefix its role may write.
 */
function normalizedOutputPrefix(jobName: string, prefix: string): string {
  const trimmed = prefix.replace(/\/+$/, '');
  const segments = trimmed.split('/');
  if (
    trimmed.length === 0 ||
    segments.some((seg) => seg === '' || seg === '.' || seg === '..') ||
    !/^[A-Za-z0-9!_.*'()/-]+$/.test(trimmed)
  ) {
    throw invalid(
      jobName,
      `output prefix "${prefix}" is not a plain relative S3 key prefix (such as training/<pipeline>/)`,
    );
  }
  return `${trimmed}/`;
}

function sameDigests(json: string, digests: Record<string, string>): boolean {
  try {
    const parsed: unknown = JSON.parse(json);
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return false;
    return canonicalJson(parsed) === canonicalJson(digests);
  } catch {
    return false;
  }
}

/**
 * Where SageMaker puts a job's results under an output prefix of the artifacts bucket:
 * `<prefix><job>/output/model.tar.gz` (SM_MODEL_DIR packed) and `…/output/output.tar.gz`
 * (SM_OUTPUT_DATA_DIR packed) (SageMaker Developer Guide, "How Amazon SageMaker Processes
 * Training Output").
 */
export function trainingOutputKeys(
  outputPrefix: string,
  jobName: string,
): { modelKey: string; outputKey: string } {
  const base = `${normalizedOutputPrefix(jobName, outputPrefix)}${jobName}/output/`;
  return { modelKey: `${base}model.tar.gz`, outputKey: `${base}output.tar.gz` };
}

/** What SageMaker reported about an ended job (DescribeTrainingJob, or the state-change event). */
export interface EndedTrainingJob {
  jobName: string;
  status: TrainingJobResult['status'];
  failureReason?: string;
  /** `ModelArtifacts.S3ModelArtifacts`: `s3://<bucket>/<prefix>/<job>/output/model.tar.gz`. */
  modelArtifactsUri?: string;
  /** `OutputDataConfig.S3OutputPath`, used when the model URI is not reported. */
  outputPath?: string;
}

/**
 * A DescribeTrainingJob answer as an ended job, or undefined while the job has not reached a
 * terminal status (the trainer's wait and the reconciler read it the same way).
 */
export function endedTrainingJobOf(
  jobName: string,
  job: DescribeTrainingJobCommandOutput,
): EndedTrainingJob | undefined {
  const status = job.TrainingJobStatus;
  if (status !== 'Completed' && status !== 'Failed' && status !== 'Stopped') return undefined;
  return {
    jobName,
    status,
    ...(job.FailureReason ? { failureReason: job.FailureReason } : {}),
    ...(job.ModelArtifacts?.S3ModelArtifacts
      ? { modelArtifactsUri: job.ModelArtifacts.S3ModelArtifacts }
      : {}),
    ...(job.OutputDataConfig?.S3OutputPath ? { outputPath: job.OutputDataConfig.S3OutputPath } : {}),
  };
}

/**
 * The port's result for an ended job, with artifacts-bucket keys. A completed job whose model is
 * not where this job's output must be (another bucket, another job's folder) gets no keys and a
 * reason, so the Train step fails it as TRAINING_FAILED rather than hashing someone else's bytes.
 */
export function trainingJobResultOf(job: EndedTrainingJob, artifactsBucket: string): TrainingJobResult {
  const result: TrainingJobResult = { jobName: job.jobName, status: job.status };
  if (job.failureReason) result.failureReason = job.failureReason;
  if (job.status !== 'Completed') return result;
  const bucketUri = `s3://${artifactsBucket}/`;
  const suffix = `/${job.jobName}/output/model.tar.gz`;
  let uri = job.modelArtifactsUri;
  if (uri === undefined && job.outputPath?.startsWith(bucketUri)) {
    uri = `${job.outputPath.replace(/\/+$/, '')}${suffix}`;
  }
  if (uri === undefined) {
    result.failureReason = 'SageMaker reported no model artifacts for it';
    return result;
  }
  if (!uri.startsWith(bucketUri) || !uri.endsWith(suffix) || uri.length <= bucketUri.length + suffix.length) {
    result.failureReason = `its model artifacts ${uri} are not at <prefix>${suffix} in the artifacts bucket ${artifactsBucket}`;
    return result;
  }
  result.modelKey = uri.slice(bucketUri.length);
  // SageMaker writes output.tar.gz next to model.tar.gz.
  result.outputKey = `${result.modelKey.slice(0, -'model.tar.gz'.length)}output.tar.gz`;
  return result;
}

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export class SageMakerTrainer implements Trainer {
  private readonly sleep: (ms: number) => Promise<void>;
  /** Each shard is one Batch Transform request, which MaxPayloadInMB (100 MB) bounds. */
  readonly scoreShardBytes: number;

  constructor(
    private readonly sagemaker: SageMakerClient,
    private readonly config: SageMakerTrainerConfig,
  ) {
    for (const k of ['artifactsBucket', 'kmsKeyId'] as const) {
      if (!config[k]) throw new VeritrailError('USAGE', `SageMakerTrainer needs ${k}`);
    }
    this.sleep = config.sleep ?? defaultSleep;
    this.scoreShardBytes = config.transformShardBytes ?? TRANSFORM_SHARD_BYTES;
  }

  private s3Uri(key: string): string {
    return `s3://${this.config.artifactsBucket}/${key}`;
  }

  /** The execution role of the spec's pipeline: its own, so it can write only its own output prefix. */
  roleArnFor(pipeline: string): string {
    const own = this.config.roleArns?.[pipeline];
    const role = own ?? this.config.roleArn;
    if (!role) {
      throw new VeritrailError(
        'PIPELINE_INVALID',
        `pipeline ${pipeline} has no SageMaker execution role in this deployment: give its definition a trainer.aws block and deploy again (npx sst deploy), so the stack creates its role and lists it in VERITRAIL_SAGEMAKER_ROLE_ARNS`,
        { details: { pipeline } },
      );
    }
    return role;
  }

  /** The CreateTrainingJob request for a spec: exposed so tests and `--dry-run` can show it. */
  buildRequest(spec: SageMakerJobSpec): CreateTrainingJobRequest {
    const { jobName } = spec;
    if (!JOB_NAME_RE.test(jobName)) {
      throw new VeritrailError(
        'USAGE',
        `training job name "${jobName}" is invalid: SageMaker allows 1-63 letters, digits and hyphens, starting with a letter or digit`,
      );
    }
    if (!spec.image || !isImagePinned(spec.image)) {
      throw unpinnedImage(`training job ${jobName}: the image`, spec.image, { jobName, image: spec.image });
    }
    const channelNames = Object.keys(spec.channels).sort();
    if (channelNames.length === 0) throw invalid(jobName, 'it has no input channel');
    const digests: Record<string, string> = {};
    for (const name of channelNames) {
      const channel = spec.channels[name];
      if (!channel) continue;
      if (!CHANNEL_NAME_RE.test(name))
        throw invalid(jobName, `channel name "${name}" is invalid for SageMaker`);
      // The key must be content-addressed by the very digest the container will check, so that
      // S3Prefix cannot pick up different bytes than the ones recorded.
      if (!channel.key.includes(hexOf(channel.digest))) {
        throw new VeritrailError(
          'PROVENANCE_BROKEN',
          `training job ${jobName}: channel "${name}" reads ${channel.key}, which is not the content-addressed key of ${channel.digest}`,
          { details: { jobName, channel: name, key: channel.key, digest: channel.digest } },
        );
      }
      digests[name] = channel.digest;
    }

    const hyperparameters: Record<string, string> = {};
    const channelDigests = canonicalJson(digests);
    for (const [k, v] of Object.entries(spec.hyperparameters)) {
      if (k === CHANNEL_DIGESTS_HYPERPARAMETER) {
        // The step may pass them; they must then be exactly the channels' digests (invariant 2).
        if (!sameDigests(String(v), digests)) {
          throw invalid(jobName, `hyperparameter "${k}" does not match the digests of its channels`);
        }
        continue;
      }
      if (k.startsWith(RESERVED_HYPERPARAMETER_PREFIX) && !STEP_HYPERPARAMETERS.includes(k)) {
        throw invalid(
          jobName,
          `hyperparameter "${k}" uses the reserved prefix "${RESERVED_HYPERPARAMETER_PREFIX}"`,
        );
      }
      hyperparameters[k] = String(v);
    }
    hyperparameters[CHANNEL_DIGESTS_HYPERPARAMETER] = channelDigests;
    const entries = Object.entries(hyperparameters);
    if (entries.length > MAX_HYPERPARAMETERS)
      throw invalid(jobName, `more than ${MAX_HYPERPARAMETERS} hyperparameters`);
    for (const [k, v] of entries) {
      if (k.length > MAX_HYPERPARAMETER_KEY || v.length > MAX_HYPERPARAMETER_VALUE) {
        throw invalid(
          jobName,
          `hyperparameter "${k.slice(0, 40)}" is too long (SageMaker allows ${MAX_HYPERPARAMETER_KEY}-character keys and ${MAX_HYPERPARAMETER_VALUE}-character values)`,
        );
      }
    }
    for (const [tag, value] of [
      [RUN_ID_TAG, spec.runId],
      [PIPELINE_TAG, spec.pipeline],
    ] as const) {
      if (!value || value.length > MAX_TAG_VALUE)
        throw invalid(jobName, `tag ${tag} must be 1-${MAX_TAG_VALUE} characters`);
    }
    if (!Number.isInteger(spec.maxRuntimeSeconds) || spec.maxRuntimeSeconds < 1) {
      throw invalid(jobName, `maxRuntimeSeconds must be a positive integer, got ${spec.maxRuntimeSeconds}`);
    }
    const outputPrefix = normalizedOutputPrefix(jobName, spec.outputPrefix);
    const roleArn = this.roleArnFor(spec.pipeline);

    const vpc = spec.vpc ?? this.config.vpc;
    const instanceType = spec.instanceType ?? this.config.defaultInstanceType ?? DEFAULT_INSTANCE_TYPE;
    const request: CreateTrainingJobRequest = {
      TrainingJobName: jobName,
      RoleArn: roleArn,
      AlgorithmSpecification: { TrainingImage: spec.image, TrainingInputMode: 'File' },
      HyperParameters: hyperparameters,
      InputDataConfig: channelNames.map((name) => {
        const channel = spec.channels[name];
        return {
          ChannelName: name,
          DataSource: {
            S3DataSource: {
              S3DataType: 'S3Prefix',
              S3Uri: this.s3Uri(channel?.key ?? ''),
              S3DataDistributionType: 'FullyReplicated',
            },
          },
        };
      }),
      OutputDataConfig: {
        // SageMaker writes <S3OutputPath>/<job>/output/{model,output}.tar.gz (trainingOutputKeys).
        S3OutputPath: this.s3Uri(outputPrefix.slice(0, -1)),
        KmsKeyId: this.config.kmsKeyId,
      },
      ResourceConfig: {
        InstanceType: instanceType as TrainingInstanceType,
        InstanceCount: spec.instanceCount ?? this.config.instanceCount ?? 1,
        VolumeSizeInGB: spec.volumeSizeGB ?? this.config.volumeSizeGB ?? DEFAULT_VOLUME_GB,
        // Instance-store volumes are encrypted by the instance's hardware module and SageMaker
        // refuses a key for them (hasInstanceStorage); every other volume uses the data key.
        ...(hasInstanceStorage(instanceType) ? {} : { VolumeKmsKeyId: this.config.kmsKeyId }),
      },
      StoppingCondition: { MaxRuntimeInSeconds: spec.maxRuntimeSeconds },
      EnableNetworkIsolation: spec.networkIsolation ?? this.config.networkIsolation ?? true,
      EnableInterContainerTrafficEncryption: true,
      Tags: [
        { Key: RUN_ID_TAG, Value: spec.runId },
        { Key: PIPELINE_TAG, Value: spec.pipeline },
      ],
    };
    if (vpc) request.VpcConfig = { Subnets: [...vpc.subnets], SecurityGroupIds: [...vpc.securityGroupIds] };
    return request;
  }

  /**
   * Creates the job. Job names are deterministic per run and step, so a second start of the same
   * job (a retried state, an event delivered twice) finds it already there: that is success.
   */
  async start(spec: SageMakerJobSpec): Promise<{ jobName: string }> {
    const request = this.buildRequest(spec);
    try {
      await this.sagemaker.send(new CreateTrainingJobCommand(request));
    } catch (e) {
      if (awsErrorName(e) !== 'ResourceInUse') {
        throw translateAwsError(e, {
          action: 'sagemaker:CreateTrainingJob',
          resource: `training-job/${spec.jobName}`,
        });
      }
    }
    return { jobName: spec.jobName };
  }

  /** The inference contract: a Batch Transform job of the same image (src/aws/sagemaker-scorer.ts). */
  score(spec: ScoringJobSpec): Promise<ScoringJobResult> {
    return scoreWithBatchTransform(
      this.sagemaker,
      {
        artifactsBucket: this.config.artifactsBucket,
        kmsKeyId: this.config.kmsKeyId,
        roleArnFor: (p) => this.roleArnFor(p),
        ...(this.config.defaultInstanceType ? { defaultInstanceType: this.config.defaultInstanceType } : {}),
        ...(this.config.transformMaxInstances ? { maxInstanceCount: this.config.transformMaxInstances } : {}),
        ...(this.config.objects ? { objects: this.config.objects } : {}),
        ...(this.config.poll ? { poll: this.config.poll } : {}),
        sleep: this.sleep,
      },
      spec,
    );
  }

  /** For the CLI and tests: polls until the job ends. The deployed pipeline waits on the event instead. */
  async wait(jobName: string): Promise<TrainingJobResult> {
    const initial = this.config.poll?.initialDelayMs ?? 5_000;
    const cap = this.config.poll?.maxDelayMs ?? 60_000;
    const timeout = this.config.poll?.timeoutMs ?? 30 * 24 * 3600 * 1000;
    let delay = initial;
    let waited = 0;
    for (;;) {
      const job = await awsCall(
        { action: 'sagemaker:DescribeTrainingJob', resource: `training-job/${jobName}` },
        () => this.sagemaker.send(new DescribeTrainingJobCommand({ TrainingJobName: jobName })),
      );
      const status = job.TrainingJobStatus;
      const ended = endedTrainingJobOf(jobName, job);
      if (ended) return trainingJobResultOf(ended, this.config.artifactsBucket);
      if (waited >= timeout) {
        throw new VeritrailError(
          'TRANSIENT',
          `training job ${jobName} is still ${status ?? 'unknown'} after ${Math.round(waited / 1000)} s of waiting; wait again or check it in the SageMaker console`,
          { details: { jobName, status } },
        );
      }
      await this.sleep(delay);
      waited += delay;
      delay = Math.min(cap, delay * 2);
    }
  }
}
