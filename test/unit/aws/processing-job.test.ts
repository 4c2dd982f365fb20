/**
 * Preprocess's SageMaker Processing job on AWS (src/aws/sagemaker-processor.ts): the request it
 * makes, what it takes from a job SageMaker describes, and the deploy setting that enables it.
 */
import {
  CreateProcessingJobCommand,
  DescribeProcessingJobCommand,
  SageMakerClient,
} from '@aws-sdk/client-sagemaker';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import {
  evaluateJobRequest,
  processingJobRequest,
  programKey,
  rawInputUri,
  SageMakerProcessor,
} from '../../../src/aws/sagemaker-processor.js';
import { digestOf } from '../../../src/core/digest.js';
import { VeritrailError } from '../../../src/core/errors.js';
import {
  errorOfFailedJob,
  exitMessageOf,
  preprocessJobName,
  verifyBytesSetting,
} from '../../../src/core/processing.js';
import type { EvaluateJobSpec, ObjectStore, PreprocessJobSpec } from '../../../src/ports.js';
import { processingSettings, transformMaxInstances, transformShardBytes } from '../../../stacks/settings.js';

const IMAGE = `123456789012.dkr.ecr.eu-west-1.amazonaws.com/veritrail-node@sha256:${'a'.repeat(64)}`;
const KEY = 'arn:aws:kms:eu-west-1:123456789012:key/data';
const ROLE = 'arn:aws:iam::123456789012:role/processing';
const PROGRAM = new TextEncoder().encode('console.log("job")\n');
const spec: PreprocessJobSpec = {
  jobName: 'veritrail-pre-r-1',
  runId: 'r-1',
  pipeline: 'credit-scoring',
  config: { key: `sha256/${'c'.repeat(64)}`, digest: `sha256:${'c'.repeat(64)}` },
  raw: [
    { uri: 's3://landing/credit-scoring/2026/a.csv', path: 'a.csv', size: 10, versionId: 'v1' },
    { uri: 's3://landing/credit-scoring/2026/sub/b.csv', path: 'sub/b.csv', size: 10, versionId: 'v2' },
  ],
  sizeBytes: 20 * 1024 ** 3,
  maxRuntimeSeconds: 86400,
};

function memoryObjects(): ObjectStore & { keys: string[] } {
  const keys: string[] = [];
  return {
    keys,
    put: async (_b: string, key: string) => {
      keys.push(key);
      return { key, size: 0 };
    },
    head: async (_b: string, key: string) => (keys.includes(key) ? { key, size: 0 } : undefined),
    open: async () => {
      throw new Error('not used');
    },
  } as unknown as ObjectStore & { keys: string[] };
}

const processor = (objects: ObjectStore, sm: SageMakerClient, timeoutMs = 0) =>
  new SageMakerProcessor(sm, objects, {
    image: IMAGE,
    roleArn: ROLE,
    thresholdBytes: 1,
    artifactsBucket: 'artifacts',
    kmsKeyId: KEY,
    poll: { initialDelayMs: 1, maxDelayMs: 1, timeoutMs },
    sleep: async () => {},
    program: async () => PROGRAM,
  });

describe('Preprocess as a SageMaker Processing job', () => {
  const sm = mockClient(SageMakerClient);
  afterEach(() => sm.reset());
  const program = { key: programKey(digestOf(PROGRAM)) };

  it('runs the stored program on the pinned image with network isolation, and the data key on volume and outputs', () => {
    const r = processingJobRequest(
      spec,
      { image: IMAGE, roleArn: ROLE, artifactsBucket: 'artifacts', kmsKeyId: KEY },
      program,
    );
    expect(r).toMatchObject({
      ProcessingJobName: 'veritrail-pre-r-1',
      RoleArn: ROLE,
      AppSpecification: {
        ImageUri: IMAGE,
        ContainerEntrypoint: ['node', '/opt/ml/processing/input/code/processing.mjs'],
      },
      NetworkConfig: { EnableNetworkIsolation: true, EnableInterContainerTrafficEncryption: true },
      ProcessingOutputConfig: { KmsKeyId: KEY },
      ProcessingResources: { ClusterConfig: { VolumeKmsKeyId: KEY, InstanceCount: 1, VolumeSizeInGB: 70 } },
    });
    expect(r.ProcessingInputs?.map((i) => [i.InputName, i.S3Input?.S3Uri, i.S3Input?.LocalPath])).toEqual([
      ['config', `s3://artifacts/sha256/${'c'.repeat(64)}`, '/opt/ml/processing/input/config'],
      [
        'code',
        `s3://artifacts/${program.key.replace(/processing\.mjs$/, '')}`,
        '/opt/ml/processing/input/code',
      ],
      ['raw', 's3://landing/credit-scoring/2026/', '/opt/ml/processing/input/raw'],
    ]);
    // The processed files land at their content addresses, the claims under the job's own prefix.
    expect(r.ProcessingOutputConfig?.Outputs?.map((o) => o.S3Output?.S3Uri)).toEqual([
      's3://artifacts/sha256',
      's3://artifacts/processing/veritrail-pre-r-1',
    ]);
  });

  it('hands a single-file dataset its one object, and refuses raw files outside S3', () => {
    expect(rawInputUri({ raw: [{ uri: 's3://landing/p/x.csv', path: 'x.csv', size: 1 }] })).toBe(
      's3://landing/p/x.csv',
    );
    expect(() => rawInputUri({ raw: [{ uri: 'file:///tmp/x.csv', path: 'x.csv', size: 1 }] })).toThrow(
      /reads datasets from S3/,
    );
  });

  it('creates the job once, stores the program content-addressed, and returns its result key when it completed', async () => {
    const objects = memoryObjects();
    let request: unknown;
    sm.on(CreateProcessingJobCommand).callsFake((input) => {
      request = input;
      return {};
    });
    let polls = 0;
    sm.on(DescribeProcessingJobCommand).callsFake(() => ({
      ...(request as object),
      ProcessingJobStatus: polls++ === 0 ? 'InProgress' : 'Completed',
    }));
    const out = await processor(objects, sm as unknown as SageMakerClient, 60_000).preprocess(spec);
    expect(out).toEqual({
      resultKey: 'processing/veritrail-pre-r-1/result.json',
      code: { digest: digestOf(PROGRAM) },
      executor: { kind: 'sagemaker-processing', jobName: 'veritrail-pre-r-1', image: IMAGE },
    });
    expect(objects.keys).toEqual([program.key]);
    expect(sm.commandCalls(CreateProcessingJobCommand)).toHaveLength(1);
    expect(polls).toBe(2);
  });

  it('a retried Preprocess finds its job by name and waits on; past its budget it asks to be retried', async () => {
    let request: unknown;
    sm.on(CreateProcessingJobCommand).callsFake((input) => {
      request = input;
      const e = new Error('Job name must be unique; a job with this name already exists');
      e.name = 'ResourceInUse';
      throw e;
    });
    sm.on(DescribeProcessingJobCommand).callsFake(() => ({
      ...(request as object),
      ProcessingJobStatus: 'InProgress',
    }));
    const err = await processor(memoryObjects(), sm as unknown as SageMakerClient, 0)
      .preprocess(spec)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VeritrailError);
    expect((err as VeritrailError).code).toBe('PROCESSING_RUNNING');
  });

  it('a job that completes late in an invocation is verified by the next one, with a whole invocation', async () => {
    let request: Record<string, unknown> = {};
    sm.on(CreateProcessingJobCommand).callsFake((input) => {
      request = input;
      return {};
    });
    let polls = 0;
    sm.on(DescribeProcessingJobCommand).callsFake(() => ({
      ...request,
      ProcessingJobStatus: polls++ < 3 ? 'InProgress' : 'Completed',
    }));
    const late = new SageMakerProcessor(sm as unknown as SageMakerClient, memoryObjects(), {
      image: IMAGE,
      roleArn: ROLE,
      thresholdBytes: 1,
      artifactsBucket: 'artifacts',
      kmsKeyId: KEY,
      poll: { initialDelayMs: 30_000, maxDelayMs: 30_000, timeoutMs: 8 * 60_000 },
      sleep: async () => {},
      program: async () => PROGRAM,
    });
    await expect(late.preprocess(spec)).rejects.toMatchObject({ code: 'PROCESSING_RUNNING' });
    // The retried invocation finds it completed at once and goes on to verify.
    await expect(late.preprocess(spec)).resolves.toMatchObject({
      resultKey: 'processing/veritrail-pre-r-1/result.json',
    });
  });

  it('re-hashes the output within 12 minutes of the invocation, unless told otherwise', () => {
    expect(processor(memoryObjects(), sm as unknown as SageMakerClient).verifyBudget).toEqual({
      ms: 12 * 60_000,
    });
    const told = new SageMakerProcessor(sm as unknown as SageMakerClient, memoryObjects(), {
      image: IMAGE,
      roleArn: ROLE,
      thresholdBytes: 1,
      artifactsBucket: 'artifacts',
      kmsKeyId: KEY,
      sleep: async () => {},
      verifyBudget: { ms: 1000, bytes: 5 },
    });
    expect(told.verifyBudget).toEqual({ ms: 1000, bytes: 5 });
  });

  it('refuses a job of the same name that is not the one this run asks for', async () => {
    let request: Record<string, unknown> = {};
    sm.on(CreateProcessingJobCommand).callsFake((input) => {
      request = input;
      return {};
    });
    sm.on(DescribeProcessingJobCommand).callsFake(() => ({
      ...request,
      AppSpecification: {
        ImageUri: `123456789012.dkr.ecr.eu-west-1.amazonaws.com/other@sha256:${'e'.repeat(64)}`,
      },
      ProcessingJobStatus: 'Completed',
    }));
    await expect(
      processor(memoryObjects(), sm as unknown as SageMakerClient).preprocess(spec),
    ).rejects.toMatchObject({
      code: 'PROCESSING_FAILED',
      message: expect.stringMatching(/not the one this run asks for/),
    });
  });

  it("a failed job's exit message becomes its own error; without one, PROCESSING_FAILED with SageMaker's reason", async () => {
    let request: Record<string, unknown> = {};
    sm.on(CreateProcessingJobCommand).callsFake((input) => {
      request = input;
      return {};
    });
    sm.on(DescribeProcessingJobCommand).callsFake(() => ({
      ...request,
      ProcessingJobStatus: 'Failed',
      ExitMessage: exitMessageOf('DATASET_SCHEMA', 'a.csv: header differs from the first file'),
      FailureReason: 'AlgorithmError: See job logs',
    }));
    await expect(
      processor(memoryObjects(), sm as unknown as SageMakerClient).preprocess(spec),
    ).rejects.toMatchObject({
      code: 'DATASET_SCHEMA',
      message: 'a.csv: header differs from the first file',
    });
    const plain = errorOfFailedJob({
      name: 'j',
      status: 'Failed',
      failureReason: 'CapacityError: no instances',
    });
    expect(plain.code).toBe('PROCESSING_FAILED');
    expect(plain.message).toMatch(/processing job j failed: CapacityError: no instances/);
    // An exit message that is not ours (or names INTERNAL) is not taken as a verdict.
    expect(errorOfFailedJob({ name: 'j', status: 'Failed', exitMessage: 'NOT_A_CODE: x' }).code).toBe(
      'PROCESSING_FAILED',
    );
  });

  it('refuses an image that is not pinned by digest', () => {
    expect(
      () =>
        new SageMakerProcessor(new SageMakerClient({}), memoryObjects(), {
          image: '123456789012.dkr.ecr.eu-west-1.amazonaws.com/veritrail-node:22',
          roleArn: ROLE,
          thresholdBytes: 1,
          artifactsBucket: 'a',
          kmsKeyId: KEY,
          sleep: async () => {},
        }),
    ).toThrow(/not pinned by digest/);
  });

  it('job names are valid SageMaker names under the granted prefix, and exit messages fit the 1 KB SageMaker keeps', () => {
    expect(preprocessJobName('r-01J_ABC.def')).toMatch(/^veritrail-pre-[a-zA-Z0-9](-*[a-zA-Z0-9])*$/);
    expect(preprocessJobName('r'.repeat(100))).toHaveLength(63);
    expect(
      new TextEncoder().encode(exitMessageOf('DATASET_VALUE', 'é'.repeat(2000))).length,
    ).toBeLessThanOrEqual(1024);
  });
});

describe('the processing deploy setting', () => {
  it('is off unless VERITRAIL_PROCESSING_IMAGE is set; the default threshold is 8 GiB', () => {
    expect(processingSettings({})).toBeUndefined();
    expect(processingSettings({ VERITRAIL_PROCESSING_IMAGE: IMAGE })).toMatchObject({
      image: IMAGE,
      thresholdBytes: 8 * 1024 ** 3,
      repository: { account: '123456789012', region: 'eu-west-1', name: 'veritrail-node' },
    });
  });

  it('refuses an unpinned or non-ECR image, a bad threshold, and a threshold without an image, one line each', () => {
    for (const env of [
      { VERITRAIL_PROCESSING_IMAGE: 'node:22' },
      { VERITRAIL_PROCESSING_IMAGE: `docker.io/library/node@sha256:${'a'.repeat(64)}` },
      { VERITRAIL_PROCESSING_IMAGE: IMAGE, VERITRAIL_PROCESSING_THRESHOLD_BYTES: '8GB' },
      { VERITRAIL_PROCESSING_THRESHOLD_BYTES: '1' },
    ]) {
      let message = '';
      try {
        processingSettings(env);
      } catch (e) {
        message = (e as Error).message;
      }
      expect(message, JSON.stringify(env)).toMatch(/VERITRAIL_PROCESSING_/);
      expect(message.split('\n')).toHaveLength(1);
    }
  });
});

describe("Evaluate's SageMaker Processing jobs", () => {
  const sm = mockClient(SageMakerClient);
  afterEach(() => sm.reset());
  const evaluateSpec: EvaluateJobSpec = {
    jobName: 'veritrail-evc-r-1',
    runId: 'r-1',
    pipeline: 'credit-scoring',
    config: { key: `sha256/${'c'.repeat(64)}`, digest: `sha256:${'c'.repeat(64)}` },
    inputs: [
      { name: 'test', prefix: `sha256/${'1'.repeat(64)}`, keys: [`sha256/${'1'.repeat(64)}`] },
      {
        name: 'predictions',
        prefix: 'scoring/credit-scoring/vts-r-1/',
        keys: ['scoring/credit-scoring/vts-r-1/a.out', 'scoring/credit-scoring/vts-r-1/b.out'],
      },
    ],
    sizeBytes: 4 * 1024 ** 3,
    maxRuntimeSeconds: 3600,
  };
  const config = { image: IMAGE, roleArn: ROLE, artifactsBucket: 'artifacts', kmsKeyId: KEY };

  it('runs the evaluation program with each input at input/<name>, under the same isolation and key', () => {
    const program = { key: programKey(digestOf(PROGRAM), 'evaluation.mjs') };
    const r = evaluateJobRequest(evaluateSpec, config, program);
    expect(r.AppSpecification?.ContainerEntrypoint).toEqual([
      'node',
      '/opt/ml/processing/input/code/evaluation.mjs',
    ]);
    expect(r.ProcessingInputs?.map((i) => [i.InputName, i.S3Input?.S3Uri, i.S3Input?.LocalPath])).toEqual([
      ['config', `s3://artifacts/sha256/${'c'.repeat(64)}`, '/opt/ml/processing/input/config'],
      [
        'code',
        `s3://artifacts/${program.key.slice(0, program.key.lastIndexOf('/') + 1)}`,
        '/opt/ml/processing/input/code',
      ],
      ['test', `s3://artifacts/sha256/${'1'.repeat(64)}`, '/opt/ml/processing/input/test'],
      [
        'predictions',
        's3://artifacts/scoring/credit-scoring/vts-r-1/',
        '/opt/ml/processing/input/predictions',
      ],
    ]);
    expect(r.NetworkConfig?.EnableNetworkIsolation).toBe(true);
    expect(r.ProcessingOutputConfig?.KmsKeyId).toBe(KEY);
    expect(r.ProcessingResources?.ClusterConfig?.VolumeKmsKeyId).toBe(KEY);
  });

  it('never hands a job all of sha256/, nor a key outside its input folder', () => {
    const program = { key: programKey(digestOf(PROGRAM), 'evaluation.mjs') };
    const whole = {
      ...evaluateSpec,
      inputs: [{ name: 'predictions', prefix: 'sha256/', keys: [`sha256/${'1'.repeat(64)}`] }],
    };
    expect(() => evaluateJobRequest(whole, config, program)).toThrow(/is not the folder of its keys/);
    const outside = {
      ...evaluateSpec,
      inputs: [{ name: 'test', prefix: 'scoring/a/', keys: ['scoring/b/x.out'] }],
    };
    expect(() => evaluateJobRequest(outside, config, program)).toThrow(/is not the folder of its keys/);
  });

  it('creates the job once, stores the evaluation program under its own name, and refuses a job of that name that is not this one', async () => {
    const objects = memoryObjects();
    let request: Record<string, unknown> = {};
    sm.on(CreateProcessingJobCommand).callsFake((input) => {
      request = input;
      return {};
    });
    sm.on(DescribeProcessingJobCommand).callsFake(() => ({ ...request, ProcessingJobStatus: 'Completed' }));
    const out = await processor(objects, sm as unknown as SageMakerClient, 60_000).evaluate(evaluateSpec);
    expect(out.resultKey).toBe('processing/veritrail-evc-r-1/result.json');
    expect(objects.keys).toEqual([programKey(digestOf(PROGRAM), 'evaluation.mjs')]);

    sm.reset();
    sm.on(CreateProcessingJobCommand).rejects(
      Object.assign(new Error('Job already exists'), { name: 'ResourceInUse' }),
    );
    sm.on(DescribeProcessingJobCommand).resolves({
      ...request,
      ProcessingInputs: [],
      ProcessingJobStatus: 'Completed',
    } as never);
    await expect(
      processor(objects, sm as unknown as SageMakerClient, 60_000).evaluate(evaluateSpec),
    ).rejects.toMatchObject({
      code: 'PROCESSING_FAILED',
      message: expect.stringMatching(/is not the one this run asks for/),
    });
  });
});

describe('the transform settings at deploy', () => {
  it('VERITRAIL_TRANSFORM_SHARD_BYTES and VERITRAIL_TRANSFORM_MAX_INSTANCES: unset is the default, a bad value one line', () => {
    expect(transformShardBytes({})).toBeUndefined();
    expect(transformShardBytes({ VERITRAIL_TRANSFORM_SHARD_BYTES: '16384' })).toBe(16384);
    for (const bad of ['1023', '67108865', '1e6', '-5', 'ten'])
      expect(() => transformShardBytes({ VERITRAIL_TRANSFORM_SHARD_BYTES: bad })).toThrow(
        /^VERITRAIL_TRANSFORM_SHARD_BYTES must be a whole number of bytes from 1024 to 67108864, got "/,
      );
    expect(transformMaxInstances({})).toBeUndefined();
    expect(transformMaxInstances({ VERITRAIL_TRANSFORM_MAX_INSTANCES: '4' })).toBe(4);
    expect(() => transformMaxInstances({ VERITRAIL_TRANSFORM_MAX_INSTANCES: '100' })).toThrow(/from 1 to 99/);
  });
});

describe('VERITRAIL_PROCESSING_VERIFY_BYTES', () => {
  it('is a whole number of bytes, or unset; anything else is one line naming the fix', () => {
    expect(verifyBytesSetting(undefined)).toBeUndefined();
    expect(verifyBytesSetting('')).toBeUndefined();
    expect(verifyBytesSetting('262144')).toBe(262144);
    for (const bad of ['0', '-1', '1e6', 'lots'])
      expect(() => verifyBytesSetting(bad)).toThrow(
        /^VERITRAIL_PROCESSING_VERIFY_BYTES must be a whole number of bytes \(got ".*"\); unset it/,
      );
  });
});
