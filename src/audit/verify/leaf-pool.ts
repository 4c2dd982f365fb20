/**
 * The hashing of whole entry bundles for `audit verify`, on worker threads: per bundle, the 256
 * RFC 9162 §2.1.1 leaf hashes SHA-256(0x00 || entry), the 255 interior nodes of the tile's
 * subtree SHA-256(0x01 || left || right), and the chain check of its entries. The main thread
 * then only folds one hash per 256 entries into the tree, so verification runs at the speed of
 * the workers, not of one thread.
 *
 * `hashTile` is the one implementation, used in place for small logs and sent as source text to
 * the workers (evaluated, so it runs the same from TypeScript sources and the built package): it
 * must use nothing but its arguments and globals.
 *
 * Why not a worker module that imports `hashLeaf` (src/core/merkle.ts) and `chainFields`
 * (src/core/audit-entry.ts): a worker gets no TypeScript loader under vitest or plain `node`
 * (`../core/*.js` does not resolve to the .ts sources there; only `node --import tsx` passes its
 * loader on). src/hash-worker.mjs is a plain-JS module because it needs nothing of src/core; this
 * worker would need both. `hashTile` is held to core by tests instead:
 * test/unit/audit-leaf-pool.test.ts (its leaves are `entryLeafHash`, its tile root `rootOf`), and
 * test/reliability/audit-tamper*.test.ts, where sealed bundles go through `hashTile` and the tail
 * through `chainFields` (FastChainCheck.push) with the same verdicts expected.
 */
import { hash } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';

export interface TileHashes {
  /** 256 leaf hashes. */
  leaves: Uint8Array;
  /** The tile's interior nodes, level 1 (128 hashes) up to level 8 (its root), 255 in all. */
  nodes: Uint8Array;
  /**
   * The first entry whose chain fields are not as the appender writes them (top-level `seq` =
   * its sequence number, top-level `prev` = the hex leaf hash of the entry before, for entries
   * after the first), or -1 when all are.
   */
  firstBad: number;
  /** The 32 bytes the first entry's `prev` spells (to compare with the previous tile), or none. */
  firstPrev: Uint8Array | undefined;
}

/**
 * Hashes and chain-checks one bundle: entry i lies at `bytes[starts[i] + 2, + lens[i])`, its
 * sequence number is `seq0 + i`. Overwrites each entry's low length byte with the leaf prefix
 * 0x00 so that entries are hashed where they lie. Writes the hashes into `into` when given
 * (at least (2n − 1) × 32 bytes). The chain fields are found as
 * `chainFields` (src/core/audit-entry.ts) finds them.
 */
function hashTile(
  sha256: (data: Uint8Array) => string,
  bytes: Uint8Array,
  starts: Uint32Array,
  lens: Uint32Array,
  seq0: number,
  into?: Buffer,
): TileHashes {
  const n = starts.length;
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // Leaves, then the nodes level by level, in one buffer: `into` (shared memory) when given.
  const out = into ?? Buffer.alloc((2 * n - 1) * 32);
  const leaves = out.subarray(0, n * 32);
  // Node's Buffer#latin1Write (not in its typings): one char of a digest string per byte.
  const put = out as unknown as { latin1Write(s: string, offset: number, length: number): number };
  const hex = new Int8Array(256).fill(-1);
  for (let d = 0; d < 16; d++) hex['0123456789abcdef'.charCodeAt(d)] = d;
  const prevKey = Buffer.from('"prev":"', 'latin1');
  const runKey = Buffer.from(',"runId":"', 'latin1');
  const seqKey = Buffer.from(',"seq":', 'latin1');
  let firstBad = -1;
  let firstPrev: Uint8Array | undefined;
  const spelled = new Uint8Array(32);
  for (let i = 0; i < n; i++) {
    const at = starts[i] as number;
    const end = at + 2 + (lens[i] as number);
    if (firstBad < 0) {
      // Chain fields: the first `"prev":"` followed by 64 hex digits and `,"runId":"`, then
      // the runId string, then `,"seq":<digits>,`. Byte loops, not Buffer calls: this runs per entry.
      let ok = buf[at + 2] === 0x7b;
      let key = ok ? buf.indexOf(prevKey, at + 2) : -1;
      for (; key >= 0 && key < end; key = buf.indexOf(prevKey, key + 1)) {
        const r = key + 8 + 64;
        let same = buf[r] === 0x22;
        for (let k = 0; same && k < runKey.length; k++) same = buf[r + 1 + k] === runKey[k];
        if (same) break;
      }
      ok = ok && key >= 0 && key < end;
      const p = key + 8;
      if (ok) {
        let j = p + 65 + runKey.length;
        for (; j < end; j++) {
          const c = buf[j];
          if (c === 0x5c) j += 1;
          else if (c === 0x22) break;
        }
        j += 1;
        for (let k = 0; ok && k < seqKey.length; k++) ok = j + k < end && buf[j + k] === seqKey[k];
        let k = j + seqKey.length;
        const digits = k;
        let seq = 0;
        for (; ok && k < end && k - digits < 16; k++) {
          const d = buf[k] as number;
          if (d < 0x30 || d > 0x39) break;
          seq = seq * 10 + (d - 0x30);
        }
        ok =
          ok &&
          k > digits &&
          !(buf[digits] === 0x30 && k - digits > 1) &&
          buf[k] === 0x2c &&
          seq === seq0 + i;
      }
      for (let b = 0; b < 32 && ok; b++) {
        const hi = hex[buf[p + 2 * b] as number] as number;
        const lo = hex[buf[p + 2 * b + 1] as number] as number;
        if (hi < 0 || lo < 0) ok = false;
        spelled[b] = (hi << 4) | lo;
        if (i > 0 && spelled[b] !== leaves[(i - 1) * 32 + b]) ok = false;
      }
      if (ok && i === 0) firstPrev = spelled.slice();
      if (!ok) firstBad = i;
    }
    buf[at + 1] = 0x00;
    put.latin1Write(sha256(buf.subarray(at + 1, end)), i * 32, 32);
  }
  // The tile's subtree, level by level (RFC 9162 §2.1.1), after the leaves: level L's first
  // node follows level L-1's last.
  const pair = Buffer.alloc(65);
  pair[0] = 0x01;
  let below = 0;
  let level = n * 32;
  for (let width = n / 2; width >= 1; width /= 2) {
    for (let k = 0; k < width; k++) {
      out.copy(pair, 1, below + 2 * k * 32, below + 2 * k * 32 + 64);
      put.latin1Write(sha256(pair), level + k * 32, 32);
    }
    below = level;
    level += width * 32;
  }
  return { leaves, nodes: out.subarray(n * 32), firstBad, firstPrev };
}

/** The hashes of perfect subtrees of leaves [0, w) of a tile, largest first (w < 256). */
export function tilePrefix(t: TileHashes, w: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  let at = 0;
  for (let level = 7; level >= 0; level--) {
    const size = 2 ** level;
    if (at + size > w) continue;
    const index = at / size;
    if (level === 0) out.push(t.leaves.subarray(index * 32, index * 32 + 32));
    else {
      // Level L starts after levels 1..L-1: 128 + 64 + … hashes.
      const offset = 256 - 2 ** (9 - level);
      out.push(t.nodes.subarray((offset + index) * 32, (offset + index) * 32 + 32));
    }
    at += size;
  }
  return out;
}

/** A copy of the tile's root (level 8): the tree keeps it, and the tile's memory is reused. */
export function tileRoot(t: TileHashes): Uint8Array {
  return t.nodes.slice(t.nodes.length - 32);
}

/**
 * SHA-256 as a 'binary' (latin1) string, one char per byte: about four times the calls per second
 * of a Buffer result, whose fresh backing store per 32-byte digest costs more than the hash.
 */
const sha256 = (data: Uint8Array): string => hash('sha256', data, 'binary');

/** `hashTile` on this thread. */
export function hashTileHere(
  bytes: Uint8Array,
  starts: Uint32Array,
  lens: Uint32Array,
  seq0: number,
): TileHashes {
  return hashTile(sha256, bytes, starts, lens, seq0);
}

/*
 * A bundle goes to a worker in a slot of shared memory, not as a transferred buffer: a verify of
 * a million entries would otherwise create and drop ~4,000 buffers of ~75 KiB on each side, and
 * the garbage collections that external memory triggers took a quarter of the main thread.
 * Slot layout: the hashes (256 leaves, 255 nodes, then the 32 bytes the first entry's `prev`
 * spells), the entry offsets and lengths, then the bundle bytes.
 */
const HASHES = 16_384;
const FIRST_PREV = HASHES - 32;
const OFFSETS = HASHES;
const BYTES = OFFSETS + 2 * 256 * 4;
/** Bundles larger than this are hashed on the main thread (entries are ~300 bytes: ~75 KiB). */
const MAX_SLOT_BUNDLE = 4 * 1024 * 1024;

const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { hash } = require('node:crypto');
const __name = (f) => f;
const hashTile = ${hashTile.toString()};
const sha256 = (d) => hash('sha256', d, 'binary');
const slots = [];
parentPort.on('message', ({ id, slot, sab, n, len, seq0 }) => {
  if (sab !== undefined) slots[slot] = sab;
  const m = slots[slot];
  const out = Buffer.from(m, 0, ${HASHES});
  const r = hashTile(
    sha256,
    new Uint8Array(m, ${BYTES}, len),
    new Uint32Array(m, ${OFFSETS}, n),
    new Uint32Array(m, ${OFFSETS} + 1024, n),
    seq0,
    out,
  );
  if (r.firstPrev !== undefined) out.set(r.firstPrev, ${FIRST_PREV});
  parentPort.postMessage({ id, firstBad: r.firstBad, firstPrev: r.firstPrev !== undefined });
});
`;

interface Slot {
  index: number;
  memory: SharedArrayBuffer;
  free: boolean;
  /** Per worker: whether it holds this slot's current memory. */
  sent: boolean[];
}

interface Job {
  slot: Slot;
  n: number;
  resolve: (r: TileHashes) => void;
  reject: (e: unknown) => void;
}

/** Slots: the bundles a verify has read ahead and in flight, with room to spare. */
const SLOTS = 16;

export class LeafPool {
  private readonly workers: Worker[];
  private readonly jobs = new Map<number, Job>();
  private readonly slots: Slot[] = [];
  private readonly bySlotMemory = new Map<ArrayBufferLike, Slot>();
  private nextId = 0;
  private failed: unknown;

  get size(): number {
    return this.workers.length;
  }

  /** One worker per core (at least two): the main thread only reads, checks and folds. */
  constructor(size = Math.max(2, Math.min(4, availableParallelism()))) {
    this.workers = Array.from({ length: size }, () => {
      const w = new Worker(WORKER_SOURCE, { eval: true });
      w.on('message', (m: { id: number; firstBad: number; firstPrev: boolean }) => {
        const job = this.jobs.get(m.id);
        this.jobs.delete(m.id);
        if (job === undefined) return;
        const mem = job.slot.memory;
        job.resolve({
          leaves: new Uint8Array(mem, 0, job.n * 32),
          nodes: new Uint8Array(mem, job.n * 32, (job.n - 1) * 32),
          firstBad: m.firstBad,
          firstPrev: m.firstPrev ? new Uint8Array(mem, FIRST_PREV, 32) : undefined,
        });
      });
      w.on('error', (e) => this.fail(e));
      return w;
    });
  }

  private fail(e: unknown): void {
    this.failed = e;
    for (const j of this.jobs.values()) j.reject(e);
    this.jobs.clear();
  }

  /**
   * A buffer of `size` bytes in a free slot of shared memory to read a bundle into, or undefined
   * (all slots taken, or too large): then the bundle is hashed on the caller's thread.
   */
  take(size: number): Buffer | undefined {
    if (size > MAX_SLOT_BUNDLE) return undefined;
    let slot = this.slots.find((s) => s.free);
    if (slot === undefined) {
      if (this.slots.length >= SLOTS) return undefined;
      slot = { index: this.slots.length, memory: new SharedArrayBuffer(0), free: true, sent: [] };
      this.slots.push(slot);
    }
    if (slot.memory.byteLength < BYTES + size) {
      this.bySlotMemory.delete(slot.memory);
      slot.memory = new SharedArrayBuffer(BYTES + Math.max(size, 128 * 1024));
      slot.sent = [];
      this.bySlotMemory.set(slot.memory, slot);
    }
    slot.free = false;
    return Buffer.from(slot.memory, BYTES, size);
  }

  /** Whether `bytes` came from `take` (and is not yet released). */
  owns(bytes: Uint8Array): boolean {
    return this.bySlotMemory.get(bytes.buffer)?.free === false;
  }

  /** Gives back the slot of a buffer from `take`: its bytes and hashes are then overwritten. */
  release(bytes: Uint8Array): void {
    const slot = this.bySlotMemory.get(bytes.buffer);
    if (slot !== undefined) slot.free = true;
  }

  /**
   * Hashes a bundle read into a buffer from `take` (at most 256 entries) on a worker. The
   * result's arrays live in the slot: valid until `release`, to be copied if kept longer.
   */
  hash(bytes: Buffer, starts: Uint32Array, lens: Uint32Array, seq0: number): Promise<TileHashes> {
    if (this.failed !== undefined) return Promise.reject(this.failed);
    const slot = this.bySlotMemory.get(bytes.buffer);
    const n = starts.length;
    if (slot === undefined || slot.free || n > 256 || n < 1 || bytes.byteOffset !== BYTES) {
      return Promise.reject(new RangeError('LeafPool.hash takes a buffer from take()'));
    }
    new Uint32Array(slot.memory, OFFSETS, n).set(starts);
    new Uint32Array(slot.memory, OFFSETS + 1024, n).set(lens);
    const id = this.nextId++;
    const k = id % this.workers.length;
    const w = this.workers[k] as Worker;
    const sab = slot.sent[k] === true ? undefined : slot.memory;
    slot.sent[k] = true;
    return new Promise((resolve, reject) => {
      this.jobs.set(id, { slot, n, resolve, reject });
      w.postMessage({ id, slot: slot.index, sab, n, len: bytes.length, seq0 });
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
