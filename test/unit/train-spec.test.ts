import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { ExecState } from '../../src/core/exec-state.js';
import { parsePipelineDefinition } from '../../src/core/pipeline.js';
import { trainingJobName, trainingSpec } from '../../src/steps/train.js';

const d = (c: string): `sha256:${string}` => `sha256:${c.repeat(64)}`;
const state: ExecState = {
  runId: 'r-abcdefghijklmnopqrstuvwxyz',
  pipeline: { name: 'credit-scoring', digest: d('1') },
  dataset: { uri: 's3://landing/credit-scoring/a.csv', versionId: 'v1' },
  trigger: { type: 's3', idempotencyKey: d('2') },
  results: {
    preprocess: {
      digest: d('3'),
      manifestKey: `sha256/${'3'.repeat(64)}`,
      train: { key: `sha256/${'4'.repeat(64)}`, digest: d('4'), rows: 10, fileName: 'train.csv' },
      validation: { key: `sha256/${'5'.repeat(64)}`, digest: d('5'), rows: 5, fileName: 'validation.csv' },
      test: { key: `sha256/${'6'.repeat(64)}`, digest: d('6'), rows: 5, fileName: 'test.csv' },
      testFeatures: { key: `sha256/${'6'.repeat(64)}`, digest: d('6') },
      testGroups: { key: `sha256/${'6'.repeat(64)}`, digest: d('6') },
      columns: ['income', 'repaid'],
      transform: { digest: d('7'), codeDigest: d('8') },
    },
  },
};

describe('the training job spec', () => {
  const def = parsePipelineDefinition({
    ...JSON.parse(
      readFileSync(join(import.meta.dirname, '../../examples/credit-scoring/pipeline.json'), 'utf8'),
    ),
  });

  it('pins the channels to the processed digests and tells the container what to insist on', () => {
    const spec = trainingSpec(state, def, 'token');
    expect(spec.jobName).toBe(trainingJobName(state.runId));
    expect(spec.jobName.startsWith('vt-')).toBe(true);
    expect(spec.channels.train).toEqual({
      key: `sha256/${'4'.repeat(64)}`,
      digest: d('4'),
      fileName: 'train.csv',
    });
    expect(JSON.parse(spec.hyperparameters.veritrail_channel_digests ?? '{}')).toEqual({
      train: d('4'),
      validation: d('5'),
    });
    expect(spec.outputPrefix).toBe('training/credit-scoring/');
    expect(spec.taskToken).toBe('token');
  });

  it('carries the definition’s SageMaker settings: isolation, VPC, instances, volume', () => {
    const withVpc = parsePipelineDefinition({
      ...JSON.parse(
        readFileSync(join(import.meta.dirname, '../../examples/credit-scoring/pipeline.json'), 'utf8'),
      ),
      trainer: {
        ...JSON.parse(
          readFileSync(join(import.meta.dirname, '../../examples/credit-scoring/pipeline.json'), 'utf8'),
        ).trainer,
        aws: {
          ...def.trainer.aws,
          instanceCount: 2,
          volumeSizeGb: 50,
          vpc: { subnets: ['subnet-0abc'], securityGroups: ['sg-0def'] },
        },
      },
    });
    const spec = trainingSpec(state, withVpc);
    expect(spec).toMatchObject({
      instanceCount: 2,
      volumeSizeGB: 50,
      networkIsolation: true,
      vpc: { subnets: ['subnet-0abc'], securityGroupIds: ['sg-0def'] },
    });
    expect(spec.image).toMatch(/@sha256:[0-9a-f]{64}$/);
  });

  it('runs locally without a code channel: the trainer command runs next to the definition', () => {
    const spec = trainingSpec(state, def);
    expect(Object.keys(spec.channels).sort()).toEqual(['train', 'validation']);
    expect(spec.hyperparameters).not.toHaveProperty('veritrail_command');
    expect(spec.command).toEqual(def.trainer.command);
  });

  it('on AWS adds CheckCode’s bundle as the code channel, pinned and listed with the data digests', () => {
    const bundle = { key: `sha256/${'c'.repeat(64)}`, digest: d('c'), fileName: 'code.tar.gz' };
    const code = { digest: d('9'), files: 1, command: def.trainer.command, bundle };
    const spec = trainingSpec({ ...state, results: { ...state.results, code } }, def);
    expect(spec.channels.code).toEqual(bundle);
    expect(JSON.parse(spec.hyperparameters.veritrail_channel_digests ?? '{}')).toEqual({
      train: d('4'),
      validation: d('5'),
      code: d('c'),
    });
    expect(JSON.parse(spec.hyperparameters.veritrail_command ?? '[]')).toEqual(def.trainer.command);
  });
});
