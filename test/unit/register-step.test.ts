import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { isVeritrailError } from '../../src/core/errors.js';
import type { ExecState } from '../../src/core/exec-state.js';
import { canonicalBytes, canonicalDigest } from '../../src/core/jcs.js';
import { parsePipelineDefinition } from '../../src/core/pipeline.js';
import type { ModelRegistration, ObjectStore } from '../../src/ports.js';
import type { Runtime } from '../../src/runtime.js';
import { register } from '../../src/steps/register.js';

const d = (c: string): `sha256:${string}` => `sha256:${c.repeat(64)}`;
const TRAINING_IMAGE = `111122223333.dkr.ecr.eu-west-1.amazonaws.com/veritrail-node-trainer@sha256:${'a'.repeat(64)}`;
const INFERENCE_IMAGE = `111122223333.dkr.ecr.eu-west-1.amazonaws.com/credit-serve@sha256:${'b'.repeat(64)}`;

function definition(aws: Record<string, unknown>) {
  const raw = JSON.parse(
    readFileSync(join(import.meta.dirname, '../../examples/credit-scoring/pipeline.json'), 'utf8'),
  );
  raw.trainer.aws = { ...raw.trainer.aws, image: TRAINING_IMAGE, ...aws };
  return parsePipelineDefinition(raw);
}

async function registered(aws: Record<string, unknown>): Promise<ModelRegistration> {
  const def = definition(aws);
  const bytes = canonicalBytes(def);
  const objects = {
    open: async () => Readable.from([Buffer.from(bytes)]),
  } as unknown as ObjectStore;
  let entry: ModelRegistration | undefined;
  const rt = {
    objects,
    registry: {
      register: async (e: ModelRegistration) => {
        entry = e;
        return { ref: 'arn:p/1' };
      },
    },
  } as unknown as Runtime;
  const state: ExecState = {
    runId: 'r-1',
    pipeline: { name: def.name, digest: canonicalDigest(def) },
    dataset: { uri: 's3://landing/credit-scoring/a.csv' },
    trigger: { type: 's3', idempotencyKey: 'k' },
    results: {
      hash: { digest: d('1'), size: 1, files: 1, manifestKey: 'm', manifestDigest: d('2') },
      preprocess: {
        digest: d('3'),
        manifestKey: 'm',
        train: { key: 'k', digest: d('4'), rows: 1, fileName: 'train.csv' },
        validation: { key: 'k', digest: d('5'), rows: 1, fileName: 'validation.csv' },
        test: { key: 'k', digest: d('6'), rows: 5, fileName: 'test.csv' },
        testFeatures: { key: 'k', digest: d('6') },
        testGroups: { key: 'k', digest: d('6') },
        columns: [],
        transform: { digest: d('7'), codeDigest: d('8') },
      },
      train: {
        jobName: 'vt-r-1',
        model: { key: 'training/credit-scoring/vt-r-1/output/model.tar.gz', digest: d('9') },
        output: { key: 'training/credit-scoring/vt-r-1/output/output.tar.gz', digest: d('a') },
        startedAt: 't',
        endedAt: 't',
      },
      gate: { decision: 'allow', reasons: [], policies: [], decisionKey: 'k', decisionDigest: d('c') },
      sign: { bundles: { provenance: `sha256/${'d'.repeat(64)}` } },
    },
  };
  await register(rt, state);
  if (!entry) throw new Error('nothing registered');
  return entry;
}

describe('Register names the container that serves the model', () => {
  it('records trainer.aws.inferenceImage, never the training image', async () => {
    const entry = await registered({ inferenceImage: INFERENCE_IMAGE });
    expect(entry.image).toBe(INFERENCE_IMAGE);
    expect(entry.approval).toBe('Approved');
  });

  it('records the model only when no inference image is declared', async () => {
    const entry = await registered({});
    expect(entry).not.toHaveProperty('image');
  });

  it('refuses an inference image that is not pinned by digest', () => {
    let error: unknown;
    try {
      definition({ inferenceImage: '111122223333.dkr.ecr.eu-west-1.amazonaws.com/credit-serve:latest' });
    } catch (e) {
      error = e;
    }
    expect(isVeritrailError(error, 'PIPELINE_INVALID')).toBe(true);
    expect((error as Error).message).toContain('trainer.aws.inferenceImage');
  });
});
