/**
 * The streaming judge behind `audit verify`: fed the stored entries in sequence order (and the
 * checkpoints), it re-derives the hash chain and the Merkle tree and names each problem by
 * sequence number. Memory is bounded: a window of four entries, the O(log n) tree frontier and
 * at most `maxProblems` problems.
 *
 * How a problem is attributed, from what one tampering does to the chain (entry j's `prev`
 * must be the leaf hash of entry j-1):
 * - entry j's content edited: the link j→j+1 breaks, j-1→j holds          → ENTRY_ALTERED at j
 * - entry j's `prev` (and so its hash) edited: j-1→j and j→j+1 break      → ENTRY_ALTERED at j
 * - entry j deleted: the key is absent while later keys exist             → ENTRY_MISSING at j
 * - entries swapped: the `seq` inside disagrees with the key              → ENTRY_REORDERED
 * - a forged entry slipped in at j, later files renumbered: j+1 chains to
 *   j-1 and holds seq j                                                    → ENTRY_INSERTED at j
 * - entries cut off the end below a signed checkpoint's size              → ENTRY_MISSING
 * - only the last entry's link is broken (no successor to tell which side
 *   changed)                                                               → CHAIN_BROKEN at j
 * - a checkpoint whose signature fails or that cannot be read            → CHECKPOINT_FORGED
 * - a validly signed checkpoint whose root is not the stored entries'    → CHECKPOINT_INCONSISTENT
 */

import { entryLeafHash, parseEntry, toHex, ZERO_HASH_HEX } from '../../core/audit-entry.js';
import type { SignedCheckpoint } from '../../core/checkpoint.js';
import { bytesEqual } from '../../core/digest.js';
import { TreeBuilder } from '../../core/merkle.js';
import {
  type AuditProblem,
  type AuditProblemCode,
  AuditProblemCodes,
  type CheckpointInput,
  type VerifyReport,
} from './report.js';

type Status = 'ok' | 'malformed' | 'reordered' | 'shifted';
type Final = 'ok' | 'flagged' | 'inserted' | 'run';

interface Item {
  key: number;
  leaf: Uint8Array;
  leafHex: string;
  prev?: string;
  seqField?: number;
  status: Status;
  reason?: string;
  final?: Final;
  /** Set when the key before this one is absent: no link can be judged into it. */
  afterGap: boolean;
}

export class ChainVerifier {
  private readonly problems: AuditProblem[] = [];
  private readonly problemSeqs = new Set<number>();
  private more = 0;
  private readonly win: Item[] = [];
  private last: Item | undefined;
  private nextKey = 0;
  private count = 0;
  private readonly tree: TreeBuilder;
  private treeBroken = false;
  private firstProblemSeq = Number.POSITIVE_INFINITY;
  private checkpointCount = 0;
  private pendingCheckpoints: CheckpointInput[] = [];
  private readonly mismatches: number[] = [];

  constructor(
    private readonly maxProblems = 1000,
    onTileNode?: (level: number, index: number, hash: Uint8Array) => void,
  ) {
    this.tree = new TreeBuilder(onTileNode);
  }

  /** Records a problem found outside the chain (tiles, entry objects, consistency proofs). */
  note(seq: number, code: AuditProblemCode, detail: string): void {
    this.report(seq, code, detail);
  }

  /**
   * Whether a stored hash tile is wrong where no entry is: then a proof made from the tiles may
   * fail for the tile's sake, not the checkpoints'. (A tile that disagrees with an altered entry
   * is the entry's problem.)
   */
  hasUnexplainedTileProblem(): boolean {
    if (this.more > 0) return true;
    const entrySeqs = new Set(this.problems.filter((p) => p.code.startsWith('ENTRY_')).map((p) => p.seq));
    return this.problems.some((p) => p.code === 'TILE_ALTERED' && !entrySeqs.has(p.seq));
  }

  /**
   * Takes the result of a clean `FastChainCheck` instead of pushing entries one by one: the
   * chain and every checkpoint root held, so only problems `note`d elsewhere remain.
   */
  absorbClean(entries: number, checkpoints: number): void {
    this.count = entries;
    this.nextKey = entries;
    this.checkpointCount = checkpoints;
    this.pendingCheckpoints = [];
  }

  private report(seq: number, code: AuditProblemCode, detail: string): void {
    if (!code.startsWith('CHECKPOINT_') && seq < this.firstProblemSeq) this.firstProblemSeq = seq;
    const key = seq * 16 + AuditProblemCodes.indexOf(code);
    if (this.problemSeqs.has(key)) return;
    if (this.problems.length >= this.maxProblems) {
      this.more += 1;
      return;
    }
    this.problemSeqs.add(key);
    this.problems.push({ seq, code, detail });
  }

  /** Checkpoints in increasing size order, before or while entries are pushed. */
  addCheckpoint(c: CheckpointInput): void {
    this.checkpointCount += 1;
    const seq = Math.max(0, c.size - 1);
    if (c.checkpoint === undefined) {
      this.report(seq, 'CHECKPOINT_FORGED', `checkpoint at size ${c.size}: ${c.error ?? 'unreadable'}`);
      return;
    }
    if (c.checkpoint.size !== c.size) {
      this.report(
        seq,
        'CHECKPOINT_FORGED',
        `checkpoint stored as size ${c.size} says size ${c.checkpoint.size}`,
      );
      return;
    }
    this.pendingCheckpoints.push(c);
    this.pendingCheckpoints.sort((a, b) => a.size - b.size);
    this.matchCheckpoints();
  }

  private matchCheckpoints(): void {
    while (this.pendingCheckpoints.length > 0) {
      const c = this.pendingCheckpoints[0] as CheckpointInput;
      if (c.size > this.tree.size && !this.treeBroken) return;
      this.pendingCheckpoints.shift();
      if (c.size === 0 || this.treeBroken || c.size !== this.tree.size) continue;
      const cp = c.checkpoint as SignedCheckpoint;
      // Judged at the end: an entry problem found later explains a mismatch better.
      if (!bytesEqual(cp.root, this.tree.root())) this.mismatches.push(c.size);
    }
  }

  /** The stored bytes of the entry under sequence key `key`, in increasing key order. */
  push(key: number, bytes: Uint8Array, leafHash?: Uint8Array): Uint8Array {
    if (key > this.nextKey) {
      for (let s = this.nextKey; s < key; s++)
        this.report(s, 'ENTRY_MISSING', `entry ${s} is absent but later entries exist`);
      this.treeBroken = true;
      this.flushWindow();
    }
    const leaf = leafHash ?? entryLeafHash(bytes);
    const parsed = parseEntry(bytes);
    const item: Item = { key, leaf, leafHex: toHex(leaf), status: 'ok', afterGap: key > this.nextKey };
    if (!parsed.ok) {
      item.status = 'malformed';
      item.reason = parsed.reason;
    } else {
      item.prev = parsed.entry.prev;
      item.seqField = parsed.entry.seq;
      if (parsed.entry.seq === key - 1) item.status = 'shifted';
      else if (parsed.entry.seq !== key) item.status = 'reordered';
    }
    this.nextKey = key + 1;
    this.count += 1;
    if (!this.treeBroken) {
      this.tree.append(leaf);
      this.matchCheckpoints();
    }
    this.win.push(item);
    // The first item of a run has no predecessor in the window: judge it once two successors arrived.
    const first = this.win[0];
    if (this.win.length === 3 && first !== undefined && first.final === undefined) {
      this.judge(first, undefined, this.win[1], this.win[2]);
    }
    if (this.win.length === 4) {
      this.judge(this.win[1] as Item, this.win[0], this.win[2], this.win[3]);
      this.win.shift();
    }
    return leaf;
  }

  /** The level-0 hash tile disagrees with the entry bundle at `seq`. */
  tileMismatch(seq: number): void {
    this.report(
      seq,
      'TILE_ALTERED',
      `the hash tile's leaf hash for entry ${seq} is not the hash of the entry`,
    );
  }

  private flushWindow(): void {
    // Judge what remains, with no successors beyond the window.
    const w = this.win;
    for (let i = 0; i < w.length; i++) {
      if ((w[i] as Item).final === undefined) this.judge(w[i] as Item, w[i - 1], w[i + 1], w[i + 2]);
    }
    this.last = w[w.length - 1];
    w.length = 0;
  }

  private static flagged(x: Item | undefined): boolean {
    if (x === undefined) return true;
    const f = x.final;
    if (f !== undefined) return f === 'flagged' || f === 'inserted';
    return x.status === 'malformed' || x.status === 'reordered';
  }

  /** Does b's prev name a's hash? undefined when either side cannot be judged. */
  private static link(a: Item | undefined, b: Item | undefined): boolean | undefined {
    if (b === undefined || b.status === 'malformed') return undefined;
    if (a === undefined) return b.key === 0 && !b.afterGap ? b.prev === ZERO_HASH_HEX : undefined;
    if (ChainVerifier.flagged(a) || a.key !== b.key - 1) return undefined;
    return b.prev === a.leafHex;
  }

  private judge(j: Item, p: Item | undefined, n: Item | undefined, nn: Item | undefined): void {
    if (p !== undefined && p.key !== j.key - 1) p = undefined;
    if (n !== undefined && n.key !== j.key + 1) n = undefined;
    if (nn !== undefined && (n === undefined || nn.key !== n.key + 1)) nn = undefined;
    if (j.status === 'malformed') {
      j.final = 'flagged';
      this.report(j.key, 'ENTRY_ALTERED', `entry ${j.key} is not a valid entry (${j.reason})`);
      return;
    }
    if (j.status === 'reordered') {
      j.final = 'flagged';
      this.report(j.key, 'ENTRY_REORDERED', `the entry stored as ${j.key} says it is entry ${j.seqField}`);
      return;
    }
    if (j.status === 'shifted') {
      if (p !== undefined && (p.final === 'inserted' || p.final === 'run')) {
        j.final = 'run';
      } else {
        j.final = 'flagged';
        this.report(j.key, 'ENTRY_REORDERED', `the entry stored as ${j.key} says it is entry ${j.seqField}`);
        return;
      }
    } else {
      // An entry followed by the renumbered rest of the log, or skipped over by its successor's
      // chain, was slipped in.
      const skippedOver =
        p !== undefined && !ChainVerifier.flagged(p) && n?.prev === p.leafHex && n.status !== 'malformed';
      if ((n?.status === 'shifted' && p?.final !== 'run') || skippedOver) {
        j.final = 'inserted';
        this.report(
          j.key,
          'ENTRY_INSERTED',
          `entry ${j.key} was inserted: entry ${j.key + 1} chains to entry ${j.key - 1}`,
        );
        return;
      }
      j.final = 'ok';
    }
    const linkIn = j.key === 0 ? ChainVerifier.link(undefined, j) : ChainVerifier.link(p, j);
    const linkOut =
      ChainVerifier.flagged(n) && n?.status !== 'shifted' ? undefined : ChainVerifier.link(j, n);
    const nextOut = nn === undefined ? undefined : ChainVerifier.link(n, nn);
    if (linkIn === false && linkOut === false) {
      this.report(
        j.key,
        'ENTRY_ALTERED',
        `entry ${j.key} does not match the hash recorded by entry ${j.key + 1}`,
      );
    } else if (linkOut === false && nextOut !== false) {
      if (nn === undefined && n !== undefined && this.isTail(n)) {
        // With no entry after n, either j's content or n's prev changed.
        this.report(
          n.key,
          'CHAIN_BROKEN',
          `entry ${n.key} does not chain to entry ${j.key} (one of them was altered)`,
        );
      } else {
        this.report(
          j.key,
          'ENTRY_ALTERED',
          `entry ${j.key} does not match the hash recorded by entry ${j.key + 1}`,
        );
      }
    } else if (linkIn === false && j.key === 0) {
      this.report(0, 'ENTRY_ALTERED', 'entry 0 does not start the chain');
    }
  }

  private tailKey = -1;
  private isTail(x: Item): boolean {
    return x.key === this.tailKey;
  }

  /** Ends the stream; `expectedSize` is the largest size any checkpoint vouches for. */
  finish(): VerifyReport {
    this.settle();
    this.problems.sort((a, b) => a.seq - b.seq);
    const report: VerifyReport = {
      ok: this.problems.length === 0 && this.more === 0,
      entries: this.count,
      checkpoints: this.checkpointCount,
      problems: this.problems,
    };
    if (this.more > 0) report.moreProblems = this.more;
    return report;
  }

  private settled = false;

  /** Judges what is left once every entry was pushed; entry problems are final afterwards. */
  settle(): void {
    if (this.settled) return;
    this.settled = true;
    this.tailKey = this.nextKey - 1;
    this.flushWindow();
    for (const c of this.pendingCheckpoints) {
      if (c.size > this.nextKey) {
        for (let s = this.nextKey; s < c.size; s++) {
          this.report(
            s,
            'ENTRY_MISSING',
            `entry ${s} is covered by the signed checkpoint at size ${c.size} but absent`,
          );
        }
        this.nextKey = c.size;
      }
    }
    this.pendingCheckpoints = [];
    for (const size of this.mismatches) {
      if (this.firstProblemSeq >= size) {
        this.report(
          size - 1,
          'CHECKPOINT_INCONSISTENT',
          `the signed root at size ${size} is not the root of the stored entries 0..${size - 1}`,
        );
      }
    }
  }

  /** Whether an entry problem was found at a seq in [from, to). */
  entryProblemIn(from: number, to: number): boolean {
    return this.problems.some((p) => p.code.startsWith('ENTRY_') && p.seq >= from && p.seq < to);
  }

  /** For tile checks: the items already seen are not kept, so callers compare as they push. */
  get size(): number {
    return this.nextKey;
  }
  get lastItem(): Item | undefined {
    return this.last;
  }
}
