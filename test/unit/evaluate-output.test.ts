import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { trainingOutputKeys } from '../../src/aws/sagemaker-trainer.js';
import { putBytesCas, putJsonCas, readObject } from '../../src/cas.js';
import { digestOf } from '../../src/core/digest.js';
import { isVeritrailError } from '../../src/core/errors.js';
import type { ExecState } from '../../src/core/exec-state.js';
import { parsePipelineDefinition } from '../../src/core/pipeline.js';
import { openFileSigner } from '../../src/local/file-signer.js';
import { FsObjectStore } from '../../src/local/fs-object-store.js';
import type { ScoringJobSpec } from '../../src/ports.js';
import type { Runtime } from '../../src/runtime.js';
import { evaluate } from '../../src/steps/evaluate.js';
import { sign } from '../../src/steps/sign.js';
import { packDeterministic } from '../../src/tarball.js';

const EXAMPLE = join(import.meta.dirname, '../../examples/credit-scoring/pipeline.json');
let dir: string;
let objects: FsObjectStore;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'veritrail-evaluate-'));
  objects = new FsObjectStore(join(dir, 'store'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const enc = (t: string) => new TextEncoder().encode(t);

/** A run that reached Evaluate, its training output where SageMaker writes it (not content-addressed). */
async function runAtEvaluate(): Promise<{ state: ExecState; outputKey: string; tarBytes: Buffer }> {
  const def = parsePipelineDefinition(JSON.parse(readFileSync(EXAMPLE, 'utf8')));
  const stored = await putJsonCas(objects, def);
  const n = 60;
  const header = [...def.dataset.features, def.dataset.label.column].join(',');
  const validation = [header];
  const groups = ['sex,age_group'];
  const predictions = ['row,score,prediction'];
  for (let i = 0; i < n; i++) {
    const label = i % 3 === 0 ? '0' : '1';
    validation.push([...def.dataset.features.map((_, j) => String(i + j)), label].join(','));
    groups.push(`${i % 2 ? 'male' : 'female'},${i % 4 < 2 ? '25_to_60' : 'under_25'}`);
    predictions.push(`${i},0.5,${i % 5 === 0 ? '0' : '1'}`);
  }
  const v = enc(`${validation.join('\n')}\n`);
  const g = enc(`${groups.join('\n')}\n`);
  const f = enc(`${validation.map((l) => l.split(',').slice(0, -1).join(',')).join('\n')}\n`);
  const vs = await putBytesCas(objects, v, digestOf(v));
  const gs = await putBytesCas(objects, g, digestOf(g));
  const fs = await putBytesCas(objects, f, digestOf(f));
  const dataDir = join(dir, 'data');
  mkdirSync(dataDir);
  writeFileSync(join(dataDir, 'predictions.csv'), `${predictions.join('\n')}\n`);
  await packDeterministic(dataDir, join(dir, 'output.tar.gz'));
  const tarBytes = readFileSync(join(dir, 'output.tar.gz'));
  const jobName = 'vt-r-abc';
  const { outputKey, modelKey } = trainingOutputKeys('training/credit-scoring/', jobName);
  await objects.put('artifacts', outputKey, tarBytes);
  const d = (c: string): `sha256:${string}` => `sha256:${c.repeat(64)}`;
  const state: ExecState = {
    runId: 'r-abc',
    pipeline: { name: def.name, digest: stored.digest },
    dataset: { uri: 's3://landing/credit-scoring/a.csv' },
    trigger: { type: 's3', idempotencyKey: 'k' },
    results: {
      preprocess: {
        digest: d('3'),
        manifestKey: `sha256/${'3'.repeat(64)}`,
        train: { key: `sha256/${'4'.repeat(64)}`, digest: d('4'), rows: 10, fileName: 'train.csv' },
        validation: { key: vs.key, digest: vs.digest, rows: n, fileName: 'validation.csv' },
        test: { key: vs.key, digest: vs.digest, rows: n, fileName: 'test.csv' },
        testFeatures: { key: fs.key, digest: fs.digest },
        testGroups: { key: gs.key, digest: gs.digest },
        columns: [],
        transform: { digest: d('7'), codeDigest: d('8') },
      },
      train: {
        jobName,
        model: { key: modelKey, digest: d('9') },
        output: { key: outputKey, digest: digestOf(tarBytes) },
        startedAt: '2026-11-30T00:00:00.000Z',
        endedAt: '2026-11-30T00:10:00.000Z',
      },
    },
  };
  return { state, outputKey, tarBytes };
}

/** A scorer as Batch Transform behaves: predictions under its own output key, not content-addressed. */
const scored: { spec?: ScoringJobSpec } = {};
const trainer = {
  score: async (spec: ScoringJobSpec) => {
    scored.spec = spec;
    const features = new TextDecoder()
      .decode(await readObject(objects, 'artifacts', spec.input.key))
      .trim()
      .split('\n');
    const body = ['prediction', ...features.slice(1).map((_, i) => (i % 4 === 0 ? '0' : '1'))].join('\n');
    const key = `${spec.outputPrefix}${spec.jobName}/features.csv.out`;
    await objects.put('artifacts', key, enc(`${body}\n`));
    return { predictionsKey: key };
  },
};
const runtime = (): Runtime =>
  ({ objects, trainer, now: () => new Date('2026-11-30T01:00:00Z') }) as unknown as Runtime;

describe('Evaluate on the output SageMaker writes', () => {
  it('scores the model through the inference contract on the test features only, and stores the predictions by content', async () => {
    const { state } = await runAtEvaluate();
    const out = await evaluate(runtime(), state);
    expect(out.output.headline.rows).toBe(60);
    expect(typeof out.output.headline.accuracy).toBe('number');
    expect(scored.spec?.input.digest).toBe(
      (state.results?.preprocess as { testFeatures: { digest: string } } | undefined)?.testFeatures.digest,
    );
    expect(scored.spec?.model.digest).toBe(`sha256:${'9'.repeat(64)}`);
    const predictions = out.output.predictions;
    expect(predictions?.key).toBe(`sha256/${predictions?.digest.slice(7)}`);
    // The trainer's own predictions.csv is only a cross-check, recorded with its accuracy.
    expect(out.facts?.selfReported).toMatchObject({ flagged: expect.any(Boolean) });
  });

  it('fails with SCORING_FAILED when the predictions do not cover every test row', async () => {
    const { state } = await runAtEvaluate();
    const short = {
      score: async (spec: ScoringJobSpec) => {
        await objects.put('artifacts', 'out/short.csv', enc('prediction\n1\n'));
        return { predictionsKey: 'out/short.csv', spec };
      },
    };
    const rt = { ...runtime(), trainer: short } as unknown as Runtime;
    const error = await evaluate(rt, state).catch((e: unknown) => e);
    expect(isVeritrailError(error, 'SCORING_FAILED')).toBe(true);
    expect((error as Error).message).toMatch(/1 predictions for 60 rows/);
  });

  describe('when output.tar.gz was changed after the Train step hashed it', () => {
    it('fails with DIGEST_MISMATCH naming the key, and scores nothing', async () => {
      const { state, outputKey, tarBytes } = await runAtEvaluate();
      const other = Buffer.from(tarBytes);
      other.writeUInt8((other.at(-1) ?? 0) ^ 1, other.length - 1);
      // S3 keys are overwritable: a writer of the output prefix replaces the object.
      await objects.put('artifacts', outputKey, other);
      const error = await evaluate(runtime(), state).catch((e: unknown) => e);
      expect(isVeritrailError(error, 'DIGEST_MISMATCH')).toBe(true);
      expect((error as Error).message).toContain(outputKey);
    });
  });
});

describe('the provenance of a model trained on SageMaker', () => {
  it('names the training code (scanned folder digest, shipped as the code channel) and the image separately', async () => {
    const { state } = await runAtEvaluate();
    const rt = {
      ...runtime(),
      mode: 'aws',
      actor: 'arn:aws:states:eu-west-1:111122223333:stateMachine:training-pipeline',
      signer: await openFileSigner(join(dir, 'signing.key')),
      // Sign records its key in the log (key rotation) before signing; nothing else is appended here.
      audit: { append: async () => ({}) },
    } as unknown as Runtime;
    const evaluated = await evaluate(rt, state);
    const code = `sha256:${'c'.repeat(64)}` as const;
    const bundle = `sha256:${'b'.repeat(64)}` as const;
    const def = parsePipelineDefinition(JSON.parse(readFileSync(EXAMPLE, 'utf8')));
    const d = (c: string): `sha256:${string}` => `sha256:${c.repeat(64)}`;
    const signed = await sign(rt, {
      ...state,
      results: {
        ...state.results,
        hash: { digest: d('1'), size: 1, files: 1, manifestKey: 'm', manifestDigest: d('2') },
        code: {
          digest: code,
          files: 1,
          image: def.trainer.aws?.image,
          command: def.trainer.command,
          bundle: { key: `sha256/${'b'.repeat(64)}`, digest: bundle, fileName: 'code.tar.gz' },
        },
        evaluate: evaluated.output,
        gate: { decision: 'allow', reasons: [], policies: [], decisionKey: 'k', decisionDigest: d('e') },
      },
    });
    const stored = JSON.parse(
      new TextDecoder().decode(
        await readObject(objects, 'artifacts', signed.output.bundles.provenance ?? ''),
      ),
    );
    const statement = JSON.parse(Buffer.from(stored.dsseEnvelope.payload, 'base64').toString('utf8'));
    const deps = statement.predicate.buildDefinition.resolvedDependencies as {
      name: string;
      digest: { sha256: string };
      uri?: string;
      annotations?: Record<string, unknown>;
    }[];
    const byName = Object.fromEntries(deps.map((r) => [r.name, r]));
    expect(byName['training-code']).toEqual({
      name: 'training-code',
      digest: { sha256: 'c'.repeat(64) },
      annotations: { delivery: 'sagemaker-input-channel', channel: 'code', bundle },
    });
    expect(byName['training-image']?.uri).toBe(def.trainer.aws?.image);
    expect(byName['training-image']?.digest.sha256).not.toBe('c'.repeat(64));
  });
});
