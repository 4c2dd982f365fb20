/**
 * The SageMaker trainer as the deployed Train step drives it: the spec the step really builds
 * (src/steps/train.ts trainingSpec), each pipeline's own execution role, the output path under
 * training/<pipeline>/, and the keys SageMaker really writes there.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import {
  CreateTrainingJobCommand,
  DescribeTrainingJobCommand,
  SageMakerClient,
} from '@aws-sdk/client-sagemaker';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { createAwsClients } from '../../../src/aws/clients.js';
import { createAwsRuntime, parseRoleArns, readAwsConfig } from '../../../src/aws/runtime.js';
import {
  SageMakerTrainer,
  trainingJobResultOf,
  trainingOutputKeys,
} from '../../../src/aws/sagemaker-trainer.js';
import type { Digest } from '../../../src/core/digest.js';
import type { ExecState } from '../../../src/core/exec-state.js';
import { parsePipelineDefinition } from '../../../src/core/pipeline.js';
import { trainingSpec } from '../../../src/steps/train.js';
import { codeOf } from './helpers.js';

const smMock = mockClient(SageMakerClient);
beforeEach(() => smMock.reset());

const BUCKET = 'prod-veritrail-storage-artifactsbucket-1a2b3c';
const KEY = 'arn:aws:kms:eu-west-1:111122223333:key/data';
const ROLES = {
  'credit-scoring': 'arn:aws:iam::111122223333:role/prod-veritrail-Identity-SageMakercreditscoring',
  fraud: 'arn:aws:iam::111122223333:role/prod-veritrail-Identity-SageMakerfraud',
};
const TRAIN: Digest = `sha256:${'1'.repeat(64)}`;
const VALIDATION: Digest = `sha256:${'2'.repeat(64)}`;
const ROOT = path.resolve(import.meta.dirname, '../../..');
const definition = parsePipelineDefinition(
  JSON.parse(readFileSync(path.join(ROOT, 'examples/credit-scoring/pipeline.json'), 'utf8')),
);

function state(pipeline = 'credit-scoring'): ExecState {
  const channel = (d: Digest, fileName: string) => ({
    key: `sha256/${d.slice(7)}`,
    digest: d,
    rows: 10,
    fileName,
  });
  return {
    runId: 'r-abcdefghijklmnopqrstuvwxyz',
    pipeline: { name: pipeline, digest: `sha256:${'a'.repeat(64)}` },
    dataset: { uri: 's3://landing/credit-scoring/a.csv' },
    trigger: { type: 's3', idempotencyKey: 'k' },
    results: {
      preprocess: {
        digest: `sha256:${'3'.repeat(64)}`,
        manifestKey: `sha256/${'3'.repeat(64)}`,
        train: channel(TRAIN, 'train.csv'),
        validation: channel(VALIDATION, 'validation.csv'),
        test: {
          key: `sha256/${'4'.repeat(64)}`,
          digest: `sha256:${'4'.repeat(64)}`,
          rows: 5,
          fileName: 'test.csv',
        },
        testFeatures: { key: `sha256/${'4'.repeat(64)}`, digest: `sha256:${'4'.repeat(64)}` },
        testGroups: { key: `sha256/${'4'.repeat(64)}`, digest: `sha256:${'4'.repeat(64)}` },
        columns: ['income'],
        transform: { digest: `sha256:${'5'.repeat(64)}`, codeDigest: `sha256:${'6'.repeat(64)}` },
      },
    },
  };
}

const trainer = (roleArns: Record<string, string> = ROLES, roleArn?: string) =>
  new SageMakerTrainer(new SageMakerClient({ region: 'eu-west-1' }), {
    roleArns,
    ...(roleArn ? { roleArn } : {}),
    artifactsBucket: BUCKET,
    kmsKeyId: KEY,
  });

describe('the spec the Train step builds', () => {
  it('is accepted as is: the step’s own veritrail_ hyperparameters pass, the channel digests are the channels’', () => {
    const request = trainer().buildRequest(trainingSpec(state(), definition, 'token'));
    expect(request.HyperParameters).toMatchObject({
      veritrail_label: 'repaid',
      veritrail_features: definition.dataset.features.join(','),
      veritrail_channel_digests: `{"train":"${TRAIN}","validation":"${VALIDATION}"}`,
      epochs: '300',
    });
  });

  it('trains under the run’s own pipeline role and writes under training/<pipeline>/', () => {
    const request = trainer().buildRequest(trainingSpec(state(), definition));
    expect(request.RoleArn).toBe(ROLES['credit-scoring']);
    expect(request.OutputDataConfig).toEqual({
      S3OutputPath: `s3://${BUCKET}/training/credit-scoring`,
      KmsKeyId: KEY,
    });
    const fraud = trainer().buildRequest(trainingSpec(state('fraud'), definition));
    expect(fraud.RoleArn).toBe(ROLES.fraud);
    expect(fraud.OutputDataConfig?.S3OutputPath).toBe(`s3://${BUCKET}/training/fraud`);
  });

  it('sends the request with that role', async () => {
    smMock.on(CreateTrainingJobCommand).resolves({ TrainingJobArn: 'arn:x' });
    await trainer().start(trainingSpec(state('fraud'), definition));
    expect(smMock.commandCalls(CreateTrainingJobCommand)[0]?.args[0].input.RoleArn).toBe(ROLES.fraud);
  });

  it('refuses a pipeline with no role in this deployment with PIPELINE_INVALID', async () => {
    expect(await codeOf(trainer().start(trainingSpec(state('churn'), definition)))).toBe('PIPELINE_INVALID');
    expect(smMock.calls()).toHaveLength(0);
    // Outside the stack, a single role may stand in for every pipeline.
    const single = trainer({}, 'arn:aws:iam::111122223333:role/sm');
    expect(single.buildRequest(trainingSpec(state('churn'), definition)).RoleArn).toBe(
      'arn:aws:iam::111122223333:role/sm',
    );
  });

  it('refuses channel digests that differ from the channels, and other veritrail_ names', () => {
    const spec = trainingSpec(state(), definition);
    spec.hyperparameters.veritrail_channel_digests = JSON.stringify({ train: VALIDATION, validation: TRAIN });
    expect(() => trainer().buildRequest(spec)).toThrow(expect.objectContaining({ code: 'TRAINING_FAILED' }));
    const other = trainingSpec(state(), definition);
    other.hyperparameters.veritrail_debug = '1';
    expect(() => trainer().buildRequest(other)).toThrow(expect.objectContaining({ code: 'TRAINING_FAILED' }));
  });

  it.each(['', '/', '/training/x/', 'training/../audit/', 'training//x/', 'training/./x'])(
    'refuses the output prefix %j, which could escape the pipeline’s prefix',
    (outputPrefix) => {
      const spec = { ...trainingSpec(state(), definition), outputPrefix };
      expect(() => trainer().buildRequest(spec)).toThrow(
        expect.objectContaining({ code: 'TRAINING_FAILED' }),
      );
    },
  );
});

describe('where SageMaker writes the results', () => {
  const job = 'vt-r-abcdefghijklmnopqrstuvwxyz';
  const model = `training/credit-scoring/${job}/output/model.tar.gz`;

  it('is <prefix><job>/output/{model,output}.tar.gz', () => {
    expect(trainingOutputKeys('training/credit-scoring/', job)).toEqual({
      modelKey: model,
      outputKey: `training/credit-scoring/${job}/output/output.tar.gz`,
    });
  });

  it('maps the reported model URI to artifacts-bucket keys, or derives it from the output path', () => {
    const keys = trainingOutputKeys('training/credit-scoring/', job);
    expect(
      trainingJobResultOf(
        { jobName: job, status: 'Completed', modelArtifactsUri: `s3://${BUCKET}/${model}` },
        BUCKET,
      ),
    ).toEqual({ jobName: job, status: 'Completed', ...keys });
    expect(
      trainingJobResultOf(
        { jobName: job, status: 'Completed', outputPath: `s3://${BUCKET}/training/credit-scoring` },
        BUCKET,
      ),
    ).toEqual({ jobName: job, status: 'Completed', ...keys });
  });

  it.each([
    ['another bucket', `s3://other-bucket/${model}`],
    ['another job’s folder', `s3://${BUCKET}/training/credit-scoring/vt-other/output/model.tar.gz`],
    ['no folder at all', `s3://${BUCKET}/${job}/output/model.tar.gz`],
  ])('gives no keys and a reason for a model in %s', (_what, uri) => {
    const result = trainingJobResultOf({ jobName: job, status: 'Completed', modelArtifactsUri: uri }, BUCKET);
    expect(result.modelKey).toBeUndefined();
    expect(result.outputKey).toBeUndefined();
    expect(result.failureReason).toContain(uri);
  });

  it('passes a failed job’s reason through, with no keys', () => {
    expect(trainingJobResultOf({ jobName: job, status: 'Failed', failureReason: 'OOM' }, BUCKET)).toEqual({
      jobName: job,
      status: 'Failed',
      failureReason: 'OOM',
    });
  });

  it('is what wait() reports after DescribeTrainingJob', async () => {
    smMock.on(DescribeTrainingJobCommand).resolves({
      TrainingJobStatus: 'Completed',
      OutputDataConfig: { S3OutputPath: `s3://${BUCKET}/training/credit-scoring` },
    });
    await expect(trainer().wait(job)).resolves.toEqual({
      jobName: job,
      status: 'Completed',
      ...trainingOutputKeys('training/credit-scoring/', job),
    });
  });
});

describe('VERITRAIL_SAGEMAKER_ROLE_ARNS', () => {
  const ENV: Record<string, string> = {
    VERITRAIL_TABLE: 't',
    VERITRAIL_LANDING_BUCKET: 'l',
    VERITRAIL_ARTIFACTS_BUCKET: BUCKET,
    VERITRAIL_AUDIT_BUCKET: 'a',
    VERITRAIL_DATA_KEY_ARN: KEY,
    VERITRAIL_SIGNING_KEY_ARN: 'arn:aws:kms:eu-west-1:111122223333:key/sign',
    VERITRAIL_CHECKPOINT_KEY_ARN: 'arn:aws:kms:eu-west-1:111122223333:key/checkpoint',
    VERITRAIL_STATE_MACHINE_ARN: 'arn:aws:states:eu-west-1:111122223333:stateMachine:veritrail',
  };

  it('is read as the per-pipeline role map the stack sets; no single role is required', () => {
    const config = readAwsConfig({ ...ENV, VERITRAIL_SAGEMAKER_ROLE_ARNS: JSON.stringify(ROLES) });
    expect(config.sagemakerRoleArns).toEqual(ROLES);
    expect(config.sagemakerRoleArn).toBeUndefined();
    expect(readAwsConfig(ENV).sagemakerRoleArns).toEqual({});
    expect(parseRoleArns('{}')).toEqual({});
  });

  it.each(['[]', 'not json', '{"fraud":"alias/x"}', '{"fraud":42}'])('refuses %s with USAGE', (value) => {
    expect(() => parseRoleArns(value)).toThrow(expect.objectContaining({ code: 'USAGE' }));
  });

  it('reaches the trainer of the runtime', async () => {
    const clients = createAwsClients({});
    const rt = await createAwsRuntime(
      { ...ENV, VERITRAIL_SAGEMAKER_ROLE_ARNS: JSON.stringify(ROLES) },
      { clients },
    );
    expect((rt.trainer as SageMakerTrainer).roleArnFor('fraud')).toBe(ROLES.fraud);
    for (const c of Object.values(clients)) c.destroy();
  });
});
