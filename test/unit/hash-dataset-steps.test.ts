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
import type { BatchInput, BatchResult } from '../../src/steps/hashing.js';
import { listDataset } from '../../src/steps/list-dataset.js';
import { LISTING_PREFIX as GRANTED_LISTING_PREFIX } from '../../stacks/access.js';
import { type Child, exportMapRun, type MapRunExport } from '../helpers/map-results.js';

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
  const inputs: BatchInput[] = [];
  for (let i = 0; i < items.length; i += perBatch) {
    const input = { BatchInput: { runId: state.runId }, Items: items.slice(i, i + perBatch) };
    inputs.push(input);
    batches.push(await hashListedBatch({ objects, datasets }, input));
  }
  return { listing: listed.listing, batches, inputs };
}

const fold = (hash: unknown) => hashDataset({ objects }, { ...state, results: { hash } });

const exportRun = (children: readonly Child[], perFile?: number, edit?: (e: MapRunExport) => void) =>
  exportMapRun(objects, state.runId, children, perFile, edit);

/** The children of a hashing run: each batch's input with its output. */
const childrenOf = (r: { inputs: BatchInput[]; batches: BatchResult[] }): Child[] =>
  r.inputs.map((input, i) => ({ input, output: r.batches[i] }));

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
    for (const perBatch of [1, 4, 10, 23, 100]) {
      const r = await runHashing(perBatch);
      // Result files keep no order on AWS: the children come back reversed, three to a file.
      const batches = await exportRun(childrenOf(r).reverse(), 3);
      outcomes.push(await fold({ listing: r.listing, batches }));
    }
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
    const r = await runHashing(5);
    const refused = (code: 'DATASET_MISSING' | 'PATH_REJECTED', files: number): BatchResult => ({
      error: { code, message: code },
      files,
    });
    const [c0, c1, c2, c3, c4] = childrenOf(r);
    if (!c0 || !c1 || !c2 || !c3 || !c4) throw new Error('too few batches');
    const children = [
      c0,
      { ...c1, output: refused('PATH_REJECTED', 5) },
      { ...c2, output: refused('DATASET_MISSING', 5) },
      { ...c3, output: c0.output },
      c4,
    ];
    // Written last first, as if the later refusal had finished first.
    await expect(
      fold({ listing: r.listing, batches: await exportRun(children.reverse()) }),
    ).rejects.toMatchObject({ code: 'PATH_REJECTED', message: 'PATH_REJECTED' });
  });

  it('refuses batches that lose, repeat or reorder a listed file', async () => {
    const r = await runHashing(5);
    const { listing } = r;
    const [c0, c1, c2, c3, c4] = childrenOf(r);
    if (!c0 || !c1 || !c2 || !c3 || !c4) throw new Error('too few batches');
    for (const wrong of [
      [c0, c1, c2, c3],
      [c0, c1, c2, c3, c4, c4],
      // Each child's input with the other's output.
      [{ ...c0, output: c1.output }, { ...c1, output: c0.output }, c2, c3, c4],
    ]) {
      await expect(fold({ listing, batches: await exportRun(wrong) })).rejects.toMatchObject({
        code: 'PROVENANCE_BROKEN',
      });
    }
    // A batch result whose digests belong to other files (stored honestly, under its own address).
    const b0 = c0.output as BatchResult;
    const forged = JSON.parse(
      new TextDecoder().decode(await readObject(objects, 'artifacts', 'key' in b0 ? b0.key : '')),
    ) as { path: string }[];
    const swapped = await putJsonCas(objects, [forged[1], forged[0], ...forged.slice(2)]);
    await expect(
      fold({
        listing,
        batches: await exportRun([{ ...c0, output: { key: swapped.key, files: 5 } }, c1, c2, c3, c4]),
      }),
    ).rejects.toMatchObject({ code: 'PROVENANCE_BROKEN' });
  });

  it('refuses a stored listing or batch whose bytes no longer match their address', async () => {
    const r = await runHashing(5);
    const { listing } = r;
    const batches = await exportRun(childrenOf(r));
    const tamper = (key: string) => {
      const file = join(dir, 'objects', 'artifacts', key);
      chmodSync(file, 0o644);
      writeFileSync(file, '[]');
    };
    const [b0] = r.batches;
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

  describe('when the Map Run’s exported results are missing or malformed', () => {
    /** The fold over an export `edit` spoiled: PROVENANCE_BROKEN, one line naming the problem. */
    async function brokenBy(
      edit: (e: MapRunExport) => void,
      names: string,
      run?: Awaited<ReturnType<typeof runHashing>>,
    ) {
      const r = run ?? (await runHashing(5));
      const error = await fold({ listing: r.listing, batches: await exportRun(childrenOf(r), 2, edit) }).then(
        () => undefined,
        (e: unknown) => e as VeritrailError,
      );
      expect(error).toMatchObject({ code: 'PROVENANCE_BROKEN', message: expect.stringContaining(names) });
      expect(error?.message).not.toContain('\n');
    }

    it('fails when a result file the manifest lists is missing', async () => {
      await brokenBy((e) => e.files.splice(1, 1), 'SUCCEEDED_1.json is missing');
    });

    it('fails when a result file is not JSON, or not the size the manifest says', async () => {
      await brokenBy((e) => {
        const f = e.files[0] as MapRunExport['files'][number];
        f.text = `${f.text.slice(0, 40)}`;
        (e.manifest.ResultFiles.SUCCEEDED?.[0] as { Size: number }).Size = 40;
      }, 'SUCCEEDED_0.json is not JSON');
      await brokenBy((e) => {
        const f = e.files[0] as MapRunExport['files'][number];
        f.text = `${f.text} `;
      }, 'the manifest says');
    });

    it('fails when the manifest is of another Map Run, or lists a failed child', async () => {
      await brokenBy((e) => {
        e.manifest.MapRunArn = `${e.manifest.MapRunArn}x`;
      }, 'not of this Map Run');
      await brokenBy((e) => {
        e.manifest.ResultFiles.FAILED = [{ Key: 'FAILED_0.json', Size: 2 }];
      }, '1 failed or pending result files');
    });

    it('fails when a child ran for another run, or its input is not the listing', async () => {
      const r = await runHashing(5);
      const other = (e: MapRunExport, input: (i: BatchInput) => BatchInput) => {
        const f = e.files[0] as MapRunExport['files'][number];
        const entries = JSON.parse(f.text) as { Input: string }[];
        const first = entries[0] as { Input: string };
        first.Input = JSON.stringify(input(JSON.parse(first.Input) as BatchInput));
        f.text = JSON.stringify(entries);
        (e.manifest.ResultFiles.SUCCEEDED?.[0] as { Size: number }).Size = Buffer.byteLength(f.text);
      };
      await brokenBy(
        (e) => other(e, (i) => ({ ...i, BatchInput: { runId: 'r-other' } })),
        'not a batch of run',
        r,
      );
      await brokenBy(
        (e) => other(e, (i) => ({ ...i, Items: i.Items.map((f) => ({ ...f, size: f.size + 1 })) })),
        'not a run of files of the pinned listing',
        r,
      );
    });

    it('fails when the manifest itself is missing', async () => {
      const r = await runHashing(5);
      const batches = {
        MapRunArn: 'arn:aws:states:eu-west-1:111122223333:mapRun:training-pipeline/HashBatches:x',
        ResultWriterDetails: { Bucket: 'artifacts', Key: `map-results/${state.runId}/x/manifest.json` },
      };
      await expect(fold({ listing: r.listing, batches })).rejects.toMatchObject({
        code: 'PROVENANCE_BROKEN',
        message: expect.stringContaining('manifest.json is missing'),
      });
      const elsewhere = {
        ...batches,
        ResultWriterDetails: { Bucket: 'artifacts', Key: 'listings/manifest.json' },
      };
      await expect(fold({ listing: r.listing, batches: elsewhere })).rejects.toMatchObject({
        code: 'PROVENANCE_BROKEN',
        message: expect.stringContaining(`under map-results/${state.runId}/`),
      });
    });
  });

  it('is an INTERNAL error when results.hash is not the states’ output (a definition bug)', async () => {
    await expect(fold({ digest: 'sha256:x' })).rejects.toMatchObject({ code: 'INTERNAL' });
  });
});
