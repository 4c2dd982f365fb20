/**
 * HashDataset as three states (src/steps/hashing.ts): ListDataset pins the listing, each HashBatch
 * child hashes a batch of it, HashDataset folds the batches. On the real embedded adapters (a folder
 * dataset, the file object store): the fold gives exactly what one pass over the whole listing gives,
 * refusals reach the fold as data, and batches that do not cover the listing are caught.
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { putJsonCas, readObject } from '../../src/cas.js';
import { digestOf } from '../../src/core/digest.js';
import { VeritrailError } from '../../src/core/errors.js';
import type { ExecState } from '../../src/core/exec-state.js';
import { LISTING_PREFIX } from '../../src/core/layout.js';
import { FsDatasetSource } from '../../src/local/fs-dataset-source.js';
import { FsObjectStore } from '../../src/local/fs-object-store.js';
import type { DatasetFile, DatasetSource } from '../../src/ports.js';
import { hashListedBatch } from '../../src/steps/hash-batch.js';
import { foldBatches, hashBatch, hashDataset } from '../../src/steps/hash-dataset.js';
import type { BatchResult } from '../../src/steps/hashing.js';
import { listDataset } from '../../src/steps/list-dataset.js';
import { LISTING_PREFIX as GRANTED_LISTING_PREFIX } from '../../stacks/access.js';

let dir: string;
let objects: FsObjectStore;
let datasets: FsDatasetSource;
let state: ExecState;

/** The dataset folder: `n` CSV files under two subfolders, of different sizes. */
function makeDataset(n: number): string {
  const root = join(dir, 'data');
  for (let i = 0; i < n; i++) {
    const sub = join(root, i % 2 === 0 ? 'even' : 'odd');
    mkdirSync(sub, { recursive: true });
    writeFileSync(join(sub, `part-${String(i).padStart(3, '0')}.csv`), `a,b\n${i},${'x'.repeat(i)}\n`);
  }
  return root;
}

const stateFor = (root: string): ExecState => ({
  runId: 'r-hash-steps',
  pipeline: { name: 'credit-scoring', digest: `sha256:${'a'.repeat(64)}` },
  dataset: { uri: pathToFileURL(root).href },
  trigger: { type: 'landing', idempotencyKey: 'k' },
});

/** The three states, as the Map would run them with `perBatch` items per child. */
async function runHashing(perBatch: number) {
  const listed = await listDataset({ objects, datasets }, state);
  if (!('listing' in listed)) throw new Error(`refused: ${listed.error.message}`);
  const items = JSON.parse(
    new TextDecoder().decode(await readObject(objects, 'artifacts', listed.listing.key)),
  ) as DatasetFile[];
  const batches: BatchResult[] = [];
  for (let i = 0; i < items.length; i += perBatch) {
    batches.push(
      await hashListedBatch(
        { objects, datasets },
        { BatchInput: { runId: state.runId }, Items: items.slice(i, i + perBatch) },
      ),
    );
  }
  return { listing: listed.listing, batches };
}

const fold = (hash: unknown) => hashDataset({ objects }, { ...state, results: { hash } });

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'vt-hash-steps-'));
  objects = new FsObjectStore(join(dir, 'objects'));
  datasets = new FsDatasetSource();
  state = stateFor(makeDataset(23));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('ListDataset', () => {
  it('stores the pinned listing as RFC 8785 JSON under listings/<sha256>.json, the prefix the state machine may read', async () => {
    const listed = await listDataset({ objects, datasets }, state);
    if (!('listing' in listed)) throw new Error('refused');
    expect(LISTING_PREFIX).toBe(GRANTED_LISTING_PREFIX);
    const bytes = await readObject(objects, 'artifacts', listed.listing.key);
    expect(listed.listing.key).toBe(`listings/${listed.listing.digest.slice('sha256:'.length)}.json`);
    expect(digestOf(bytes)).toBe(listed.listing.digest);
    const files = JSON.parse(new TextDecoder().decode(bytes)) as DatasetFile[];
    expect(files).toEqual(await datasets.list(state.dataset.uri));
    expect(listed.listing.files).toBe(23);
  });

  it('returns a refusal as its result, for the fold to fail the step with', async () => {
    const missing = { ...state, dataset: { uri: pathToFileURL(join(dir, 'nope')).href } };
    const listed = await listDataset({ objects, datasets }, missing);
    expect(listed).toEqual({ error: { code: 'DATASET_MISSING', message: expect.stringContaining('nope') } });
    await expect(fold(listed)).rejects.toMatchObject({ code: 'DATASET_MISSING' });
  });

  it('throws a transient error, for the ASL to retry', async () => {
    const flaky: DatasetSource = {
      open: (f) => datasets.open(f),
      list: async () => {
        throw new VeritrailError('TRANSIENT', 'SlowDown');
      },
    };
    await expect(listDataset({ objects, datasets: flaky }, state)).rejects.toMatchObject({
      code: 'TRANSIENT',
    });
  });
});

describe('HashBatch', () => {
  it('refuses an input that is not a batch of listed files', async () => {
    await expect(hashListedBatch({ objects, datasets }, { Items: [] })).rejects.toMatchObject({
      code: 'EVENT_INVALID',
    });
    await expect(
      hashListedBatch(
        { objects, datasets },
        { BatchInput: { runId: 'r' }, Items: [{ uri: 'file:///x', path: 'x', size: 1, extra: 1 }] },
      ),
    ).rejects.toMatchObject({ code: 'EVENT_INVALID' });
  });

  it('returns a file that changed size since it was listed as a refusal, with its batch size', async () => {
    const { listing } = await runHashing(100);
    const items = JSON.parse(
      new TextDecoder().decode(await readObject(objects, 'artifacts', listing.key)),
    ) as DatasetFile[];
    const [first] = items;
    if (!first) throw new Error('empty listing');
    writeFileSync(new URL(first.uri), 'grown since it was listed');
    const result = await hashListedBatch({ objects, datasets }, { BatchInput: { runId: 'r' }, Items: items });
    expect(result).toEqual({ error: { code: 'DATASET_UNREADABLE', message: expect.any(String) }, files: 23 });
  });
});

describe('HashDataset, the fold', () => {
  it('records what one pass over the whole listing gives, however the listing was cut', async () => {
    const whole = foldBatches([await hashBatch({ datasets }, await datasets.list(state.dataset.uri))]);
    const outcomes = [];
    for (const perBatch of [1, 4, 10, 23, 100]) outcomes.push(await fold(await runHashing(perBatch)));
    for (const o of outcomes) {
      expect(o.output.digest).toBe(whole.digest);
      expect(o.output.manifestDigest).toBe(whole.manifestDigest);
      expect(o.output.files).toBe(23);
      expect(o.output.size).toBe(whole.totalSize);
      expect(o.digests).toEqual({ raw: whole.digest, rawManifest: whole.manifestDigest });
      expect(o.detail).toEqual({ files: 23, size: whole.totalSize });
      // The same manifest and pinned list, content-addressed: the very objects one pass stores.
      expect(o).toEqual(outcomes[0]);
    }
    const pins = await readObject(objects, 'artifacts', outcomes[0]?.output.pinsKey ?? '');
    expect(JSON.parse(new TextDecoder().decode(pins))).toEqual(whole.pinned);
  });

  it('fails the step with the first refusal in listing order, whichever child finished first', async () => {
    const { listing, batches } = await runHashing(5);
    const refused = (code: 'DATASET_MISSING' | 'PATH_REJECTED', files: number): BatchResult => ({
      error: { code, message: code },
      files,
    });
    const [b0, , , , b4] = batches;
    if (!b0 || !b4) throw new Error('too few batches');
    await expect(
      fold({ listing, batches: [b0, refused('PATH_REJECTED', 5), refused('DATASET_MISSING', 5), b0, b4] }),
    ).rejects.toMatchObject({ code: 'PATH_REJECTED', message: 'PATH_REJECTED' });
  });

  it('refuses batches that lose, repeat or reorder a listed file', async () => {
    const { listing, batches } = await runHashing(5);
    const [b0, b1, b2, b3, b4] = batches;
    if (!b0 || !b1 || !b2 || !b3 || !b4) throw new Error('too few batches');
    for (const wrong of [
      [b0, b1, b2, b3],
      [b0, b1, b2, b3, b4, b4],
      [b1, b0, b2, b3, b4],
    ]) {
      await expect(fold({ listing, batches: wrong })).rejects.toMatchObject({ code: 'PROVENANCE_BROKEN' });
    }
    // A batch result whose digests belong to other files (stored honestly, under its own address).
    const forged = JSON.parse(
      new TextDecoder().decode(await readObject(objects, 'artifacts', 'key' in b0 ? b0.key : '')),
    ) as { path: string }[];
    const swapped = await putJsonCas(objects, [forged[1], forged[0], ...forged.slice(2)]);
    await expect(
      fold({ listing, batches: [{ key: swapped.key, files: 5 }, b1, b2, b3, b4] }),
    ).rejects.toMatchObject({ code: 'PROVENANCE_BROKEN' });
  });

  it('refuses a stored listing or batch whose bytes no longer match their address', async () => {
    const { listing, batches } = await runHashing(5);
    const tamper = (key: string) => {
      const file = join(dir, 'objects', 'artifacts', key);
      chmodSync(file, 0o644);
      writeFileSync(file, '[]');
    };
    const [b0] = batches;
    if (!b0 || !('key' in b0)) throw new Error('no batch');
    tamper(b0.key);
    await expect(fold({ listing, batches })).rejects.toMatchObject({
      code: 'DIGEST_MISMATCH',
      message: expect.stringContaining(`hashed batch ${b0.key}`),
    });
    // The listing is read back and checked first.
    tamper(listing.key);
    await expect(fold({ listing, batches })).rejects.toMatchObject({
      code: 'DIGEST_MISMATCH',
      message: expect.stringContaining(`dataset listing ${listing.key}`),
    });
  });

  it('is an INTERNAL error when results.hash is not the states’ output (a definition bug)', async () => {
    await expect(fold({ digest: 'sha256:x' })).rejects.toMatchObject({ code: 'INTERNAL' });
  });
});
