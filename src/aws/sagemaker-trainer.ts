/**
 * Trainer over SageMaker training jobs.
 *
 * The job is pinned end to end (invariant 2): the image by `@sha256:` digest, every input channel
 * to one content-addressed key of the artifacts bucket, and the expected digest of every channel
 * is passed to the container as the `veritrail_channel_digests` hyperparameter (canonical JSON
 * `{"<channel>":"sha256:<hex>"}`) so the training code verifies the bytes before reading a row —
 * the same contract the embedded trainer gives its child process.
 *
 * Security settings are always on: inter-container traffic encryption, output and volume KMS
 * keys; network isolation defaults to on, and a VPC config is applied when given.
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
  type SageMakerClient,
  type TrainingInstanceType,
} from '@aws-sdk/client-sagemaker';
import { hexOf } from '../core/digest.js';
import { VeritrailError } from '../core/errors.js';
import { canonicalJson } from '../core/jcs.js';
import type { Trainer, TrainingJobResult, TrainingJobSpec } from '../ports.js';
import { awsCall, awsErrorName, translateAwsError } from './errors.js';

/** Hyperparameter carrying the expected digest of every channel. */
export const CHANNEL_DIGESTS_HYPERPARAMETER = 'veritrail_channel_digests';
/** Hyperparameters starting with this are veritrail's own; a pipeline may not set them. */
export const RESERVED_HYPERPARAMETER_PREFIX = 'veritrail_';

export const RUN_ID_TAG = 'veritrail:run-id';
export const PIPELINE_TAG = 'veritrail:pipeline';

/** SageMaker's limits (CreateTrainingJob API reference). */
const JOB_NAME_RE = /^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$/;
const CHANNEL_NAME_RE = /^[A-Za-z0-9.\-_]{1,64}$/;
const MAX_HYPERPARAMETERS = 100;
const MAX_HYPERPARAMETER_KEY = 256;
const MAX_HYPERPARAMETER_VALUE = 2500;
const MAX_TAG_VALUE = 256;
/** An image reference pinned by content: `<repository>@sha256:<64 hex>`. */
const PINNED_IMAGE_RE = /^[^\s@]+@sha256:[0-9a-f]{64}$/;

export interface VpcSettings {
  subnets: string[];
  securityGroupIds: string[];
}

export interface SageMakerTrainerConfig {
  /** The SageMaker execution role, scoped to the pipeline's prefixes by the stack. */
  roleArn: string;
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
  /** Backoff of `wait()`: first delay, cap, and overall limit. */
  poll?: { initialDelayMs?: number; maxDelayMs?: number; timeoutMs?: number };
  /** Injected for tests. */
  sleep?: (ms: number) => Promise<void>;
}

/** The port's spec plus the settings only SageMaker has; each overrides the trainer's default. */
export interface SageMakerJobSpec extends TrainingJobSpec {
  instanceCount?: number;
  volumeSizeGB?: number;
  networkIsolation?: boolean;
  vpc?: VpcSettings;
}

const DEFAULT_INSTANCE_TYPE = 'ml.m5.large';
const DEFAULT_VOLUME_GB = 30;

function invalid(jobName: string, message: string): VeritrailError {
  return new VeritrailError('TRAINING_FAILED', `training job ${jobName}: ${message}`, {
    details: { jobName },
  });
}

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export class SageMakerTrainer implements Trainer {
  private readonly sleep: (ms: number) => Promise<void>;

  constructor(
    private readonly sagemaker: SageMakerClient,
    private readonly config: SageMakerTrainerConfig,
  ) {
    for (const k of ['roleArn', 'artifactsBucket', 'kmsKeyId'] as const) {
      if (!config[k]) throw new VeritrailError('USAGE', `SageMakerTrainer needs ${k}`);
    }
    this.sleep = config.sleep ?? defaultSleep;
  }

  private s3Uri(key: string): string {
    return `s3://${this.config.artifactsBucket}/${key}`;
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
    if (!spec.image || !PINNED_IMAGE_RE.test(spec.image)) {
      throw new VeritrailError(
        'CODE_IMAGE_UNPINNED',
        `training job ${jobName}: the image "${spec.image ?? ''}" is not pinned by digest; use <repository>@sha256:<64 hex digits>`,
        { details: { jobName, image: spec.image } },
      );
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
    for (const [k, v] of Object.entries(spec.hyperparameters)) {
      if (k.startsWith(RESERVED_HYPERPARAMETER_PREFIX)) {
        throw invalid(
          jobName,
          `hyperparameter "${k}" uses the reserved prefix "${RESERVED_HYPERPARAMETER_PREFIX}"`,
        );
      }
      hyperparameters[k] = String(v);
    }
    hyperparameters[CHANNEL_DIGESTS_HYPERPARAMETER] = canonicalJson(digests);
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

    const vpc = spec.vpc ?? this.config.vpc;
    const request: CreateTrainingJobRequest = {
      TrainingJobName: jobName,
      RoleArn: this.config.roleArn,
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
        S3OutputPath: this.s3Uri(spec.outputPrefix.replace(/\/+$/, '')),
        KmsKeyId: this.config.kmsKeyId,
      },
      ResourceConfig: {
        InstanceType: (spec.instanceType ??
          this.config.defaultInstanceType ??
          DEFAULT_INSTANCE_TYPE) as TrainingInstanceType,
        InstanceCount: spec.instanceCount ?? this.config.instanceCount ?? 1,
        VolumeSizeInGB: spec.volumeSizeGB ?? this.config.volumeSizeGB ?? DEFAULT_VOLUME_GB,
        VolumeKmsKeyId: this.config.kmsKeyId,
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
      if (status === 'Completed' || status === 'Failed' || status === 'Stopped') {
        const result: TrainingJobResult = { jobName, status };
        if (job.FailureReason) result.failureReason = job.FailureReason;
        const modelUri = job.ModelArtifacts?.S3ModelArtifacts;
        const prefix = `s3://${this.config.artifactsBucket}/`;
        if (status === 'Completed' && modelUri?.startsWith(prefix)) {
          result.modelKey = modelUri.slice(prefix.length);
          // SageMaker writes output.tar.gz next to model.tar.gz (<output path>/<job>/output/).
          result.outputKey = result.modelKey.replace(/model\.tar\.gz$/, 'output.tar.gz');
        }
        return result;
      }
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
