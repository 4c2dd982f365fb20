/**
 * Local scoring of sharded features (src/local/scoring.ts): the predict command runs once per shard,
 * in order, each shard verified against its digest as it is copied; each shard's predictions are
 * stored content-addressed and returned in the shards' order.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { putBytesCas, putFileCas, readObject } from '../../src/cas.js';
import { casKey, digestOf } from '../../src/core/digest.js';
import { isVeritrailError } from '../../src/core/errors.js';
import { FsObjectStore } from '../../src/local/fs-object-store.js';
import type { Isolation } from '../../src/local/sandbox.js';
import { scoreInSandbox } from '../../src/local/scoring.js';
import type { ScoringJobSpec } from '../../src/ports.js';
import { packExampleModel } from '../helpers/model-tar.js';

const EXAMPLE = join(import.meta.dirname, '../../examples/credit-scoring');
const NONE: Isolation = { level: 'none', network: true, ownProcNamespace: false, stateDirVisible: true };

describe('local scoring of feature shards', () => {
  let dir: string;
  let objects: FsObjectStore;
  let spec: ScoringJobSpec;
  const shardTexts = ['a,b\n2,1\n0,3\n', 'a,b\n5,0\n', 'a,b\n0,9\n1,1\n3,2\n'];

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'veritrail-shards-'));
    objects = new FsObjectStore(join(dir, 'objects'));
    const model = await putFileCas(objects, await packExampleModel(dir));
    const whole = new TextEncoder().encode('a,b\n2,1\n0,3\n5,0\n0,9\n1,1\n3,2\n');
    const input = await putBytesCas(objects, whole, digestOf(whole));
    const shards = [];
    for (const text of shardTexts) {
      const bytes = new TextEncoder().encode(text);
      const stored = await putBytesCas(objects, bytes, digestOf(bytes));
      shards.push({ ...stored, rows: text.trim().split('\n').length - 1 });
    }
    spec = {
      jobName: 'vts-r-1',
      runId: 'r-1',
      pipeline: 'credit-scoring',
      model: { key: model.key, digest: model.digest },
      input,
      shards,
      command: ['node', 'trainer/predict.mjs'],
      workingDir: EXAMPLE,
      codeDir: join(EXAMPLE, 'trainer'),
      outputPrefix: 'scoring/credit-scoring/',
      maxRuntimeSeconds: 60,
    };
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const predictionsOf = async (key: string) =>
    new TextDecoder()
      .decode(await readObject(objects, 'artifacts', key))
      .trim()
      .split('\n')
      .map((l) => l.split(',')[1]);

  it('runs the predict command once per shard and returns each shard’s predictions in order', async () => {
    const r = await scoreInSandbox(spec, objects, NONE, new Set());
    expect(r.shardPredictionKeys).toHaveLength(3);
    expect(r.predictionsKey).toBe(r.shardPredictionKeys?.[0]);
    const per = await Promise.all((r.shardPredictionKeys ?? []).map(predictionsOf));
    expect(per).toEqual([
      ['prediction', '1', '0'],
      ['prediction', '1'],
      ['prediction', '0', '1', '1'],
    ]);
    // Content-addressed: each key is the digest of its bytes.
    for (const key of r.shardPredictionKeys ?? []) {
      expect(casKey(digestOf(await readObject(objects, 'artifacts', key)))).toBe(key);
    }
  });

  it('without shards scores the whole input once, as before', async () => {
    const { shards: _, ...whole } = spec;
    const r = await scoreInSandbox(whole, objects, NONE, new Set());
    expect(r.shardPredictionKeys).toBeUndefined();
    expect(await predictionsOf(r.predictionsKey)).toEqual(['prediction', '1', '0', '1', '0', '1', '1']);
  });

  it('refuses a shard whose bytes do not match its digest, naming the shard', async () => {
    const shards = spec.shards ?? [];
    const other = shards[0]?.digest as ScoringJobSpec['input']['digest'];
    const tampered = {
      ...spec,
      shards: [shards[0], { ...shards[1], digest: other }, shards[2]],
    } as ScoringJobSpec;
    const e = await scoreInSandbox(tampered, objects, NONE, new Set()).catch((x: unknown) => x);
    expect(isVeritrailError(e, 'DIGEST_MISMATCH')).toBe(true);
    expect((e as Error).message).toMatch(/shard 2 of 3/);
  });

  it('refuses an empty list of shards', async () => {
    const e = await scoreInSandbox({ ...spec, shards: [] }, objects, NONE, new Set()).catch(
      (x: unknown) => x,
    );
    expect(isVeritrailError(e, 'SCORING_FAILED')).toBe(true);
  });

  it('names the shard whose predict run failed', async () => {
    const bad = new TextEncoder().encode('x,y\n1,2\n');
    const stored = await putBytesCas(objects, bad, digestOf(bad));
    const shards = [...(spec.shards ?? []), { ...stored, rows: 1 }];
    const e = await scoreInSandbox({ ...spec, shards }, objects, NONE, new Set()).catch((x: unknown) => x);
    expect(isVeritrailError(e, 'SCORING_FAILED')).toBe(true);
    expect((e as Error).message).toMatch(/shard 4 of 4/);
  });
});
