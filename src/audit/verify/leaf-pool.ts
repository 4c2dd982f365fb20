/**
 * The hashing of whole entry bundles for `audit verify`, on worker threads: per bundle, the 256
 * RFC 9162 §2.1.1 leaf hashes SHA-256(0x00 || entry), the 255 interior nodes of the tile's
 * subtree SHA-256(0x01 || left || right), and the chain check of its entries. The main thread
 * then only folds one hash per 256 entries into the tree, so verification runs at the speed of
 * the workers, not of one thread.
 *
 * `hashTile` (tile-hash.mjs) is the one implementation: called in place for small logs
 * (`hashTileHere`) and imported by the worker module, tile-hash-worker.mjs, which each worker
 * loads by URL. Both are plain JavaScript (types in tile-hash.d.mts) because a worker gets no
 * TypeScript loader under vitest or plain `node` (only `node --import tsx` passes its loader on),
 * as src/hash-worker.mjs; scripts/copy-build-assets.mjs copies them to dist/. So the worker cannot
 * import `hashLeaf` (src/core/merkle.ts) or `chainFields` (src/core/audit-entry.ts), and
 * `hashTile` is held to them by tests instead: test/unit/audit-leaf-pool.test.ts (its leaves are
 * `entryLeafHash`, its tile root `rootOf`, its chain verdict the one `chainFields` gives, edge
 * cases included), and test/reliability/audit-tamper*.test.ts, where sealed bundles go through
 * `hashTile` and the tail through `chainFields` (FastChainCheck.push) with the same verdicts
 * expected.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import {
  hashTile,
  SLOT_BYTES,
  SLOT_FIRST_PREV,
  SLOT_LENGTHS,
  SLOT_OFFSETS,
  type TileHashes,
} from './tile-hash.mjs';

export type { TileHashes };

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

/** `hashTile` on this thread. */
export function hashTileHere(
  bytes: Uint8Array,
  starts: Uint32Array,
  lens: Uint32Array,
  seq0: number,
): TileHashes {
  return hashTile(bytes, starts, lens, seq0);
}

/*
 * A bundle goes to a worker in a slot of shared memory, not as a transferred buffer: a verify of
 * a million entries would otherwise create and drop ~4,000 buffers of ~75 KiB on each side, and
 * the garbage collections that external memory triggers took a quarter of the main thread.
 * The slot layout (hashes, entry offsets and lengths, bundle bytes) is in tile-hash.mjs.
 */
/** Bundles larger than this are hashed on the main thread (entries are ~300 bytes: ~75 KiB). */
const MAX_SLOT_BUNDLE = 4 * 1024 * 1024;

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
      // No execArgv: plain JavaScript needs no loader, and the `--import tsx` a checkout runs with
      // would otherwise be passed on, which more than doubled the pool's start (~100 → ~240 ms).
      const w = new Worker(new URL('./tile-hash-worker.mjs', import.meta.url), { execArgv: [] });
      w.on('message', (m: { id: number; firstBad: number; firstPrev: boolean }) => {
        const job = this.jobs.get(m.id);
        this.jobs.delete(m.id);
        if (job === undefined) return;
        const mem = job.slot.memory;
        job.resolve({
          leaves: new Uint8Array(mem, 0, job.n * 32),
          nodes: new Uint8Array(mem, job.n * 32, (job.n - 1) * 32),
          firstBad: m.firstBad,
          firstPrev: m.firstPrev ? new Uint8Array(mem, SLOT_FIRST_PREV, 32) : undefined,
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
    if (slot.memory.byteLength < SLOT_BYTES + size) {
      this.bySlotMemory.delete(slot.memory);
      slot.memory = new SharedArrayBuffer(SLOT_BYTES + Math.max(size, 128 * 1024));
      slot.sent = [];
      this.bySlotMemory.set(slot.memory, slot);
    }
    slot.free = false;
    return Buffer.from(slot.memory, SLOT_BYTES, size);
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
    if (slot === undefined || slot.free || n > 256 || n < 1 || bytes.byteOffset !== SLOT_BYTES) {
      return Promise.reject(new RangeError('LeafPool.hash takes a buffer from take()'));
    }
    new Uint32Array(slot.memory, SLOT_OFFSETS, n).set(starts);
    new Uint32Array(slot.memory, SLOT_LENGTHS, n).set(lens);
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
