/**
 * The dataset digest does not depend on how the listing is split into batches (issue 15: a
 * Distributed Map's children each hash a batch, and the batches fold into the same RFC 8785
 * manifest and digest as one Lambda hashing everything).
 */
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { DatasetFile } from '../../src/ports.js';
import { foldBatches, hashBatch } from '../../src/steps/hash-dataset.js';

/** A dataset port over in-memory files: `hash` gives the SHA-256 and size of the bytes. */
function memoryDatasets(contents: Map<string, Uint8Array>) {
  return {
    datasets: {
      hash: async (f: DatasetFile) => {
        const bytes = contents.get(f.path) ?? new Uint8Array();
        return { hex: createHash('sha256').update(bytes).digest('hex'), size: bytes.length };
      },
    },
  } as never;
}

const dataset = fc
  .uniqueArray(
    fc.record({
      path: fc.stringMatching(/^[a-z]{1,6}(\/[a-z]{1,6}){0,2}\.csv$/),
      bytes: fc.uint8Array({ minLength: 0, maxLength: 64 }),
    }),
    { minLength: 1, maxLength: 40, selector: (f) => f.path },
  )
  // A path that is also a directory of another is refused by the manifest, split or not.
  .filter((files) => !files.some((a) => files.some((b) => b.path.startsWith(`${a.path}/`))));

/** Cuts a list into contiguous batches at the given (sorted, deduplicated) positions. */
function cut<T>(items: readonly T[], positions: number[]): T[][] {
  const at = [...new Set(positions.map((p) => p % (items.length + 1)))].sort((a, b) => a - b);
  const out: T[][] = [];
  let from = 0;
  for (const p of [...at, items.length]) {
    out.push(items.slice(from, p));
    from = p;
  }
  return out;
}

describe('folding hashed batches', () => {
  it('gives the same pinned list, manifest and dataset digest for every split of the listing', async () => {
    await fc.assert(
      fc.asyncProperty(dataset, fc.array(fc.nat(), { maxLength: 10 }), async (files, positions) => {
        const contents = new Map(files.map((f) => [f.path, f.bytes]));
        const rt = memoryDatasets(contents);
        const listing: DatasetFile[] = files.map((f) => ({
          uri: `mem:///${f.path}`,
          path: f.path,
          size: f.bytes.length,
        }));
        const whole = foldBatches([await hashBatch(rt, listing)]);
        const batches = await Promise.all(cut(listing, positions).map((b) => hashBatch(rt, b, 2)));
        const split = foldBatches(batches);
        expect(split.digest).toBe(whole.digest);
        expect(split.manifestDigest).toBe(whole.manifestDigest);
        expect(split.pinned).toEqual(whole.pinned);
        expect(split.totalSize).toBe(whole.totalSize);
      }),
      { numRuns: 200 },
    );
  });

  it('gives the same manifest digest whatever order the batches come back in', async () => {
    await fc.assert(
      fc.asyncProperty(dataset, fc.array(fc.nat(), { maxLength: 10 }), async (files, positions) => {
        const rt = memoryDatasets(new Map(files.map((f) => [f.path, f.bytes])));
        const listing = files.map((f) => ({ uri: `mem:///${f.path}`, path: f.path, size: f.bytes.length }));
        const batches = await Promise.all(cut(listing, positions).map((b) => hashBatch(rt, b)));
        expect(foldBatches([...batches].reverse()).manifestDigest).toBe(foldBatches(batches).manifestDigest);
      }),
      { numRuns: 100 },
    );
  });

  it('changes the digest when one byte of one file changes (the fold is not blind)', async () => {
    const a = new Map([
      ['a.csv', new Uint8Array([1, 2])],
      ['b.csv', new Uint8Array([3])],
    ]);
    const b = new Map([...a, ['b.csv', new Uint8Array([4])]]);
    const listing = [...a].map(([path, bytes]) => ({ uri: `mem:///${path}`, path, size: bytes.length }));
    const da = foldBatches([await hashBatch(memoryDatasets(a), listing)]).digest;
    const db = foldBatches([await hashBatch(memoryDatasets(b), listing)]).digest;
    expect(da).not.toBe(db);
  });
});
