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
 * 0x00 so that entries are hashed where they lie. The chain fields are found as
 * `chainFields` (src/core/audit-entry.ts) finds them.
 */
export function hashTile(
  sha256: (data: Uint8Array) => Uint8Array,
  bytes: Uint8Array,
  starts: Uint32Array,
  lens: Uint32Array,
  seq0: number,
): TileHashes {
  const n = starts.length;
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const leaves = new Uint8Array(n * 32);
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
    leaves.set(sha256(buf.subarray(at + 1, end)), i * 32);
  }
  // The tile's subtree, level by level (RFC 9162 §2.1.1), into one buffer.
  const nodes = new Uint8Array((n - 1) * 32);
  const pair = new Uint8Array(65);
  pair[0] = 0x01;
  let below = leaves;
  let out = 0;
  for (let width = n / 2; width >= 1; width /= 2) {
    const level = nodes.subarray(out * 32, (out + width) * 32);
    for (let k = 0; k < width; k++) {
      pair.set(below.subarray(2 * k * 32, 2 * k * 32 + 64), 1);
      level.set(sha256(pair), k * 32);
    }
    below = level;
    out += width;
  }
  return { leaves, nodes, firstBad, firstPrev };
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

/** The tile's root (level 8). */
export function tileRoot(t: TileHashes): Uint8Array {
  return t.nodes.subarray(t.nodes.length - 32);
}

const sha256 = (data: Uint8Array): Uint8Array => hash('sha256', data, 'buffer');

/** `hashTile` on this thread. */
export function hashTileHere(
  bytes: Uint8Array,
  starts: Uint32Array,
  lens: Uint32Array,
  seq0: number,
): TileHashes {
  return hashTile(sha256, bytes, starts, lens, seq0);
}

const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { hash } = require('node:crypto');
const __name = (f) => f;
const hashTile = ${hashTile.toString()};
const sha256 = (d) => hash('sha256', d, 'buffer');
parentPort.on('message', ({ id, bytes, starts, lens, seq0 }) => {
  const r = hashTile(sha256, new Uint8Array(bytes), starts, lens, seq0);
  parentPort.postMessage({ id, bytes, r }, [bytes, r.leaves.buffer, r.nodes.buffer]);
});
`;

export interface HashedBundle {
  /** The bundle, moved back (its length bytes are overwritten: keep the lengths elsewhere). */
  bytes: Buffer;
  hashes: TileHashes;
}

interface Job {
  resolve: (r: HashedBundle) => void;
  reject: (e: unknown) => void;
}

export class LeafPool {
  private readonly workers: Worker[];
  private readonly jobs = new Map<number, Job>();
  private nextId = 0;
  private failed: unknown;

  get size(): number {
    return this.workers.length;
  }

  /** One worker per core (at least two): the main thread only reads, checks and folds. */
  constructor(size = Math.max(2, Math.min(4, availableParallelism()))) {
    this.workers = Array.from({ length: size }, () => {
      const w = new Worker(WORKER_SOURCE, { eval: true });
      w.on('message', (m: { id: number; bytes: ArrayBuffer; r: TileHashes }) => {
        const job = this.jobs.get(m.id);
        this.jobs.delete(m.id);
        job?.resolve({ bytes: Buffer.from(m.bytes), hashes: m.r });
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
   * Hashes a bundle on a worker. `bytes` must own its whole ArrayBuffer, which is detached here
   * and comes back in the result.
   */
  hash(bytes: Buffer, starts: Uint32Array, lens: Uint32Array, seq0: number): Promise<HashedBundle> {
    if (this.failed !== undefined) return Promise.reject(this.failed);
    const id = this.nextId++;
    const w = this.workers[id % this.workers.length] as Worker;
    const ab = bytes.buffer as ArrayBuffer;
    return new Promise((resolve, reject) => {
      this.jobs.set(id, { resolve, reject });
      w.postMessage({ id, bytes: ab, starts, lens, seq0 }, [ab]);
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
