/**
 * The worker pool that hashes entry bundles for `audit verify`: a bundle read into a slot of
 * shared memory must come back with exactly the hashes `hashTile` computes on this thread (RFC 9162
 * §2.1.1 leaves and subtree), the same chain verdict, and slots must be reusable without
 * corrupting what a caller copied out of them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashTileHere, LeafPool, tilePrefix, tileRoot } from '../../src/audit/verify/leaf-pool.js';
import {
  type AuditEventInput,
  chainFields,
  entryBytes,
  entryLeafHash,
  makeEntry,
  toHex,
  ZERO_HASH_HEX,
} from '../../src/core/audit-entry.js';
import { rootOf } from '../../src/core/merkle.js';
import { encodeEntryBundle } from '../../src/core/tiles.js';
import { event } from '../reliability/helpers.js';

/** Entries 0..count-1 of one chain, and their leaf hashes. */
function chain(count: number): { entries: Uint8Array[]; leaves: Uint8Array[] } {
  const entries: Uint8Array[] = [];
  const leaves: Uint8Array[] = [];
  let prev = ZERO_HASH_HEX;
  const at = new Date('2026-01-01T00:00:00Z');
  for (let s = 0; s < count; s++) {
    const bytes = entryBytes(makeEntry(event(s), s, at, prev));
    const leaf = entryLeafHash(bytes);
    prev = toHex(leaf);
    entries.push(bytes);
    leaves.push(leaf);
  }
  return { entries, leaves };
}

/** Entry offsets and lengths of an encoded bundle (2-byte big-endian length, then the entry). */
function split(bundle: Uint8Array): { starts: Uint32Array; lens: Uint32Array } {
  const starts: number[] = [];
  const lens: number[] = [];
  for (let at = 0; at < bundle.length; ) {
    const len = ((bundle[at] as number) << 8) | (bundle[at + 1] as number);
    starts.push(at);
    lens.push(len);
    at += 2 + len;
  }
  return { starts: Uint32Array.from(starts), lens: Uint32Array.from(lens) };
}

const { entries, leaves } = chain(512);
const bundles = [encodeEntryBundle(entries.slice(0, 256)), encodeEntryBundle(entries.slice(256))];
let pool: LeafPool;

beforeAll(() => {
  pool = new LeafPool(2);
});

afterAll(async () => {
  await pool.close();
});

async function onWorker(bundle: Uint8Array, seq0: number) {
  const buf = pool.take(bundle.length);
  if (buf === undefined) throw new Error('no free slot');
  buf.set(bundle);
  const { starts, lens } = split(bundle);
  return { buf, hashes: await pool.hash(buf, starts, lens, seq0) };
}

describe('when a bundle is hashed on a worker', () => {
  it('gives the leaf hashes, subtree and chain verdict that this thread computes', async () => {
    const { buf, hashes } = await onWorker(bundles[1] as Uint8Array, 256);
    const copy = new Uint8Array(bundles[1] as Uint8Array);
    const { starts, lens } = split(copy);
    const here = hashTileHere(copy, starts, lens, 256);
    expect(Buffer.from(hashes.leaves)).toEqual(Buffer.concat(leaves.slice(256)));
    expect(Buffer.from(hashes.nodes)).toEqual(Buffer.from(here.nodes));
    expect(Buffer.from(tileRoot(hashes))).toEqual(Buffer.from(rootOf(leaves.slice(256))));
    expect(
      Buffer.from(tilePrefix(hashes, 100).reduce((a, b) => Buffer.concat([a, b]), Buffer.alloc(0))),
    ).toEqual(Buffer.from(tilePrefix(here, 100).reduce((a, b) => Buffer.concat([a, b]), Buffer.alloc(0))));
    expect(hashes.firstBad).toBe(-1);
    expect(Buffer.from(hashes.firstPrev ?? [])).toEqual(Buffer.from(leaves[255] as Uint8Array));
    pool.release(buf);
  });
});

describe('when an entry in the bundle names the wrong sequence number', () => {
  it('reports the same first bad entry as this thread', async () => {
    const tampered = encodeEntryBundle(
      entries
        .slice(0, 256)
        .map((e, i) =>
          i === 77
            ? new TextEncoder().encode(Buffer.from(e).toString('utf8').replace('"seq":77,', '"seq":78,'))
            : e,
        ),
    );
    const { buf, hashes } = await onWorker(tampered, 0);
    const copy = new Uint8Array(tampered);
    const { starts, lens } = split(copy);
    expect(hashes.firstBad).toBe(77);
    expect(hashTileHere(copy, starts, lens, 0).firstBad).toBe(77);
    pool.release(buf);
  });
});

describe('when a slot is released and reused', () => {
  it('leaves the copies taken from it intact and hashes the next bundle correctly', async () => {
    const first = await onWorker(bundles[0] as Uint8Array, 0);
    const root = tileRoot(first.hashes);
    pool.release(first.buf);
    for (let k = 0; k < 20; k++) {
      const next = await onWorker(bundles[k % 2] as Uint8Array, (k % 2) * 256);
      expect(Buffer.from(tileRoot(next.hashes))).toEqual(
        Buffer.from(rootOf(leaves.slice((k % 2) * 256, (k % 2) * 256 + 256))),
      );
      pool.release(next.buf);
    }
    expect(Buffer.from(root)).toEqual(Buffer.from(rootOf(leaves.slice(0, 256))));
  });
});

describe('when every slot is taken', () => {
  it('gives no more until one is released, and none for a bundle too large', () => {
    const taken: Buffer[] = [];
    for (let b = pool.take(1000); b !== undefined; b = pool.take(1000)) taken.push(b);
    expect(taken.length).toBeGreaterThan(8);
    expect(taken.every((b) => pool.owns(b))).toBe(true);
    pool.release(taken[3] as Buffer);
    expect(pool.owns(taken[3] as Buffer)).toBe(false);
    expect(pool.take(1000)).toBeDefined();
    for (const b of taken) pool.release(b);
    expect(pool.take(64 * 1024 * 1024)).toBeUndefined();
  });
});

describe('when the buffer did not come from take', () => {
  it('refuses it', async () => {
    const { starts, lens } = split(bundles[0] as Uint8Array);
    await expect(pool.hash(Buffer.from(bundles[0] as Uint8Array), starts, lens, 0)).rejects.toThrow(
      RangeError,
    );
  });
});

/**
 * The chain verdict `FastChainCheck.push` reaches through `chainFields` (src/core/audit-entry.ts):
 * the first entry whose top-level `seq` is not its number or whose top-level `prev` does not spell
 * the leaf hash of the entry before (lowercase hex), and the hex the first entry's `prev` spells.
 */
function coreVerdict(list: readonly Uint8Array[], seq0: number): { firstBad: number; firstPrev?: string } {
  let firstPrev: string | undefined;
  for (let i = 0; i < list.length; i++) {
    const e = list[i] as Uint8Array;
    const f = chainFields(e);
    const spelled = f === undefined ? '' : Buffer.from(e).toString('latin1', f.prevAt, f.prevAt + 64);
    const ok =
      f !== undefined &&
      f.seq === seq0 + i &&
      /^[0-9a-f]{64}$/.test(spelled) &&
      (i === 0 || spelled === toHex(entryLeafHash(list[i - 1] as Uint8Array)));
    if (ok && i === 0) firstPrev = spelled;
    if (!ok) return firstPrev === undefined ? { firstBad: i } : { firstBad: i, firstPrev };
  }
  return firstPrev === undefined ? { firstBad: -1 } : { firstBad: -1, firstPrev };
}

/** Entries seq0.. of a chain of `events` (linked from `prev0`), then `edit` applied to each. */
function chainOf(
  events: readonly AuditEventInput[],
  seq0: number,
  edit: (bytes: Uint8Array, i: number) => Uint8Array = (b) => b,
): Uint8Array[] {
  let prev = 'ab'.repeat(32);
  const at = new Date('2026-01-01T00:00:00Z');
  return events.map((ev, i) => {
    const bytes = entryBytes(makeEntry(ev, seq0 + i, at, prev));
    prev = toHex(entryLeafHash(bytes));
    return edit(bytes, i);
  });
}

const text = (b: Uint8Array): string => Buffer.from(b).toString('utf8');
const bytesOf = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'utf8'));
const plain = (n: number, runId = 'run-1'): AuditEventInput[] =>
  Array.from({ length: n }, (_, i) => event(i, runId));

/** Each case: a chain of entries, the first at seq0, as a tampered or odd log may hold them. */
const edgeCases: { name: string; seq0: number; entries: () => Uint8Array[] }[] = [
  {
    name: 'a `"prev":"…","runId":"` inside the runId string',
    seq0: 0,
    entries: () => chainOf(plain(6, `x","prev":"${'c'.repeat(64)}","runId":"y`), 0),
  },
  {
    name: 'an object in detail that mimics the chain fields',
    seq0: 256,
    entries: () =>
      chainOf(
        plain(6).map((e, i) =>
          i === 3 ? { ...e, detail: { prev: 'd'.repeat(64), runId: 'run-1', seq: 259, step: 'x' } } : e,
        ),
        256,
      ),
  },
  {
    name: 'unicode run ids, an escaped quote and backslash in them',
    seq0: 512,
    entries: () =>
      chainOf(
        plain(6).map((e, i) => ({ ...e, runId: i % 2 === 0 ? 'ラン-é-😀' : 'a\\"b\\\\' })),
        512,
      ),
  },
  {
    name: 'an entry with no seq',
    seq0: 0,
    entries: () => chainOf(plain(6), 0, (b, i) => (i === 2 ? bytesOf(text(b).replace(',"seq":2,', ',')) : b)),
  },
  {
    name: 'a seq with a leading zero',
    seq0: 0,
    entries: () =>
      chainOf(plain(6), 0, (b, i) => (i === 4 ? bytesOf(text(b).replace(',"seq":4,', ',"seq":04,')) : b)),
  },
  {
    name: 'a prev in uppercase hex',
    seq0: 0,
    entries: () =>
      chainOf(plain(6), 0, (b, i) => {
        if (i !== 3) return b;
        const s = text(b);
        const at = s.indexOf('"prev":"') + 8;
        return bytesOf(s.slice(0, at) + s.slice(at, at + 64).toUpperCase() + s.slice(at + 64));
      }),
  },
  {
    // The next entry's 2-byte length starts with 0x2c (','): a scan that reads past the entry's
    // end would take it for the comma after seq.
    name: 'an entry cut right after its seq digits, before an entry of 0x2c00 bytes or more',
    seq0: 0,
    entries: () => {
      const padded = plain(6).map((e, i) => (i === 3 ? { ...e, detail: { pad: '' } } : e));
      const base = entryBytes(makeEntry(padded[3] as AuditEventInput, 3, new Date(), ZERO_HASH_HEX)).length;
      (padded[3] as AuditEventInput).detail = { pad: 'x'.repeat(0x2c10 - base) };
      return chainOf(padded, 0, (b, i) => {
        if (i === 3) expect(b.length >> 8).toBe(0x2c);
        if (i !== 2) return b;
        const s = text(b);
        return bytesOf(s.slice(0, s.indexOf(',"seq":2,') + ',"seq":2'.length));
      });
    },
  },
];

describe('when entries are odd or tampered around their chain fields', () => {
  it.each(edgeCases)('finds the chain fields as chainFields does: $name', async ({ seq0, entries: make }) => {
    const list = make();
    const want = coreVerdict(list, seq0);
    const bundle = encodeEntryBundle(list);
    const copy = new Uint8Array(bundle);
    const { starts, lens } = split(copy);
    const here = hashTileHere(copy, starts, lens, seq0);
    const { buf, hashes } = await onWorker(bundle, seq0);
    for (const got of [here, hashes]) {
      expect(got.firstBad).toBe(want.firstBad);
      expect(got.firstPrev === undefined ? undefined : toHex(got.firstPrev)).toBe(want.firstPrev);
    }
    pool.release(buf);
  });
});
