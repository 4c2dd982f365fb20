import {
  CreateModelPackageCommand,
  CreateModelPackageGroupCommand,
  CreateTrainingJobCommand,
  DescribeTrainingJobCommand,
  ResourceInUse,
  SageMakerClient,
} from '@aws-sdk/client-sagemaker';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { SageMakerRegistry } from '../../../src/aws/sagemaker-registry.js';
import { type SageMakerJobSpec, SageMakerTrainer } from '../../../src/aws/sagemaker-trainer.js';
import { defaultGroupName } from '../../../src/core/deployment.js';
import type { Digest } from '../../../src/core/digest.js';
import { awsError, codeOf, errorOf } from './helpers.js';

const smMock = mockClient(SageMakerClient);
const client = () => new SageMakerClient({ region: 'eu-west-1' });

const ROLE = 'arn:aws:iam::111122223333:role/veritrail-sagemaker';
const KEY = 'arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab';
const IMAGE = `111122223333.dkr.ecr.eu-west-1.amazonaws.com/credit-train@sha256:${'a'.repeat(64)}`;
const TRAIN: Digest = `sha256:${'1'.repeat(64)}`;
const VALIDATION: Digest = `sha256:${'2'.repeat(64)}`;

function spec(over: Partial<SageMakerJobSpec> = {}): SageMakerJobSpec {
  return {
    jobName: 'vt-credit-20261126-abc123',
    runId: 'run-abc123',
    pipeline: 'credit-scoring',
    image: IMAGE,
    instanceType: 'ml.m5.xlarge',
    hyperparameters: { epochs: '10', lr: '0.1' },
    channels: {
      train: { key: `sha256/${'1'.repeat(64)}`, digest: TRAIN, fileName: 'train.csv' },
      validation: { key: `sha256/${'2'.repeat(64)}`, digest: VALIDATION, fileName: 'validation.csv' },
    },
    outputPrefix: 'runs/run-abc123/training/',
    maxRuntimeSeconds: 3600,
    ...over,
  };
}

const sleeps: number[] = [];
function trainer(over: Partial<ConstructorParameters<typeof SageMakerTrainer>[1]> = {}) {
  return new SageMakerTrainer(client(), {
    roleArn: ROLE,
    artifactsBucket: 'acme-artifacts',
    kmsKeyId: KEY,
    sleep: async (ms) => {
      sleeps.push(ms);
    },
    poll: { initialDelayMs: 1000, maxDelayMs: 4000, timeoutMs: 60_000 },
    ...over,
  });
}

beforeEach(() => {
  smMock.reset();
  sleeps.length = 0;
});

describe('SageMakerTrainer.start', () => {
  it('sends the exact pinned, encrypted, isolated CreateTrainingJob request', async () => {
    smMock.on(CreateTrainingJobCommand).resolves({ TrainingJobArn: 'arn:x' });
    const vpc = { subnets: ['subnet-0a'], securityGroupIds: ['sg-0b'] };
    await expect(trainer({ vpc }).start(spec())).resolves.toEqual({ jobName: 'vt-credit-20261126-abc123' });
    expect(smMock.commandCalls(CreateTrainingJobCommand)[0]?.args[0].input).toEqual({
      TrainingJobName: 'vt-credit-20261126-abc123',
      RoleArn: ROLE,
      AlgorithmSpecification: { TrainingImage: IMAGE, TrainingInputMode: 'File' },
      HyperParameters: {
        epochs: '10',
        lr: '0.1',
        veritrail_channel_digests: `{"train":"${TRAIN}","validation":"${VALIDATION}"}`,
      },
      InputDataConfig: [
        {
          ChannelName: 'train',
          DataSource: {
            S3DataSource: {
              S3DataType: 'S3Prefix',
              S3Uri: `s3://acme-artifacts/sha256/${'1'.repeat(64)}`,
              S3DataDistributionType: 'FullyReplicated',
            },
          },
        },
        {
          ChannelName: 'validation',
          DataSource: {
            S3DataSource: {
              S3DataType: 'S3Prefix',
              S3Uri: `s3://acme-artifacts/sha256/${'2'.repeat(64)}`,
              S3DataDistributionType: 'FullyReplicated',
            },
          },
        },
      ],
      OutputDataConfig: { S3OutputPath: 's3://acme-artifacts/runs/run-abc123/training', KmsKeyId: KEY },
      ResourceConfig: {
        InstanceType: 'ml.m5.xlarge',
        InstanceCount: 1,
        VolumeSizeInGB: 30,
        VolumeKmsKeyId: KEY,
      },
      StoppingCondition: { MaxRuntimeInSeconds: 3600 },
      EnableNetworkIsolation: true,
      EnableInterContainerTrafficEncryption: true,
      VpcConfig: { Subnets: ['subnet-0a'], SecurityGroupIds: ['sg-0b'] },
      Tags: [
        { Key: 'veritrail:run-id', Value: 'run-abc123' },
        { Key: 'veritrail:pipeline', Value: 'credit-scoring' },
      ],
    });
  });

  it('leaves VpcConfig out when none is configured and lets a spec turn network isolation off', async () => {
    smMock.on(CreateTrainingJobCommand).resolves({});
    await trainer().start(spec({ networkIsolation: false }));
    const input = smMock.commandCalls(CreateTrainingJobCommand)[0]?.args[0].input;
    expect(input).not.toHaveProperty('VpcConfig');
    expect(input?.EnableNetworkIsolation).toBe(false);
    expect(input?.EnableInterContainerTrafficEncryption).toBe(true);
  });

  it('refuses an image not pinned by digest, before any request', async () => {
    for (const image of [
      '111122223333.dkr.ecr.eu-west-1.amazonaws.com/credit-train:latest',
      `repo@sha256:${'a'.repeat(63)}`,
      undefined,
    ]) {
      const s = spec();
      if (image === undefined) delete s.image;
      else s.image = image;
      expect(await codeOf(trainer().start(s))).toBe('CODE_IMAGE_UNPINNED');
    }
    expect(smMock.calls()).toHaveLength(0);
  });

  it('refuses a channel whose key is not content-addressed by its digest', async () => {
    const s = spec();
    s.channels.train = { key: 'runs/run-abc123/processed/train.csv', digest: TRAIN, fileName: 'train.csv' };
    expect(await codeOf(trainer().start(s))).toBe('PROVENANCE_BROKEN');
  });

  it('refuses a pipeline hyperparameter in the reserved veritrail_ namespace', async () => {
    expect(
      await codeOf(trainer().start(spec({ hyperparameters: { veritrail_channel_digests: '{}' } }))),
    ).toBe('TRAINING_FAILED');
  });

  it('refuses job names SageMaker would reject', async () => {
    expect(await codeOf(trainer().start(spec({ jobName: 'has_underscore' })))).toBe('USAGE');
    expect(await codeOf(trainer().start(spec({ jobName: 'x'.repeat(64) })))).toBe('USAGE');
  });

  describe('when the job already exists (a retried state, an event delivered twice)', () => {
    it('treats it as started', async () => {
      smMock.on(CreateTrainingJobCommand).rejects(new ResourceInUse({ message: 'exists', $metadata: {} }));
      await expect(trainer().start(spec())).resolves.toEqual({ jobName: 'vt-credit-20261126-abc123' });
    });
  });

  it('maps a quota error to TRAINING_FAILED and throttling to TRANSIENT', async () => {
    smMock.on(CreateTrainingJobCommand).rejects(awsError('ResourceLimitExceeded', 400));
    expect(await codeOf(trainer().start(spec()))).toBe('TRAINING_FAILED');
    smMock.on(CreateTrainingJobCommand).rejects(awsError('ThrottlingException', 400));
    expect(await codeOf(trainer().start(spec()))).toBe('TRANSIENT');
  });
});

describe('SageMakerTrainer.wait (CLI and tests; the deployed pipeline waits on the event)', () => {
  it('polls with doubling delays up to the cap and returns the model and output keys', async () => {
    smMock
      .on(DescribeTrainingJobCommand, { TrainingJobName: 'job-1' })
      .resolvesOnce({ TrainingJobStatus: 'InProgress' })
      .resolvesOnce({ TrainingJobStatus: 'InProgress' })
      .resolvesOnce({ TrainingJobStatus: 'InProgress' })
      .resolvesOnce({ TrainingJobStatus: 'InProgress' })
      .resolves({
        TrainingJobStatus: 'Completed',
        ModelArtifacts: { S3ModelArtifacts: 's3://acme-artifacts/runs/r/training/job-1/output/model.tar.gz' },
      });
    await expect(trainer().wait('job-1')).resolves.toEqual({
      jobName: 'job-1',
      status: 'Completed',
      modelKey: 'runs/r/training/job-1/output/model.tar.gz',
      outputKey: 'runs/r/training/job-1/output/output.tar.gz',
    });
    expect(sleeps).toEqual([1000, 2000, 4000, 4000]);
  });

  it('reports a failed job with its reason', async () => {
    smMock
      .on(DescribeTrainingJobCommand)
      .resolves({ TrainingJobStatus: 'Failed', FailureReason: 'AlgorithmError: digest mismatch' });
    await expect(trainer().wait('job-2')).resolves.toEqual({
      jobName: 'job-2',
      status: 'Failed',
      failureReason: 'AlgorithmError: digest mismatch',
    });
  });

  it('gives up with TRANSIENT after the timeout', async () => {
    smMock.on(DescribeTrainingJobCommand).resolves({ TrainingJobStatus: 'InProgress' });
    const t = trainer({ poll: { initialDelayMs: 1000, maxDelayMs: 1000, timeoutMs: 3000 } });
    expect(await codeOf(t.wait('job-3'))).toBe('TRANSIENT');
    expect(sleeps).toEqual([1000, 1000, 1000]);
  });
});

describe('SageMakerRegistry', () => {
  const registry = () =>
    new SageMakerRegistry(client(), { artifactsBucket: 'acme-artifacts', kmsKeyId: KEY });
  const MODEL: Digest = `sha256:${'3'.repeat(64)}`;

  it.each([
    ['Approved', 'Approved'],
    ['Rejected', 'Rejected'],
  ] as const)(
    'registers a %s gate decision as ModelApprovalStatus %s with digests in the metadata',
    async (approval, status) => {
      smMock.on(CreateModelPackageCommand).resolves({
        ModelPackageArn: 'arn:aws:sagemaker:eu-west-1:111122223333:model-package/veritrail-credit-scoring/1',
      });
      const out = await registry().register({
        pipeline: 'credit-scoring',
        runId: 'run-abc123',
        modelDigest: MODEL,
        modelKey: 'runs/run-abc123/training/job/output/model.tar.gz',
        image: IMAGE,
        approval,
        metadata: { 'bundle:provenance': 'runs/run-abc123/attestations/provenance.sigstore.json' },
      });
      expect(out.ref).toMatch(/model-package\/veritrail-credit-scoring\/1$/);
      const input = smMock.commandCalls(CreateModelPackageCommand)[0]?.args[0].input;
      expect(input).toMatchObject({
        ModelPackageGroupName: 'veritrail-credit-scoring',
        ModelApprovalStatus: status,
        InferenceSpecification: {
          Containers: [
            {
              Image: IMAGE,
              ModelDataUrl: 's3://acme-artifacts/runs/run-abc123/training/job/output/model.tar.gz',
            },
          ],
        },
        CustomerMetadataProperties: {
          'veritrail:run-id': 'run-abc123',
          'veritrail:pipeline': 'credit-scoring',
          'digest:model': MODEL,
          'bundle:provenance': 'runs/run-abc123/attestations/provenance.sigstore.json',
        },
        SecurityConfig: { KmsKeyId: KEY },
      });
      expect(input?.ClientToken).toMatch(/^[0-9a-f]{36}$/);
    },
  );

  it('uses the same client token for a retried registration (idempotent)', async () => {
    smMock.on(CreateModelPackageCommand).resolves({ ModelPackageArn: 'arn:p/1' });
    const entry = {
      pipeline: 'p',
      runId: 'r',
      modelDigest: MODEL,
      modelKey: 'k',
      approval: 'Approved' as const,
      metadata: {},
    };
    await registry().register(entry);
    await registry().register(entry);
    const [a, b] = smMock.commandCalls(CreateModelPackageCommand).map((c) => c.args[0].input.ClientToken);
    expect(a).toBe(b);
    // Without an image the package records the model's location only.
    expect(smMock.commandCalls(CreateModelPackageCommand)[0]?.args[0].input).toMatchObject({
      SourceUri: 's3://acme-artifacts/k',
    });
  });

  it('registers the fairness report as Bias metrics with its content digest', async () => {
    smMock.on(CreateModelPackageCommand).resolves({ ModelPackageArn: 'arn:p/1' });
    const report: Digest = `sha256:${'4'.repeat(64)}`;
    await registry().createModelPackage({
      groupName: 'veritrail-p',
      runId: 'r',
      pipeline: 'p',
      approval: 'Rejected',
      modelKey: 'k',
      digests: { model: MODEL },
      fairnessReport: { key: 'runs/r/fairness.json', digest: report },
    });
    expect(smMock.commandCalls(CreateModelPackageCommand)[0]?.args[0].input.ModelMetrics).toEqual({
      Bias: {
        Report: {
          ContentType: 'application/json',
          S3Uri: 's3://acme-artifacts/runs/r/fairness.json',
          ContentDigest: report,
        },
      },
    });
  });

  it('creates the pipeline’s model package group before the first package goes into it', async () => {
    const order: string[] = [];
    smMock.on(CreateModelPackageGroupCommand).callsFake(() => {
      order.push('group');
      return {};
    });
    smMock.on(CreateModelPackageCommand).callsFake(() => {
      order.push('package');
      return { ModelPackageArn: 'arn:p/1' };
    });
    await registry().register({
      pipeline: 'credit-scoring',
      runId: 'r',
      modelDigest: MODEL,
      modelKey: 'k',
      approval: 'Approved',
      metadata: {},
    });
    expect(order).toEqual(['group', 'package']);
    expect(smMock.commandCalls(CreateModelPackageGroupCommand)[0]?.args[0].input).toMatchObject({
      ModelPackageGroupName: 'veritrail-credit-scoring',
      Tags: [{ Key: 'veritrail:pipeline', Value: 'credit-scoring' }],
    });
  });

  it('registers into a group that already exists (a later run of the pipeline)', async () => {
    smMock
      .on(CreateModelPackageGroupCommand)
      .rejects(awsError('ValidationException', 400, 'Model Package Group already exists: arn:x'));
    smMock.on(CreateModelPackageCommand).resolves({ ModelPackageArn: 'arn:p/2' });
    const out = await registry().register({
      pipeline: 'credit-scoring',
      runId: 'r2',
      modelDigest: MODEL,
      modelKey: 'k',
      approval: 'Rejected',
      metadata: {},
    });
    expect(out.ref).toBe('arn:p/2');
  });

  it('turns a pipeline name into a valid group name', () => {
    expect(defaultGroupName('credit_scoring.v2')).toBe('veritrail-credit-scoring-v2');
  });

  it('ensureGroup treats an existing group as success and translates other errors', async () => {
    smMock
      .on(CreateModelPackageGroupCommand)
      .rejects(awsError('ValidationException', 400, 'Model Package Group already exists: arn:x'));
    await expect(registry().ensureGroup('veritrail-p')).resolves.toBeUndefined();
    smMock.on(CreateModelPackageGroupCommand).rejects(awsError('AccessDeniedException', 400));
    const e = await errorOf(registry().ensureGroup('veritrail-p'));
    expect((e as Error).message).toContain('sagemaker:CreateModelPackageGroup');
  });
});

describe('the training volume key', () => {
  it.each([
    'ml.m5.xlarge',
    'ml.c5.2xlarge',
    'ml.p3.2xlarge',
    'ml.c6i.xlarge',
    'ml.m7i.large',
    'ml.p2.xlarge',
  ])('is set for %s, whose volume is EBS', async (instanceType) => {
    smMock.on(CreateTrainingJobCommand).resolves({});
    await trainer().start(spec({ instanceType }));
    const input = smMock.commandCalls(CreateTrainingJobCommand)[0]?.args[0].input;
    expect(input?.ResourceConfig?.VolumeKmsKeyId).toBe(KEY);
    expect(input?.OutputDataConfig?.KmsKeyId).toBe(KEY);
  });

  it.each([
    'ml.g4dn.xlarge',
    'ml.g5.2xlarge',
    'ml.g6e.xlarge',
    'ml.p3dn.24xlarge',
    'ml.p4d.24xlarge',
    'ml.p4de.24xlarge',
    'ml.p5.48xlarge',
    'ml.trn1.32xlarge',
    'ml.trn1n.32xlarge',
    'ml.m5d.large',
    'ml.c5d.xlarge',
    'ml.r5d.large',
    'ml.m6id.large',
  ])('is left out for %s, whose local NVMe storage SageMaker encrypts itself', async (instanceType) => {
    smMock.on(CreateTrainingJobCommand).resolves({});
    await trainer().start(spec({ instanceType }));
    const input = smMock.commandCalls(CreateTrainingJobCommand)[0]?.args[0].input;
    expect(input?.ResourceConfig).not.toHaveProperty('VolumeKmsKeyId');
    // The output is still encrypted with the data key.
    expect(input?.OutputDataConfig?.KmsKeyId).toBe(KEY);
  });
});
