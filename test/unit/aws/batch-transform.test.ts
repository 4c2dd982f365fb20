import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
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
import {
  batchTransformRequests,
  SHARDS_PER_INSTANCE,
  scoreWithBatchTransform,
  transformInstanceCount,
} from '../../../src/aws/sagemaker-scorer.js';
import { SageMakerTrainer } from '../../../src/aws/sagemaker-trainer.js';
import { casKey, type Digest, digestOf } from '../../../src/core/digest.js';
import { isVeritrailError } from '../../../src/core/errors.js';
import { FsObjectStore } from '../../../src/local/fs-object-store.js';
import type { ScoringJobSpec } from '../../../src/ports.js';
import { emulateManifestTransformJob, emulateTransformJob } from '../../helpers/batch-transform.js';
import { exampleModelBytes } from '../../helpers/model-tar.js';

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
const hex = (c: string) => c.repeat(64);
const shard = (c: string, rows = 10) => ({
  key: `sha256/${hex(c)}`,
  digest: `sha256:${hex(c)}` as Digest,
  rows,
});
const sharded: ScoringJobSpec = { ...spec, shards: [shard('1'), shard('2'), shard('3')] };

/** What DescribeTransformJob says of the job this spec creates, with the given status. */
function described(
  of: Parameters<typeof batchTransformRequests>[0],
  status: { TransformJobStatus: 'InProgress' | 'Completed' | 'Failed'; FailureReason?: string },
) {
  const { transform } = batchTransformRequests(of, config);
  return { ...transform, ...status } as never;
}

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
      // One request per shard of up to 64 MiB: an hour per request, not SageMaker's default 600 s.
      ModelClientConfig: { InvocationsTimeoutInSeconds: 3600 },
    });
    expect(r.outputKey).toBe(`scoring/credit-scoring/vts-r-1/${'f'.repeat(64)}.out`);
  });

  it('creates both idempotently and returns the output key once the job completed', async () => {
    sm.on(CreateModelCommand).rejects(
      Object.assign(new Error('Cannot create already existing model'), { name: 'ValidationException' }),
    );
    sm.on(CreateTransformJobCommand).resolves({});
    let polls = 0;
    sm.on(DescribeTransformJobCommand).callsFake(() =>
      described(spec, { TransformJobStatus: polls++ === 0 ? 'InProgress' : 'Completed' }),
    );
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
    sm.on(DescribeTransformJobCommand).resolves(
      described(spec, { TransformJobStatus: 'Failed', FailureReason: 'ClientError: 500' }),
    );
    const trainer = new SageMakerTrainer(new SageMakerClient({ region: 'eu-west-1' }), {
      ...config,
      roleArn: 'arn:aws:iam::123456789012:role/sm-credit-scoring',
      sleep: async () => undefined,
    });
    const e = await trainer.score(spec).catch((x: unknown) => x);
    expect(isVeritrailError(e, 'SCORING_FAILED')).toBe(true);
    expect((e as Error).message).toMatch(/ClientError: 500/);
  });

  it('with shards: one job over a content-addressed ManifestFile, SplitType None, an output key per shard in order', () => {
    const r = batchTransformRequests(sharded, config);
    const manifest = JSON.parse(new TextDecoder().decode(r.manifest?.bytes));
    // The shards' common folder is the prefix, so each entry is a bare file name.
    expect(manifest).toEqual([{ prefix: 's3://artifacts-bucket/sha256/' }, hex('1'), hex('2'), hex('3')]);
    expect(r.manifest?.key).toBe(casKey(digestOf(r.manifest?.bytes as Uint8Array)));
    expect(r.transform.TransformInput).toEqual({
      DataSource: {
        S3DataSource: { S3DataType: 'ManifestFile', S3Uri: `s3://artifacts-bucket/${r.manifest?.key}` },
      },
      ContentType: 'text/csv',
      SplitType: 'None',
    });
    expect(r.transform.MaxPayloadInMB).toBe(100);
    expect(r.transform.TransformResources?.InstanceCount).toBe(1);
    expect(r.shardOutputKeys).toEqual(
      ['1', '2', '3'].map((c) => `scoring/credit-scoring/vts-r-1/${hex(c)}.out`),
    );
    expect(r.outputKey).toBe(r.shardOutputKeys?.[0]);
    // The same spec gives the same manifest: a retried Evaluate asks for the very same job.
    expect(batchTransformRequests(sharded, config).manifest?.key).toBe(r.manifest?.key);
  });

  it('with shards: keys under different folders are listed relative to their common folder; a repeated shard once', () => {
    const r = batchTransformRequests(
      {
        ...spec,
        shards: [
          { key: 'features/a/s1.csv', digest: `sha256:${hex('1')}`, rows: 1 },
          { key: 'features/b/s2.csv', digest: `sha256:${hex('2')}`, rows: 1 },
          { key: 'features/a/s1.csv', digest: `sha256:${hex('1')}`, rows: 1 },
        ],
      },
      config,
    );
    expect(JSON.parse(new TextDecoder().decode(r.manifest?.bytes))).toEqual([
      { prefix: 's3://artifacts-bucket/features/' },
      'a/s1.csv',
      'b/s2.csv',
    ]);
    expect(r.shardOutputKeys).toEqual([
      'scoring/credit-scoring/vts-r-1/a/s1.csv.out',
      'scoring/credit-scoring/vts-r-1/b/s2.csv.out',
      'scoring/credit-scoring/vts-r-1/a/s1.csv.out',
    ]);
  });

  it('with shards: no empty list, no key that is not an object key', () => {
    for (const shards of [[], [{ key: 'sha256/../x', digest: `sha256:${hex('1')}` as Digest, rows: 1 }]]) {
      const e = (() => {
        try {
          return batchTransformRequests({ ...spec, shards }, config);
        } catch (x) {
          return x;
        }
      })();
      expect(isVeritrailError(e, 'SCORING_FAILED')).toBe(true);
    }
  });

  it(`asks for one instance per ${SHARDS_PER_INSTANCE} shards, up to the cap (default 1)`, () => {
    expect(transformInstanceCount(100)).toBe(1);
    expect(transformInstanceCount(1, 4)).toBe(1);
    expect(transformInstanceCount(SHARDS_PER_INSTANCE + 1, 4)).toBe(2);
    expect(transformInstanceCount(1000, 4)).toBe(4);
    const many = {
      ...spec,
      shards: Array.from({ length: 20 }, (_, i) => shard(i.toString(16).padStart(2, '0').slice(-1))),
    };
    expect(
      batchTransformRequests(many, { ...config, maxInstanceCount: 10 }).transform.TransformResources
        ?.InstanceCount,
    ).toBe(3);
    expect(
      batchTransformRequests(spec, { ...config, maxInstanceCount: 10 }).transform.TransformResources
        ?.InstanceCount,
    ).toBe(1);
  });

  it('refuses a job found by name that is not the one this run asks for', async () => {
    sm.on(CreateModelCommand).resolves({});
    sm.on(CreateTransformJobCommand).rejects(
      Object.assign(new Error('Job name must be unique'), { name: 'ResourceInUse' }),
    );
    sm.on(DescribeTransformJobCommand).resolves({
      ...(described(spec, { TransformJobStatus: 'Completed' }) as object),
      TransformOutput: { S3OutputPath: 's3://elsewhere/out' },
    } as never);
    const e = await scoreWithBatchTransform(
      new SageMakerClient({ region: 'eu-west-1' }),
      { ...config, sleep: async () => undefined },
      spec,
    ).catch((x: unknown) => x);
    expect((e as Error).message).toMatch(/exists but is not the one this run asks for/);
    expect(isVeritrailError(e, 'SCORING_FAILED')).toBe(true);
  });

  it('with shards: writes the manifest to the artifacts store before creating the job and returns the per-shard keys', async () => {
    const root = mkdtempSync(join(tmpdir(), 'veritrail-manifest-'));
    try {
      const objects = new FsObjectStore(root);
      sm.on(CreateModelCommand).resolves({});
      sm.on(CreateTransformJobCommand).resolves({});
      sm.on(DescribeTransformJobCommand).resolves(described(sharded, { TransformJobStatus: 'Completed' }));
      const r = await scoreWithBatchTransform(
        new SageMakerClient({ region: 'eu-west-1' }),
        { ...config, objects, sleep: async () => undefined },
        sharded,
      );
      const { manifest, shardOutputKeys } = batchTransformRequests(sharded, config);
      expect(r.shardPredictionKeys).toEqual(shardOutputKeys);
      expect(r.predictionsKey).toBe(shardOutputKeys?.[0]);
      const stored = readFileSync(join(root, 'artifacts', manifest?.key ?? ''));
      expect(new Uint8Array(stored)).toEqual(manifest?.bytes);
      // Without a store it cannot write the manifest, so it creates nothing.
      sm.resetHistory();
      const e = await scoreWithBatchTransform(
        new SageMakerClient({ region: 'eu-west-1' }),
        { ...config, sleep: async () => undefined },
        sharded,
      ).catch((x: unknown) => x);
      expect(isVeritrailError(e, 'INTERNAL')).toBe(true);
      expect(sm.commandCalls(CreateTransformJobCommand)).toHaveLength(0);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('past its 8-minute poll budget throws PROCESSING_RUNNING (Evaluate is invoked again and waits on)', async () => {
    sm.on(CreateModelCommand).resolves({});
    sm.on(CreateTransformJobCommand).rejects(
      Object.assign(new Error('Job name must be unique'), { name: 'ResourceInUse' }),
    );
    sm.on(DescribeTransformJobCommand).resolves(described(spec, { TransformJobStatus: 'InProgress' }));
    let slept = 0;
    const e = await scoreWithBatchTransform(
      new SageMakerClient({ region: 'eu-west-1' }),
      {
        ...config,
        sleep: async (ms) => {
          slept += ms;
        },
      },
      spec,
    ).catch((x: unknown) => x);
    expect(isVeritrailError(e, 'PROCESSING_RUNNING')).toBe(true);
    expect(slept).toBeGreaterThanOrEqual(8 * 60 * 1000);
    expect(slept).toBeLessThan(9 * 60 * 1000);
  });
});

describe('the Batch Transform emulation for the emulated-AWS suite', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'veritrail-bt-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('runs the example predict.mjs on the features and names the output as Batch Transform does', async () => {
    const { model, transform } = batchTransformRequests(spec, config);
    const out = await emulateTransformJob({
      model,
      transform,
      modelTarGz: await exampleModelBytes(dir),
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

  it('a ManifestFile transform: reads the manifest, scores each listed shard as its own request, writes each under the documented name', async () => {
    const texts = ['a,b\n2,1\n0,3\n', 'a,b\n5,0\n', 'a,b\n0,9\n1,1\n'];
    const objects = new Map<string, Uint8Array>();
    const shards = texts.map((t) => {
      const bytes = new TextEncoder().encode(t);
      const d = digestOf(bytes);
      objects.set(`s3://artifacts-bucket/${casKey(d)}`, bytes);
      return { key: casKey(d), digest: d, rows: 1 };
    });
    const { model, transform, manifest, shardOutputKeys } = batchTransformRequests(
      { ...spec, shards },
      config,
    );
    objects.set(`s3://artifacts-bucket/${manifest?.key}`, manifest?.bytes as Uint8Array);
    const reads: string[] = [];
    const out = await emulateManifestTransformJob({
      model,
      transform,
      modelTarGz: await exampleModelBytes(dir),
      read: async (uri) => {
        reads.push(uri);
        const b = objects.get(uri);
        if (!b) throw new Error(`NoSuchKey ${uri}`);
        return b;
      },
      predict: ['node', 'trainer/predict.mjs'],
      cwd: join(import.meta.dirname, '../../../examples/credit-scoring'),
    });
    expect(reads[0]).toBe(`s3://artifacts-bucket/${manifest?.key}`);
    expect(reads.slice(1)).toEqual(shards.map((s) => `s3://artifacts-bucket/${s.key}`));
    expect(out.map((o) => o.key)).toEqual(shardOutputKeys);
    expect(out.every((o) => o.bucket === 'artifacts-bucket')).toBe(true);
    expect(
      out.map((o) =>
        new TextDecoder()
          .decode(o.bytes)
          .trim()
          .split('\n')
          .map((l) => l.split(',')[1]),
      ),
    ).toEqual([
      ['prediction', '1', '0'],
      ['prediction', '1'],
      ['prediction', '0', '1'],
    ]);
  });

  it('fails a request larger than MaxPayloadInMB, as SageMaker does', async () => {
    const { model, transform } = batchTransformRequests(spec, config);
    const e = await emulateTransformJob({
      model,
      transform: { ...transform, MaxPayloadInMB: 1 },
      modelTarGz: await exampleModelBytes(dir),
      input: new Uint8Array(1024 * 1024 + 1),
      predict: ['node', 'trainer/predict.mjs'],
      cwd: join(import.meta.dirname, '../../../examples/credit-scoring'),
    }).catch((x: unknown) => x);
    expect((e as Error).message).toMatch(/MaxPayloadInMB/);
  });
});
