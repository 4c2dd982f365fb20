/**
 * SageMaker training jobs, emulated behind the proxy (a hook answers CreateTrainingJob and
 * DescribeTrainingJob once the IAM proxy allowed them). A job runs the training container contract
 * as SageMaker runs a plain image: under a temp root standing for /opt/ml,
 *   input/config/{hyperparameters,inputdataconfig,resourceconfig}.json,
 *   input/data/<channel>/ with the channel's S3 objects downloaded AS THE JOB'S EXECUTION ROLE
 *   through the proxy (ListObjectsV2 + GetObject, so its grants are evaluated), model/, output/,
 *   output/data/;
 * then the image's entrypoint (image.ts: ENTRYPOINT + `train` from its Dockerfile; VERITRAIL_OPT_ML
 * points it at the root, no SM_* variable is set: a plain image gets none), then, as the role, model.tar.gz and
 * output.tar.gz to <S3OutputPath>/<job>/output/ with SSE-KMS under OutputDataConfig.KmsKeyId.
 * A non-zero exit makes the job Failed with the content of output/failure as FailureReason.
 * At the end, the documented "SageMaker Training Job State Change" event goes to `onEvent`.
 *
 * Differences from SageMaker: no image is built or pulled (the entrypoint runs on this host's Node);
 * one instance; no MaxRuntime enforcement; the statuses go InProgress → Completed/Failed with no
 * secondary statuses in between.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import {
  emulateManifestTransformJob,
  emulateTransformJob,
  parseS3Uri,
} from '../../helpers/batch-transform.js';
import type { ApiRequest, HookResponse } from '../iam/types.js';

export interface TrainerCommand {
  command: string[];
  cwd: string;
}

export interface JobOptions {
  /** Corrupts the train channel after download: the trainer's digest check must fail the job. */
  tamperTrainChannel?: boolean;
  /** The job ends, but no state-change event is ever delivered. */
  loseEvent?: boolean;
}

export interface EmulatedJob {
  name: string;
  request: Record<string, unknown>;
  status: 'InProgress' | 'Completed' | 'Failed' | 'Stopped';
  failureReason?: string;
  modelArtifacts?: string;
  created: Date;
  ended?: Date;
  done: Promise<void>;
  trainerLog: string;
  /** Set once the state-change event was handed to onEvent. */
  eventDelivered: boolean;
}

export interface SageMakerEmulatorOptions {
  endpoint: string;
  region: string;
  account: string;
  credentialsOf(roleArn: string): { accessKeyId: string; secretAccessKey: string };
  trainer: TrainerCommand;
  /**
   * Resolves when the job may start running: SageMaker spends minutes in its Starting phase, so a
   * job never ends before the invocation that created it has returned. Default: at once.
   */
  startAfter?(caller: string): Promise<void>;
  /** EventBridge: receives every state-change event (the harness matches it against the rule). */
  onEvent(event: Record<string, unknown>): Promise<void>;
  /**
   * Batch Transform: the inference contract of a pipeline's model (its trainer.predict, run in its
   * definition's folder), which the image's `serve` answers in SageMaker.
   */
  predictFor(pipeline: string): TrainerCommand;
}

/** A Processing job as the emulator keeps it. */
export interface EmulatedProcessing {
  name: string;
  request: Record<string, unknown>;
  status: 'InProgress' | 'Completed' | 'Failed';
  failureReason?: string;
  exitMessage?: string;
  created: Date;
  ended?: Date;
  done: Promise<void>;
  log: string;
}

/** A Batch Transform job as the emulator keeps it. */
export interface EmulatedTransform {
  name: string;
  request: Record<string, unknown>;
  status: 'InProgress' | 'Completed' | 'Failed';
  failureReason?: string;
  created: Date;
  ended?: Date;
  done: Promise<void>;
}

const parseS3 = (uri: string) => {
  const m = /^s3:\/\/([^/]+)\/?(.*)$/.exec(uri);
  if (!m?.[1]) throw new Error(`not an S3 URI: ${uri}`);
  return { bucket: m[1], key: m[2] ?? '' };
};

/**
 * An S3Prefix input in File mode, as the job's role: every object under the prefix, written under
 * `target` by its key relative to the prefix's folder (as SageMaker lays out training channels and
 * processing inputs).
 */
async function downloadPrefix(s3: S3Client, uri: string, target: string): Promise<void> {
  const { bucket, key: prefix } = parseS3(uri);
  const base = prefix.includes('/') ? prefix.slice(0, prefix.lastIndexOf('/') + 1) : '';
  const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
  for (const obj of listed.Contents ?? []) {
    if (!obj.Key || obj.Key.endsWith('/')) continue;
    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: obj.Key }));
    const file = join(target, obj.Key.slice(base.length));
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(
      file,
      Buffer.from(await (got.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray()),
    );
  }
}

function run(
  cmd: string,
  args: string[],
  opts: { cwd: string; env: Record<string, string> },
): Promise<{ code: number; log: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    child.stdout.on('data', (b: Buffer) => (log += b.toString()));
    child.stderr.on('data', (b: Buffer) => (log += b.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? 1, log }));
  });
}

export class SageMakerEmulator {
  readonly jobs = new Map<string, EmulatedJob>();
  readonly models = new Map<string, Record<string, unknown>>();
  readonly transforms = new Map<string, EmulatedTransform>();
  readonly processingJobs = new Map<string, EmulatedProcessing>();
  /** Options for the next job created (a scenario sets them before it starts its run). */
  nextJob: JobOptions = {};

  constructor(private readonly options: SageMakerEmulatorOptions) {}

  private arnOf(name: string): string {
    return `arn:aws:sagemaker:${this.options.region}:${this.options.account}:training-job/${name.toLowerCase()}`;
  }

  /** DescribeTrainingJob's answer (awsJson: timestamps in epoch seconds). */
  describe(job: EmulatedJob): Record<string, unknown> {
    const r = job.request;
    const s = (d: Date) => d.getTime() / 1000;
    return {
      TrainingJobName: job.name,
      TrainingJobArn: this.arnOf(job.name),
      TrainingJobStatus: job.status,
      SecondaryStatus: job.status === 'InProgress' ? 'Training' : job.status,
      ...(job.failureReason ? { FailureReason: job.failureReason } : {}),
      ...(job.modelArtifacts ? { ModelArtifacts: { S3ModelArtifacts: job.modelArtifacts } } : {}),
      HyperParameters: r.HyperParameters,
      AlgorithmSpecification: r.AlgorithmSpecification,
      RoleArn: r.RoleArn,
      InputDataConfig: r.InputDataConfig,
      OutputDataConfig: r.OutputDataConfig,
      ResourceConfig: r.ResourceConfig,
      StoppingCondition: r.StoppingCondition,
      EnableNetworkIsolation: r.EnableNetworkIsolation,
      EnableInterContainerTrafficEncryption: r.EnableInterContainerTrafficEncryption,
      CreationTime: s(job.created),
      TrainingStartTime: s(job.created),
      ...(job.ended ? { TrainingEndTime: s(job.ended) } : {}),
      LastModifiedTime: s(job.ended ?? job.created),
    };
  }

  /** The event as EventBridge delivers it: detail = the job's description, times in epoch ms. */
  stateChangeEvent(job: EmulatedJob): Record<string, unknown> {
    const detail = this.describe(job);
    for (const k of ['CreationTime', 'TrainingStartTime', 'TrainingEndTime', 'LastModifiedTime'])
      if (typeof detail[k] === 'number') detail[k] = Math.round((detail[k] as number) * 1000);
    detail.Tags = Object.fromEntries(
      ((job.request.Tags as { Key: string; Value: string }[] | undefined) ?? []).map((t) => [t.Key, t.Value]),
    );
    return {
      version: '0',
      id: crypto.randomUUID(),
      'detail-type': 'SageMaker Training Job State Change',
      source: 'aws.sagemaker',
      account: this.options.account,
      time: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
      region: this.options.region,
      resources: [this.arnOf(job.name)],
      detail,
    };
  }

  hook = (req: ApiRequest): HookResponse | undefined => {
    if (req.service !== 'sagemaker') return undefined;
    const input = req.input ?? {};
    const ok = (body: unknown): HookResponse => ({
      status: 200,
      headers: { 'content-type': 'application/x-amz-json-1.1' },
      body: JSON.stringify(body),
    });
    const fail = (type: string, message: string): HookResponse => ({
      status: 400,
      headers: { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-errortype': type },
      body: JSON.stringify({ __type: type, message, Message: message }),
    });
    if (req.operation === 'CreateTrainingJob') {
      const name = String(input.TrainingJobName);
      if (this.jobs.has(name))
        return fail(
          'ResourceInUse',
          `Training job names must be unique within an AWS account and region, and a training job with this name already exists (${this.arnOf(name)})`,
        );
      const job: EmulatedJob = {
        name,
        request: input,
        status: 'InProgress',
        created: new Date(),
        done: Promise.resolve(),
        trainerLog: '',
        eventDelivered: false,
      };
      const opts = this.nextJob;
      this.nextJob = {};
      this.jobs.set(name, job);
      job.done = (this.options.startAfter?.(req.principal) ?? Promise.resolve())
        .then(() => this.execute(job, opts))
        .catch((e: unknown) => {
          job.status = 'Failed';
          job.failureReason = `InternalServerError: the emulator failed: ${e instanceof Error ? e.message : String(e)}`;
          job.ended = new Date();
        });
      return ok({ TrainingJobArn: this.arnOf(name) });
    }
    if (req.operation === 'DescribeTrainingJob') {
      const job = this.jobs.get(String(input.TrainingJobName));
      if (!job)
        return fail(
          'ValidationException',
          `Requested resource not found: training job ${String(input.TrainingJobName)}`,
        );
      return ok(this.describe(job));
    }
    if (req.operation === 'CreateModel') {
      const name = String(input.ModelName);
      if (this.models.has(name))
        return fail('ValidationException', `Cannot create already existing model "${name}".`);
      this.models.set(name, input);
      return ok({
        ModelArn: `arn:aws:sagemaker:${this.options.region}:${this.options.account}:model/${name.toLowerCase()}`,
      });
    }
    if (req.operation === 'CreateTransformJob') {
      const name = String(input.TransformJobName);
      const arn = `arn:aws:sagemaker:${this.options.region}:${this.options.account}:transform-job/${name.toLowerCase()}`;
      if (this.transforms.has(name))
        return fail(
          'ResourceInUse',
          `Job name must be unique within an AWS account and region, and a job with this name already exists (${arn})`,
        );
      const model = this.models.get(String(input.ModelName));
      if (!model) return fail('ValidationException', `Could not find model "${String(input.ModelName)}".`);
      const job: EmulatedTransform = {
        name,
        request: input,
        status: 'InProgress',
        created: new Date(),
        done: Promise.resolve(),
      };
      this.transforms.set(name, job);
      job.done = this.transform(job, model).catch((e: unknown) => {
        job.status = 'Failed';
        job.failureReason = e instanceof Error ? e.message : String(e);
        job.ended = new Date();
      });
      return ok({ TransformJobArn: arn });
    }
    if (req.operation === 'DescribeTransformJob') {
      const job = this.transforms.get(String(input.TransformJobName));
      if (!job)
        return fail(
          'ValidationException',
          `Could not find requested job with name ${String(input.TransformJobName)}`,
        );
      const t = (d: Date) => d.getTime() / 1000;
      return ok({
        TransformJobName: job.name,
        TransformJobArn: `arn:aws:sagemaker:${this.options.region}:${this.options.account}:transform-job/${job.name.toLowerCase()}`,
        TransformJobStatus: job.status,
        ...(job.failureReason ? { FailureReason: job.failureReason } : {}),
        ModelName: job.request.ModelName,
        TransformInput: job.request.TransformInput,
        TransformOutput: job.request.TransformOutput,
        TransformResources: job.request.TransformResources,
        CreationTime: t(job.created),
        ...(job.ended ? { TransformEndTime: t(job.ended) } : {}),
      });
    }
    if (req.operation === 'CreateProcessingJob') {
      const name = String(input.ProcessingJobName);
      const arn = `arn:aws:sagemaker:${this.options.region}:${this.options.account}:processing-job/${name.toLowerCase()}`;
      if (this.processingJobs.has(name))
        return fail(
          'ResourceInUse',
          `Job name must be unique within an AWS account and region, and a job with this name already exists (${arn})`,
        );
      const job: EmulatedProcessing = {
        name,
        request: input,
        status: 'InProgress',
        created: new Date(),
        done: Promise.resolve(),
        log: '',
      };
      this.processingJobs.set(name, job);
      job.done = this.process(job).catch((e: unknown) => {
        job.status = 'Failed';
        job.failureReason = `InternalServerError: the emulator failed: ${e instanceof Error ? e.message : String(e)}`;
        job.ended = new Date();
      });
      return ok({ ProcessingJobArn: arn });
    }
    if (req.operation === 'DescribeProcessingJob') {
      const job = this.processingJobs.get(String(input.ProcessingJobName));
      if (!job)
        return fail(
          'ValidationException',
          `Could not find requested job with name ${String(input.ProcessingJobName)}`,
        );
      const t = (d: Date) => d.getTime() / 1000;
      const r = job.request;
      return ok({
        ProcessingJobName: job.name,
        ProcessingJobArn: `arn:aws:sagemaker:${this.options.region}:${this.options.account}:processing-job/${job.name.toLowerCase()}`,
        ProcessingJobStatus: job.status,
        ...(job.failureReason ? { FailureReason: job.failureReason } : {}),
        ...(job.exitMessage ? { ExitMessage: job.exitMessage } : {}),
        ProcessingInputs: r.ProcessingInputs,
        ProcessingOutputConfig: r.ProcessingOutputConfig,
        ProcessingResources: r.ProcessingResources,
        StoppingCondition: r.StoppingCondition,
        AppSpecification: r.AppSpecification,
        NetworkConfig: r.NetworkConfig,
        RoleArn: r.RoleArn,
        CreationTime: t(job.created),
        ...(job.ended ? { ProcessingEndTime: t(job.ended) } : {}),
        LastModifiedTime: t(job.ended ?? job.created),
      });
    }
    if (req.operation === 'StopTrainingJob') {
      const job = this.jobs.get(String(input.TrainingJobName));
      if (!job) return fail('ValidationException', 'Requested resource not found');
      return ok({});
    }
    return undefined; // everything else (model packages…) goes to moto
  };

  /**
   * A Batch Transform job: as the model's execution role (through the proxy, so its grants are
   * evaluated), read model.tar.gz and the input, answer it with the pipeline's inference contract
   * (test/helpers/batch-transform.ts) and write each output under the job's output path with SSE-KMS
   * under TransformOutput.KmsKeyId, as Batch Transform does with SplitType None: an S3Prefix input
   * naming one object gives `<name>.out`; a ManifestFile input is read first (as the role), then
   * each object it lists is read and scored as its own request, its output at `<relative path>.out`.
   */
  private async transform(job: EmulatedTransform, model: Record<string, unknown>): Promise<void> {
    const roleArn = String(model.ExecutionRoleArn);
    const s3 = new S3Client({
      endpoint: this.options.endpoint,
      region: this.options.region,
      forcePathStyle: true,
      credentials: this.options.credentialsOf(roleArn),
      maxAttempts: 1,
    });
    const bytesOf = async (uri: string): Promise<Uint8Array> => {
      const { bucket, key } = parseS3Uri(uri);
      const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      return (got.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray();
    };
    const container = (model.PrimaryContainer ?? {}) as { ModelDataUrl?: string };
    const request = job.request as {
      TransformInput: { DataSource: { S3DataSource: { S3DataType?: string; S3Uri: string } } };
      TransformOutput: { KmsKeyId?: string };
      Tags?: { Key: string; Value: string }[];
    };
    const pipeline = request.Tags?.find((t) => t.Key === 'veritrail:pipeline')?.Value ?? '';
    const predict = this.options.predictFor(pipeline);
    const base = {
      model: model as never,
      transform: job.request as never,
      modelTarGz: await bytesOf(String(container.ModelDataUrl)),
      predict: predict.command,
      cwd: predict.cwd,
    };
    const source = request.TransformInput.DataSource.S3DataSource;
    const outputs =
      source.S3DataType === 'ManifestFile'
        ? await emulateManifestTransformJob({ ...base, read: bytesOf })
        : [await emulateTransformJob({ ...base, input: await bytesOf(source.S3Uri) })];
    for (const output of outputs) {
      await s3.send(
        new PutObjectCommand({
          Bucket: output.bucket,
          Key: output.key,
          Body: output.bytes,
          ...(request.TransformOutput.KmsKeyId
            ? { ServerSideEncryption: 'aws:kms', SSEKMSKeyId: request.TransformOutput.KmsKeyId }
            : {}),
        }),
      );
    }
    job.status = 'Completed';
    job.ended = new Date();
  }

  /**
   * A Processing job: as its role (through the proxy), each S3Prefix input downloaded under the
   * root standing for /opt/ml/processing (keys relative to the prefix's folder, as File mode lays
   * them out), the ContainerEntrypoint run on this host's Node with /opt/ml/processing mapped to the
   * root (VERITRAIL_PROCESSING_ROOT, VERITRAIL_PROCESSING_EXIT_MESSAGE: the job program's switches
   * for exactly this), then each output folder uploaded to its S3Uri with SSE-KMS under
   * ProcessingOutputConfig.KmsKeyId. A non-zero exit fails the job; /opt/ml/output/message becomes
   * the ExitMessage.
   */
  private async process(job: EmulatedProcessing): Promise<void> {
    const r = job.request as {
      RoleArn: string;
      AppSpecification: { ContainerEntrypoint?: string[] };
      ProcessingInputs?: { S3Input?: { S3Uri: string; LocalPath: string } }[];
      ProcessingOutputConfig?: {
        KmsKeyId?: string;
        Outputs?: { S3Output?: { S3Uri: string; LocalPath: string } }[];
      };
    };
    const s3 = new S3Client({
      endpoint: this.options.endpoint,
      region: this.options.region,
      forcePathStyle: true,
      credentials: this.options.credentialsOf(r.RoleArn),
      maxAttempts: 1,
    });
    const ROOT = '/opt/ml/processing';
    const root = mkdtempSync(join(tmpdir(), `vt-processing-${job.name.slice(0, 40)}-`));
    const inRoot = (p: string) => {
      if (!p.startsWith(`${ROOT}/`)) throw new Error(`${p} is not under ${ROOT}`);
      return join(root, 'processing', p.slice(ROOT.length + 1));
    };
    try {
      for (const input of r.ProcessingInputs ?? []) {
        if (!input.S3Input) continue;
        const target = inRoot(input.S3Input.LocalPath);
        mkdirSync(target, { recursive: true });
        await downloadPrefix(s3, input.S3Input.S3Uri, target);
      }
      for (const output of r.ProcessingOutputConfig?.Outputs ?? [])
        if (output.S3Output) mkdirSync(inRoot(output.S3Output.LocalPath), { recursive: true });
      const [cmd, ...args] = (r.AppSpecification.ContainerEntrypoint ?? []).map((a) =>
        a.startsWith(`${ROOT}/`) ? inRoot(a) : a,
      );
      if (cmd !== 'node') throw new Error(`the emulator runs node entrypoints only, got ${String(cmd)}`);
      const message = join(root, 'output', 'message');
      const res = await run(cmd, args, {
        cwd: root,
        env: {
          PATH: process.env.PATH ?? '/usr/bin:/bin',
          HOME: root,
          VERITRAIL_PROCESSING_ROOT: join(root, 'processing'),
          VERITRAIL_PROCESSING_EXIT_MESSAGE: message,
        },
      });
      job.log = res.log;
      if (res.code === 0) {
        for (const output of r.ProcessingOutputConfig?.Outputs ?? []) {
          if (!output.S3Output) continue;
          const from = inRoot(output.S3Output.LocalPath);
          const { bucket, key: prefix } = parseS3(output.S3Output.S3Uri);
          const { readdirSync, statSync } = await import('node:fs');
          const walk = (dir: string): string[] =>
            readdirSync(dir).flatMap((n) =>
              statSync(join(dir, n)).isDirectory() ? walk(join(dir, n)) : [join(dir, n)],
            );
          for (const file of walk(from)) {
            await s3.send(
              new PutObjectCommand({
                Bucket: bucket,
                Key: `${prefix.replace(/\/$/, '')}/${relative(from, file)}`,
                Body: readFileSync(file),
                ...(r.ProcessingOutputConfig?.KmsKeyId
                  ? { ServerSideEncryption: 'aws:kms', SSEKMSKeyId: r.ProcessingOutputConfig.KmsKeyId }
                  : {}),
              }),
            );
          }
        }
        job.status = 'Completed';
      } else {
        job.status = 'Failed';
        try {
          job.exitMessage = readFileSync(message, 'utf8').slice(0, 1024);
        } catch {
          /* no message */
        }
        job.failureReason = `AlgorithmError: See job logs for more information, exit code: ${res.code}`;
      }
      job.ended = new Date();
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  }

  private async execute(job: EmulatedJob, opts: JobOptions): Promise<void> {
    const r = job.request as {
      RoleArn: string;
      HyperParameters?: Record<string, string>;
      InputDataConfig?: { ChannelName: string; DataSource: { S3DataSource: { S3Uri: string } } }[];
      OutputDataConfig: { S3OutputPath: string; KmsKeyId?: string };
      ResourceConfig: Record<string, unknown>;
    };
    const creds = this.options.credentialsOf(r.RoleArn);
    const s3 = new S3Client({
      endpoint: this.options.endpoint,
      region: this.options.region,
      forcePathStyle: true,
      credentials: creds,
      maxAttempts: 1,
    });
    const root = mkdtempSync(join(tmpdir(), `vt-opt-ml-${job.name.slice(0, 40)}-`));
    try {
      const dir = (...p: string[]) => {
        const d = join(root, ...p);
        mkdirSync(d, { recursive: true });
        return d;
      };
      const config = dir('input', 'config');
      writeFileSync(join(config, 'hyperparameters.json'), JSON.stringify(r.HyperParameters ?? {}));
      writeFileSync(
        join(config, 'inputdataconfig.json'),
        JSON.stringify(
          Object.fromEntries(
            (r.InputDataConfig ?? []).map((c) => [
              c.ChannelName,
              { TrainingInputMode: 'File', S3DistributionType: 'FullyReplicated', RecordWrapperType: 'None' },
            ]),
          ),
        ),
      );
      writeFileSync(
        join(config, 'resourceconfig.json'),
        JSON.stringify({
          current_host: 'algo-1',
          hosts: ['algo-1'],
          network_interface_name: 'eth0',
          current_instance_type: r.ResourceConfig.InstanceType,
        }),
      );
      dir('model');
      dir('output', 'data');
      for (const channel of r.InputDataConfig ?? []) {
        const target = dir('input', 'data', channel.ChannelName);
        await downloadPrefix(s3, channel.DataSource.S3DataSource.S3Uri, target);
      }
      if (opts.tamperTrainChannel) {
        const { readdirSync, appendFileSync } = await import('node:fs');
        const trainDir = join(root, 'input', 'data', 'train');
        for (const f of readdirSync(trainDir)) appendFileSync(join(trainDir, f), '1,2,3\n');
      }
      const [cmd, ...args] = this.options.trainer.command;
      if (!cmd) throw new Error('no trainer command');
      const res = await run(cmd, args, {
        cwd: this.options.trainer.cwd,
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: root, VERITRAIL_OPT_ML: root },
      });
      job.trainerLog = res.log;
      const out = parseS3(r.OutputDataConfig.S3OutputPath);
      const outKey = (file: string) =>
        `${out.key ? `${out.key.replace(/\/$/, '')}/` : ''}${job.name}/output/${file}`;
      const put = async (file: string, from: string) => {
        const tarball = join(root, file);
        const t = await run('tar', ['-czf', tarball, '-C', from, '.'], {
          cwd: root,
          env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
        });
        if (t.code !== 0) throw new Error(`tar ${file}: ${t.log}`);
        await s3.send(
          new PutObjectCommand({
            Bucket: out.bucket,
            Key: outKey(file),
            Body: readFileSync(tarball),
            ...(r.OutputDataConfig.KmsKeyId
              ? { ServerSideEncryption: 'aws:kms', SSEKMSKeyId: r.OutputDataConfig.KmsKeyId }
              : {}),
          }),
        );
      };
      if (res.code === 0) {
        await put('model.tar.gz', join(root, 'model'));
        await put('output.tar.gz', join(root, 'output', 'data'));
        job.modelArtifacts = `s3://${out.bucket}/${outKey('model.tar.gz')}`;
        job.status = 'Completed';
      } else {
        let reason = '';
        try {
          reason = readFileSync(join(root, 'output', 'failure'), 'utf8').trim();
        } catch {
          reason = `exit code ${res.code}`;
        }
        // SageMaker uploads output/data on failure too; the model is not packed.
        await put('output.tar.gz', join(root, 'output', 'data'));
        job.status = 'Failed';
        job.failureReason = `AlgorithmError: ${reason}, exit code: ${res.code}`;
      }
      job.ended = new Date();
      void relative;
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
    if (!opts.loseEvent) {
      job.eventDelivered = true;
      await this.options.onEvent(this.stateChangeEvent(job));
    }
  }
}
