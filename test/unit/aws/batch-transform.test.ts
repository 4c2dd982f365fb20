import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CreateModelCommand,
  CreateTransformJobCommand,
  DescribeTransformJobCommand,
  SageMakerClient,
} from '@aws-sdk/client-sagemaker';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { batchTransformRequests } from '../../../src/aws/sagemaker-scorer.js';
import { SageMakerTrainer } from '../../../src/aws/sagemaker-trainer.js';
import { isVeritrailError } from '../../../src/core/errors.js';
import type { ScoringJobSpec } from '../../../src/ports.js';
import { packDeterministic } from '../../../src/tarball.js';
import { emulateTransformJob } from '../../helpers/batch-transform.js';

const IMAGE = `123456789012.dkr.ecr.eu-west-1.amazonaws.com/t@sha256:${'a'.repeat(64)}`;
const KEY = 'arn:aws:kms:eu-west-1:123456789012:key/data';
const spec: ScoringJobSpec = {
  jobName: 'vts-r-1',
  runId: 'r-1',
  pipeline: 'credit-scoring',
  model: { key: 'training/credit-scoring/vt-r-1/output/model.tar.gz', digest: `sha256:${'9'.repeat(64)}` },
  input: { key: `sha256/${'f'.repeat(64)}`, digest: `sha256:${'f'.repeat(64)}` },
  image: IMAGE,
  outputPrefix: 'scoring/credit-scoring/',
  maxRuntimeSeconds: 3600,
};
const config = {
  artifactsBucket: 'artifacts-bucket',
  kmsKeyId: KEY,
  roleArnFor: () => 'arn:aws:iam::123456789012:role/sm-credit-scoring',
};

describe('scoring on AWS: a Batch Transform job of the training image', () => {
  const sm = mockClient(SageMakerClient);
  afterEach(() => sm.reset());

  it('registers the model with network isolation and its own role, and transforms the test features with the data key', () => {
    const r = batchTransformRequests(spec, config);
    expect(r.model).toMatchObject({
      ModelName: 'vts-r-1',
      ExecutionRoleArn: 'arn:aws:iam::123456789012:role/sm-credit-scoring',
      EnableNetworkIsolation: true,
      PrimaryContainer: { Image: IMAGE, ModelDataUrl: `s3://artifacts-bucket/${spec.model.key}` },
    });
    expect(r.transform).toMatchObject({
      TransformInput: { ContentType: 'text/csv', SplitType: 'None' },
      TransformOutput: {
        S3OutputPath: 's3://artifacts-bucket/scoring/credit-scoring/vts-r-1',
        KmsKeyId: KEY,
      },
      TransformResources: { VolumeKmsKeyId: KEY, InstanceCount: 1 },
    });
    expect(r.outputKey).toBe(`scoring/credit-scoring/vts-r-1/${'f'.repeat(64)}.out`);
  });

  it('creates both idempotently and returns the output key once the job completed', async () => {
    sm.on(CreateModelCommand).rejects(
      Object.assign(new Error('Cannot create already existing model'), { name: 'ValidationException' }),
    );
    sm.on(CreateTransformJobCommand).resolves({});
    sm.on(DescribeTransformJobCommand)
      .resolvesOnce({ TransformJobStatus: 'InProgress' })
      .resolves({ TransformJobStatus: 'Completed' });
    const trainer = new SageMakerTrainer(new SageMakerClient({ region: 'eu-west-1' }), {
      ...config,
      roleArn: 'arn:aws:iam::123456789012:role/sm-credit-scoring',
      sleep: async () => undefined,
    });
    const r = await trainer.score(spec);
    expect(r.predictionsKey).toBe(`scoring/credit-scoring/vts-r-1/${'f'.repeat(64)}.out`);
    expect(sm.commandCalls(DescribeTransformJobCommand)).toHaveLength(2);
  });

  it("fails with SCORING_FAILED and SageMaker's reason when the job fails", async () => {
    sm.on(CreateModelCommand).resolves({});
    sm.on(CreateTransformJobCommand).resolves({});
    sm.on(DescribeTransformJobCommand).resolves({
      TransformJobStatus: 'Failed',
      FailureReason: 'ClientError: 500',
    });
    const trainer = new SageMakerTrainer(new SageMakerClient({ region: 'eu-west-1' }), {
      ...config,
      roleArn: 'arn:aws:iam::123456789012:role/sm-credit-scoring',
      sleep: async () => undefined,
    });
    const e = await trainer.score(spec).catch((x: unknown) => x);
    expect(isVeritrailError(e, 'SCORING_FAILED')).toBe(true);
    expect((e as Error).message).toMatch(/ClientError: 500/);
  });
});

describe('the Batch Transform emulation for the emulated-AWS suite', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'veritrail-bt-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('runs the example predict.mjs on the features and names the output as Batch Transform does', async () => {
    mkdirSync(join(dir, 'model'));
    const features = ['a', 'b'];
    writeFileSync(
      join(dir, 'model', 'model.json'),
      JSON.stringify({
        type: 'logistic-regression',
        features,
        threshold: 0.5,
        mean: [0, 0],
        std: [1, 1],
        weights: [1, -1],
        bias: 0,
      }),
    );
    await packDeterministic(join(dir, 'model'), join(dir, 'model.tar.gz'));
    const { model, transform } = batchTransformRequests(spec, config);
    const out = await emulateTransformJob({
      model,
      transform,
      modelTarGz: readFileSync(join(dir, 'model.tar.gz')),
      input: new TextEncoder().encode('a,b\n2,1\n0,3\n'),
      predict: ['node', 'trainer/predict.mjs'],
      cwd: join(import.meta.dirname, '../../../examples/credit-scoring'),
    });
    expect(out.key).toBe(`scoring/credit-scoring/vts-r-1/${'f'.repeat(64)}.out`);
    expect(
      new TextDecoder()
        .decode(out.bytes)
        .trim()
        .split('\n')
        .map((l) => l.split(',')[1]),
    ).toEqual(['prediction', '1', '0']);
  });
});
