/**
 * The fast lane of `audit verify`: proves a log clean at hashing speed, or gives up at the first
 * anomaly so that `ChainVerifier` (which parses every entry) can explain it. Clean means exactly
 * what ChainVerifier would find no problem with:
 * - keys run 0, 1, 2… with no gap, and each entry's top-level `seq` is its key;
 * - each entry's top-level `prev` is the hex leaf hash of the entry before (64 zeros for 0);
 * - each checkpoint's signed root is the root recomputed at its size, and none is beyond the end.
 * Entries are not JSON-parsed (that alone would halve the speed): an entry that is chained to by
 * its successor and covered by a signed root is fixed by SHA-256, and the appender only ever
 * writes well-formed entries. Entries that nothing after them fixes — at or beyond the largest
 * checkpoint's size — are fully parsed.
 */
import { chainFields, parseEntry } from '../../core/audit-entry.js';
import { bytesEqual } from '../../core/digest.js';
import { TreeBuilder } from '../../core/merkle.js';
import { type TileHashes, tilePrefix, tileRoot } from './leaf-pool.js';
import type { CheckpointInput } from './report.js';

const HEX_VALUE = new Int8Array(256).fill(-1);
for (let d = 0; d < 16; d++) HEX_VALUE['0123456789abcdef'.charCodeAt(d)] = d;

/** Whether the 64 lowercase hex digits at `at` spell `hash` (no string is made: this runs per entry). */
function hexEquals(bytes: Uint8Array, at: number, hash: Uint8Array): boolean {
  for (let k = 0; k < 32; k++) {
    const hi = HEX_VALUE[bytes[at + 2 * k] as number] as number;
    const lo = HEX_VALUE[bytes[at + 2 * k + 1] as number] as number;
    if (hi < 0 || lo < 0 || ((hi << 4) | lo) !== hash[k]) return false;
  }
  return true;
}

export class FastChainCheck {
  /** The leaf hash the next entry's `prev` must spell; 32 zero bytes for entry 0. */
  private prevLeaf: Uint8Array = new Uint8Array(32);
  private next = 0;
  private cp = 0;
  private readonly tree: TreeBuilder;
  private readonly parseFrom: number;
  /** Why the fast lane gave up; undefined while clean. */
  anomaly: string | undefined;

  constructor(
    private readonly checkpoints: readonly CheckpointInput[],
    onTileNode?: (level: number, index: number, hash: Uint8Array) => void,
  ) {
    this.tree = new TreeBuilder(onTileNode);
    let max = 0;
    for (const c of checkpoints) {
      if (c.checkpoint === undefined || c.checkpoint.size !== c.size) this.anomaly = `checkpoint ${c.size}`;
      max = Math.max(max, c.size);
    }
    this.parseFrom = max;
    this.matchCheckpoints();
  }

  get size(): number {
    return this.next;
  }

  /** Feeds the entry stored under `key` and its leaf hash; false once the lane has given up. */
  push(key: number, bytes: Uint8Array, leaf: Uint8Array): boolean {
    if (this.anomaly !== undefined) return false;
    if (key !== this.next) return this.giveUp(`gap before ${key}`);
    const f = chainFields(bytes);
    if (f === undefined || f.seq !== key) return this.giveUp(`entry ${key} shape or seq`);
    if (!hexEquals(bytes, f.prevAt, this.prevLeaf)) return this.giveUp(`link into ${key}`);
    if (key >= this.parseFrom - 1 && !parseEntry(bytes).ok) return this.giveUp(`entry ${key} malformed`);
    this.prevLeaf = leaf;
    this.tree.append(leaf);
    this.next = key + 1;
    if (this.cp < this.checkpoints.length) this.matchCheckpoints();
    return this.anomaly === undefined;
  }

  /**
   * Feeds a whole bundle hashed by `hashTile`: its 256 entries (for the ones that must be
   * parsed) and their leaf hashes and subtree. One tree hash per 256 entries is left to do here.
   */
  pushTile(start: number, t: TileHashes, entry: (i: number) => Uint8Array): boolean {
    if (this.anomaly !== undefined) return false;
    if (start !== this.next) return this.giveUp(`gap before ${start}`);
    if (t.firstBad >= 0) return this.giveUp(`entry ${start + t.firstBad} shape, seq or link`);
    if (t.firstPrev === undefined || !bytesEqual(t.firstPrev, this.prevLeaf)) {
      return this.giveUp(`link into ${start}`);
    }
    const n = t.leaves.length / 32;
    for (let i = Math.max(0, this.parseFrom - 1 - start); i < n; i++) {
      if (!parseEntry(entry(i)).ok) return this.giveUp(`entry ${start + i} malformed`);
    }
    // Checkpoints whose size falls inside this tile: the root over the tile's first leaves.
    for (
      let c = this.checkpoints[this.cp];
      c !== undefined && c.size < start + n;
      c = this.checkpoints[this.cp]
    ) {
      this.cp += 1;
      if (c.checkpoint === undefined || c.size <= start) continue;
      if (!bytesEqual(c.checkpoint.root, this.tree.rootWith(tilePrefix(t, c.size - start)))) {
        return this.giveUp(`root at ${c.size}`);
      }
    }
    this.tree.appendSubtree(tileRoot(t), 8);
    // A copy: the tile's memory is reused for a later bundle.
    this.prevLeaf = t.leaves.slice((n - 1) * 32);
    this.next = start + n;
    this.matchCheckpoints();
    return this.anomaly === undefined;
  }

  private matchCheckpoints(): void {
    for (;;) {
      const c = this.checkpoints[this.cp];
      if (c === undefined || c.size > this.next) return;
      this.cp += 1;
      if (c.size === this.next && c.checkpoint !== undefined && c.size > 0) {
        if (!bytesEqual(c.checkpoint.root, this.tree.root())) this.giveUp(`root at ${c.size}`);
      }
    }
  }

  private giveUp(why: string): false {
    this.anomaly ??= why;
    return false;
  }

  /** Ends the stream: clean when nothing was off and no checkpoint vouches for more entries. */
  finish(): boolean {
    if (this.cp < this.checkpoints.length) this.giveUp('entries missing below a checkpoint');
    return this.anomaly === undefined;
  }
}
