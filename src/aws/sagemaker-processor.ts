/**
 * Preprocess above the processing threshold on AWS: a SageMaker Processing job
 * (docs/scale-cost-model.md, "Preprocess as a SageMaker Processing job"). The job runs veritrail's
 * own job program (functions/processing/preprocess.ts, bundled as processing.mjs next to the
 * Preprocess function's bundle and stored content-addressed before each launch) on a Node 22 image
 * the deployment pins by digest, with network isolation, inter-container encryption and the data
 * key on its volume and outputs. Inputs: the content-addressed job config and the raw files
 * (File mode: SageMaker downloads the objects under the dataset's prefix, the job checks each
 * against the digest HashDataset recorded). Outputs: the processed files at their content
 * addresses (`sha256/`), result.json under `processing/<job>/`.
 *
 * Like the Batch Transform scorer, the Preprocess invocation creates the job (idempotent by name)
 * and polls it; past its poll budget (8 minutes) it throws PROCESSING_RUNNING, which Preprocess's
 * own retrier in the ASL answers by invoking it again, and the next invocation finds the job by
 * name and waits on. Once the job has completed, Preprocess re-hashes what it wrote until 12 minutes
 * into the invocation (verifyBudget), then saves its progress and throws PROCESSING_RUNNING too
 * (src/steps/verify-job-output.ts): the same retrier's invocations carry the re-hash on.
 */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import {
  CreateProcessingJobCommand,
  type CreateProcessingJobRequest,
  DescribeProcessingJobCommand,
  type DescribeProcessingJobResponse,
  type ProcessingInstanceType,
  type SageMakerClient,
} from '@aws-sdk/client-sagemaker';
import { digestOf, hexOf } from '../core/digest.js';
import { isVeritrailError, VeritrailError } from '../core/errors.js';
import { isImagePinned } from '../core/image.js';
import { CONTENT_PREFIX, PROCESSING_CODE_PREFIX, PROCESSING_PREFIX } from '../core/layout.js';
import {
  EVALUATE_PROCESSING_PROGRAM,
  errorOfFailedJob,
  PROCESSING_PATHS,
  PROCESSING_PROGRAM,
  PROCESSING_RESULT_FILE,
  PROCESSING_ROOT,
} from '../core/processing.js';
import type {
  EvaluateJobSpec,
  ObjectStore,
  PreprocessJobSpec,
  ProcessingJobResult,
  Processor,
  VerifyBudget,
} from '../ports.js';
import { awsCall, awsErrorName, translateAwsError } from './errors.js';

/** Processing supports these; m5.xlarge: 4 vCPU, 16 GiB, for a single-threaded streaming transform. */
const DEFAULT_PROCESSING_INSTANCE = 'ml.m5.xlarge';
const GiB = 1024 ** 3;
/** A job that completes after this much polling is verified by a fresh invocation (most of 15 minutes of re-hashing). */
const FRESH_INVOCATION_AFTER_MS = 60_000;
/**
 * The re-hash of the job's output stops 12 minutes after the invocation started (the polling
 * included), saves its progress and asks for the next invocation: 3 minutes of the 15-minute Lambda
 * timeout left for the last read in flight, the checkpoint and the error's way out.
 */
export const VERIFY_BUDGET_MS = 12 * 60 * 1000;

export interface ProcessingConfig {
  /** A Node 22 image in ECR, pinned by digest (`…@sha256:…`): VERITRAIL_PROCESSING_IMAGE. */
  image: string;
  roleArn: string;
  thresholdBytes: number;
  instanceType?: string;
  artifactsBucket: string;
  kmsKeyId: string;
  vpc?: { subnets: readonly string[]; securityGroupIds: readonly string[] };
  poll?: { initialDelayMs?: number; maxDelayMs?: number; timeoutMs?: number };
  sleep(ms: number): Promise<void>;
  /** The re-hash's budget per invocation (default: 12 minutes after the invocation started). */
  verifyBudget?: VerifyBudget;
  /** The job program's bytes (default: processing.mjs, or evaluation.mjs for Evaluate's jobs, next to this bundle). */
  program?: () => Promise<Uint8Array>;
}

/** The artifacts key of a job program: content-addressed, with the file name node needs to load it as ES module. */
export function programKey(digest: `sha256:${string}`, file: string = PROCESSING_PROGRAM): string {
  return `${PROCESSING_CODE_PREFIX}${CONTENT_PREFIX}${hexOf(digest)}/${file}`;
}

/** The prefix SageMaker downloads for the raw files: the one object, or the folder the pinned paths are under. */
export function rawInputUri(spec: Pick<PreprocessJobSpec, 'raw'>): string {
  const [first] = spec.raw;
  if (!first) throw new VeritrailError('DATASET_EMPTY', 'the dataset has no files to preprocess');
  if (!first.uri.startsWith('s3://'))
    throw new VeritrailError('DATASET_MISSING', `a processing job reads datasets from S3; got ${first.uri}`);
  if (spec.raw.length === 1 && !first.path.includes('/')) return first.uri;
  const root = first.uri.slice(0, first.uri.length - first.path.length);
  for (const f of spec.raw)
    if (`${root}${f.path}` !== f.uri)
      throw new VeritrailError('INTERNAL', `dataset file ${f.uri} is not under ${root} as its path says`);
  return root;
}

/** The CreateProcessingJob request a spec becomes (pure: tests and the emulated-AWS suite read it). */
export function processingJobRequest(
  spec: PreprocessJobSpec,
  config: RequestConfig,
  program: { key: string },
): CreateProcessingJobRequest {
  // Raw, processed copies and scratch: three times the raw size, plus room for the image.
  return jobRequest(spec, config, program, 3, [['raw', rawInputUri(spec), PROCESSING_PATHS.raw]]);
}

/**
 * The CreateProcessingJob request of one of Evaluate's jobs: each input `input/<name>/`, the S3
 * prefix its keys lie under (one object, or the scoring job's output folder, never all of `sha256/`).
 */
export function evaluateJobRequest(
  spec: EvaluateJobSpec,
  config: RequestConfig,
  program: { key: string },
): CreateProcessingJobRequest {
  const s3 = (key: string) => `s3://${config.artifactsBucket}/${key}`;
  const inputs = spec.inputs.map((i): [string, string, string] => {
    if (i.prefix === CONTENT_PREFIX || i.keys.some((k) => !k.startsWith(i.prefix)))
      throw new VeritrailError(
        'INTERNAL',
        `processing input ${i.name}: ${i.prefix} is not the folder of its keys`,
      );
    return [i.name, s3(i.prefix), `input/${i.name}`];
  });
  // The inputs, the outputs (shards: as much again) and scratch.
  return jobRequest(spec, config, program, 2, inputs);
}

type RequestConfig = Pick<
  ProcessingConfig,
  'image' | 'roleArn' | 'instanceType' | 'artifactsBucket' | 'kmsKeyId' | 'vpc'
>;

function jobRequest(
  spec: {
    jobName: string;
    runId: string;
    pipeline: string;
    config: { key: string };
    sizeBytes: number;
    maxRuntimeSeconds: number;
  },
  config: RequestConfig,
  program: { key: string },
  volumeFactor: number,
  inputs: [name: string, uri: string, path: string][],
): CreateProcessingJobRequest {
  const s3 = (key: string) => `s3://${config.artifactsBucket}/${key}`;
  const local = (p: string) => `${PROCESSING_ROOT}/${p}`;
  const input = (name: string, uri: string, path: string) => ({
    InputName: name,
    S3Input: {
      S3Uri: uri,
      LocalPath: local(path),
      S3DataType: 'S3Prefix' as const,
      S3InputMode: 'File' as const,
      S3DataDistributionType: 'FullyReplicated' as const,
    },
  });
  const volume = Math.min(16384, Math.ceil((volumeFactor * spec.sizeBytes) / GiB) + 10);
  const codeDir = program.key.slice(0, program.key.lastIndexOf('/') + 1);
  const file = program.key.slice(program.key.lastIndexOf('/') + 1);
  return {
    ProcessingJobName: spec.jobName,
    RoleArn: config.roleArn,
    AppSpecification: {
      ImageUri: config.image,
      ContainerEntrypoint: ['node', `${local(PROCESSING_PATHS.code)}/${file}`],
    },
    ProcessingInputs: [
      input('config', s3(spec.config.key), PROCESSING_PATHS.config),
      input('code', s3(codeDir), PROCESSING_PATHS.code),
      ...inputs.map(([name, uri, path]) => input(name, uri, path)),
    ],
    ProcessingOutputConfig: {
      Outputs: [
        {
          OutputName: 'processed',
          S3Output: {
            S3Uri: s3(CONTENT_PREFIX.replace(/\/$/, '')),
            LocalPath: local(PROCESSING_PATHS.processed),
            S3UploadMode: 'EndOfJob',
          },
        },
        {
          OutputName: 'result',
          S3Output: {
            S3Uri: s3(`${PROCESSING_PREFIX}${spec.jobName}`),
            LocalPath: local(PROCESSING_PATHS.result),
            S3UploadMode: 'EndOfJob',
          },
        },
      ],
      KmsKeyId: config.kmsKeyId,
    },
    ProcessingResources: {
      ClusterConfig: {
        InstanceCount: 1,
        InstanceType: (config.instanceType ?? DEFAULT_PROCESSING_INSTANCE) as ProcessingInstanceType,
        VolumeSizeInGB: volume,
        VolumeKmsKeyId: config.kmsKeyId,
      },
    },
    StoppingCondition: { MaxRuntimeInSeconds: Math.min(spec.maxRuntimeSeconds, 5 * 24 * 3600) },
    NetworkConfig: {
      EnableNetworkIsolation: true,
      EnableInterContainerTrafficEncryption: true,
      ...(config.vpc
        ? {
            VpcConfig: {
              Subnets: [...config.vpc.subnets],
              SecurityGroupIds: [...config.vpc.securityGroupIds],
            },
          }
        : {}),
    },
    Tags: [
      { Key: 'veritrail:run-id', Value: spec.runId },
      { Key: 'veritrail:pipeline', Value: spec.pipeline },
    ],
  };
}

/**
 * Trust but verify what SageMaker describes: a job found by name must be the one this request
 * makes (same image, program, inputs, outputs and isolation), or a job of that name made by
 * someone else would be taken for ours.
 */
function sameJob(job: DescribeProcessingJobResponse, request: CreateProcessingJobRequest): boolean {
  const inputs = (job.ProcessingInputs ?? []).map((i) => [
    i.InputName,
    i.S3Input?.S3Uri,
    i.S3Input?.LocalPath,
  ]);
  const wanted = (request.ProcessingInputs ?? []).map((i) => [
    i.InputName,
    i.S3Input?.S3Uri,
    i.S3Input?.LocalPath,
  ]);
  const outputs = (job.ProcessingOutputConfig?.Outputs ?? []).map((o) => [o.OutputName, o.S3Output?.S3Uri]);
  const wantedOut = (request.ProcessingOutputConfig?.Outputs ?? []).map((o) => [
    o.OutputName,
    o.S3Output?.S3Uri,
  ]);
  return (
    job.AppSpecification?.ImageUri === request.AppSpecification?.ImageUri &&
    JSON.stringify(job.AppSpecification?.ContainerEntrypoint) ===
      JSON.stringify(request.AppSpecification?.ContainerEntrypoint) &&
    JSON.stringify(inputs) === JSON.stringify(wanted) &&
    JSON.stringify(outputs) === JSON.stringify(wantedOut) &&
    job.NetworkConfig?.EnableNetworkIsolation === true
  );
}

export class SageMakerProcessor implements Processor {
  readonly thresholdBytes: number;
  readonly verifyBudget: VerifyBudget;

  constructor(
    private readonly sagemaker: SageMakerClient,
    private readonly objects: ObjectStore,
    private readonly config: ProcessingConfig,
  ) {
    if (!isImagePinned(config.image)) {
      throw new VeritrailError(
        'CODE_IMAGE_UNPINNED',
        `VERITRAIL_PROCESSING_IMAGE ${config.image} is not pinned by digest; use <registry>/<repo>@sha256:<digest>`,
      );
    }
    this.thresholdBytes = config.thresholdBytes;
    this.verifyBudget = config.verifyBudget ?? { ms: VERIFY_BUDGET_MS };
  }

  private async program(file: string): Promise<{ key: string; digest: `sha256:${string}` }> {
    let bytes: Uint8Array;
    try {
      bytes = this.config.program
        ? await this.config.program()
        : await readFile(fileURLToPath(new URL(`./${file}`, import.meta.url)));
    } catch (e) {
      throw new VeritrailError(
        'INTERNAL',
        `the processing job program (${file}) is not in this function's bundle; deploy with the stack's bundling (stacks/bundling.ts)`,
        { cause: e },
      );
    }
    const digest = digestOf(bytes);
    const key = programKey(digest, file);
    if (!(await this.objects.head('artifacts', key))) {
      try {
        await this.objects.put('artifacts', key, bytes, { ifAbsent: true, size: bytes.length });
      } catch (e) {
        if (!isVeritrailError(e, 'OBJECT_EXISTS')) throw e;
      }
    }
    return { key, digest };
  }

  async preprocess(spec: PreprocessJobSpec): Promise<ProcessingJobResult> {
    const program = await this.program(PROCESSING_PROGRAM);
    return this.run(spec.jobName, processingJobRequest(spec, this.config, program), program, 'Preprocess');
  }

  async evaluate(spec: EvaluateJobSpec): Promise<ProcessingJobResult> {
    const program = await this.program(EVALUATE_PROCESSING_PROGRAM);
    return this.run(spec.jobName, evaluateJobRequest(spec, this.config, program), program, 'Evaluate');
  }

  private async run(
    jobName: string,
    request: CreateProcessingJobRequest,
    program: { digest: `sha256:${string}` },
    step: string,
  ): Promise<ProcessingJobResult> {
    const spec = { jobName };
    const resource = `processing-job/${spec.jobName}`;
    try {
      await this.sagemaker.send(new CreateProcessingJobCommand(request));
    } catch (e) {
      const name = awsErrorName(e);
      const exists =
        name === 'ResourceInUse' ||
        (name === 'ValidationException' && /already exist/i.test((e as Error).message));
      if (!exists) throw translateAwsError(e, { action: 'sagemaker:CreateProcessingJob', resource });
    }
    const initial = this.config.poll?.initialDelayMs ?? 10_000;
    const cap = this.config.poll?.maxDelayMs ?? 30_000;
    // Past it, the next invocation waits on. A job that completes within the first minute is
    // re-hashed here (about 11 of VERIFY_BUDGET_MS's 12 minutes left), later by a fresh invocation.
    const timeout = this.config.poll?.timeoutMs ?? 8 * 60 * 1000;
    let delay = initial;
    let waited = 0;
    for (;;) {
      const job = await awsCall({ action: 'sagemaker:DescribeProcessingJob', resource }, () =>
        this.sagemaker.send(new DescribeProcessingJobCommand({ ProcessingJobName: spec.jobName })),
      );
      if (!sameJob(job, request)) {
        throw new VeritrailError(
          'PROCESSING_FAILED',
          `a processing job named ${spec.jobName} exists but is not the one this run asks for (image, program, inputs or isolation differ); start a new run`,
        );
      }
      const status = job.ProcessingJobStatus;
      if (status === 'Completed' && waited > FRESH_INVOCATION_AFTER_MS) {
        // The step re-hashes everything the job wrote next: it gets an invocation of its own.
        throw new VeritrailError(
          'PROCESSING_RUNNING',
          `processing job ${spec.jobName} completed; ${step} is invoked again to verify its output with a whole invocation`,
          { details: { jobName: spec.jobName, status } },
        );
      }
      if (status === 'Completed') {
        return {
          resultKey: `${PROCESSING_PREFIX}${spec.jobName}/${PROCESSING_RESULT_FILE}`,
          code: { digest: program.digest },
          executor: { kind: 'sagemaker-processing', jobName: spec.jobName, image: this.config.image },
        };
      }
      if (status === 'Failed' || status === 'Stopped') {
        throw errorOfFailedJob({
          name: spec.jobName,
          status,
          ...(job.ExitMessage ? { exitMessage: job.ExitMessage } : {}),
          ...(job.FailureReason ? { failureReason: job.FailureReason } : {}),
        });
      }
      if (waited >= timeout) {
        throw new VeritrailError(
          'PROCESSING_RUNNING',
          `processing job ${spec.jobName} is still ${status ?? 'unknown'} after ${Math.round(waited / 1000)} s; ${step} is invoked again and waits on`,
          { details: { jobName: spec.jobName, status } },
        );
      }
      await this.config.sleep(delay);
      waited += delay;
      delay = Math.min(cap, delay * 2);
    }
  }
}
