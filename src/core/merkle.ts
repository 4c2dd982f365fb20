/**
 * RFC 6962 / RFC 9162 Merkle tree hashing, proofs and their verification.
 *
 * - Hashes: RFC 9162 §2.1.1 (https://www.rfc-editor.org/rfc/rfc9162#section-2.1.1).
 * - Inclusion proofs: §2.1.3.1 (generation) and §2.1.3.2 (verification).
 * - Consistency proofs: §2.1.4.1 (generation) and §2.1.4.2 (verification).
 *
 * Generation never holds the tree: it asks a `NodeHash` accessor for the hashes of perfect
 * subtrees (a leaf is the perfect subtree of level 0), so a log of any size can serve proofs
 * from its hash tiles. Verification is pure and synchronous; attacker-controlled input never
 * makes it throw anything but a `ProofError` with a stable code.
 */
import { hash } from 'node:crypto';
import { bytesEqual } from './digest.js';
import { CodedError } from './errors.js';

/** Domain separation of leaves: RFC 6962 §2.1 / RFC 9162 §2.1.1, `MTH({d(0)}) = SHA-256(0x00 || d(0))`. */
const LEAF_PREFIX = 0x00;
/** Domain separation of interior nodes: RFC 9162 §2.1.1, `SHA-256(0x01 || MTH(left) || MTH(right))`. */
const NODE_PREFIX = 0x01;
/** SHA-256 output length. */
const HASH_SIZE = 32;

function sha256(data: Uint8Array): Uint8Array {
  return hash('sha256', data, 'buffer');
}

/** RFC 9162 §2.1.1: the hash of an empty tree is the hash of the empty string. */
export const EMPTY_ROOT: Uint8Array = sha256(new Uint8Array(0));

// Hashing is called millions of times by `audit verify`, where the cost of a call, not of the
// SHA-256 blocks, dominates: reuse one scratch buffer per shape instead of allocating per call.
// Safe because `hash()` is synchronous and copies nothing out of the scratch.
let leafScratch = new Uint8Array(1024);
const nodeScratch = new Uint8Array(1 + 2 * HASH_SIZE);
nodeScratch[0] = NODE_PREFIX;

/** The leaf hash of an entry's bytes: SHA-256(0x00 || data). */
export function hashLeaf(data: Uint8Array): Uint8Array {
  if (data.length + 1 > leafScratch.length) leafScratch = new Uint8Array(2 * (data.length + 1));
  leafScratch[0] = LEAF_PREFIX;
  leafScratch.set(data, 1);
  return sha256(leafScratch.subarray(0, data.length + 1));
}

/** An interior node: SHA-256(0x01 || left || right). */
export function hashChildren(left: Uint8Array, right: Uint8Array): Uint8Array {
  if (left.length !== HASH_SIZE || right.length !== HASH_SIZE) {
    const buf = new Uint8Array(1 + left.length + right.length);
    buf[0] = NODE_PREFIX;
    buf.set(left, 1);
    buf.set(right, 1 + left.length);
    return sha256(buf);
  }
  nodeScratch.set(left, 1);
  nodeScratch.set(right, 1 + HASH_SIZE);
  return sha256(nodeScratch);
}

// ───────────────────────────── building ─────────────────────────────

/**
 * The root of a growing tree in O(log n) memory: keeps one hash per perfect subtree of the
 * current size (the "compact range" [0, n)), merging as leaves arrive.
 */
export class TreeBuilder {
  private readonly stack: Uint8Array[] = [];
  private count = 0;

  /**
   * `onTileNode` sees every completed perfect subtree whose level is a multiple of the tile height
   * (8) above 0, i.e. every hash a c2sp.org/tlog-tiles hash tile above level 0 stores, so a
   * reader can check stored tiles against the hashes it recomputed.
   */
  constructor(private readonly onTileNode?: (level: number, index: number, hash: Uint8Array) => void) {}

  get size(): number {
    return this.count;
  }

  append(leafHash: Uint8Array): void {
    this.appendSubtree(leafHash, 0);
  }

  /**
   * Appends a perfect subtree of 2^level leaves (a leaf is level 0); the size must be a multiple
   * of 2^level, as it is when whole tiles are appended.
   */
  appendSubtree(hash: Uint8Array, level: number): void {
    const width = 2 ** level;
    if (this.count % width !== 0)
      throw new RangeError(`a subtree of ${width} leaves cannot start at ${this.count}`);
    let h = hash;
    let l = level;
    if (l > 0 && l % 8 === 0) this.onTileNode?.(l, this.count / width, h);
    // Each trailing 1 bit of the old size (in units of the subtree) is a perfect subtree that the
    // new one completes.
    for (let s = this.count / width; s % 2 === 1; s = Math.floor(s / 2)) {
      const left = this.stack.pop();
      if (left === undefined) throw new Error('TreeBuilder stack underflow');
      h = hashChildren(left, h);
      l += 1;
      if (l % 8 === 0) this.onTileNode?.(l, Math.floor(this.count / 2 ** l), h);
    }
    this.stack.push(h);
    this.count += width;
  }

  /** MTH of the leaves appended so far (RFC 9162 §2.1.1). */
  root(): Uint8Array {
    return this.rootWith([]);
  }

  /**
   * MTH of the leaves appended so far followed by more perfect subtrees (largest first, each
   * smaller than the last appended one): the root at a size inside a tile being appended.
   */
  rootWith(more: readonly Uint8Array[]): Uint8Array {
    const all = more.length === 0 ? this.stack : [...this.stack, ...more];
    let h = all[all.length - 1];
    if (h === undefined) return EMPTY_ROOT;
    for (let i = all.length - 2; i >= 0; i--) h = hashChildren(all[i] as Uint8Array, h);
    return h;
  }
}

/** MTH of a list of leaf hashes held in memory (small trees, tests). */
export function rootOf(leafHashes: readonly Uint8Array[]): Uint8Array {
  const b = new TreeBuilder();
  for (const h of leafHashes) b.append(h);
  return b.root();
}

// ───────────────────────────── generation ─────────────────────────────

/** A perfect subtree: `2^level` leaves starting at leaf `index * 2^level`. */
interface NodeId {
  level: number;
  index: number;
}

/** Returns the hash of a perfect subtree; level 0 is a leaf hash. */
export type NodeHash = (level: number, index: number) => Uint8Array | Promise<Uint8Array>;

/** The largest power of two strictly below n (n ≥ 2): RFC 9162's split point k. */
function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

function checkSize(n: number, what: string): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`${what} must be a non-negative safe integer`);
}

/**
 * The perfect subtrees that make up leaves [begin, end), largest first. For the ranges RFC 9162
 * recursion produces (begin aligned to the range's split), MTH is these folded right to left.
 */
function perfectSubtrees(begin: number, end: number): NodeId[] {
  checkSize(begin, 'begin');
  checkSize(end, 'end');
  const out: NodeId[] = [];
  let at = begin;
  while (at < end) {
    let size = 1;
    let level = 0;
    while ((at === 0 || at % (size * 2) === 0) && at + size * 2 <= end) {
      size *= 2;
      level += 1;
    }
    out.push({ level, index: at / size });
    at += size;
  }
  return out;
}

/** MTH(D[begin:end]) from perfect-subtree hashes. */
async function subtreeHash(begin: number, end: number, node: NodeHash): Promise<Uint8Array> {
  if (begin >= end) return EMPTY_ROOT;
  const parts = perfectSubtrees(begin, end);
  const last = parts[parts.length - 1] as NodeId;
  let h = await node(last.level, last.index);
  for (let i = parts.length - 2; i >= 0; i--) {
    const p = parts[i] as NodeId;
    h = hashChildren(await node(p.level, p.index), h);
  }
  return h;
}

/** The root of the tree of the first `size` leaves. */
export function rootAt(size: number, node: NodeHash): Promise<Uint8Array> {
  return subtreeHash(0, size, node);
}

/** RFC 9162 §2.1.3.1 PATH(m, D[n]): the ranges whose MTHs form the inclusion proof, deepest first. */
function inclusionRanges(index: number, size: number): [number, number][] {
  checkSize(index, 'index');
  checkSize(size, 'size');
  if (index >= size) throw new RangeError(`leaf ${index} is not in a tree of size ${size}`);
  const ranges: [number, number][] = [];
  let lo = 0;
  let hi = size;
  while (hi - lo > 1) {
    const k = splitPoint(hi - lo);
    if (index < lo + k) {
      ranges.push([lo + k, hi]);
      hi = lo + k;
    } else {
      ranges.push([lo, lo + k]);
      lo += k;
    }
  }
  return ranges.reverse();
}

/** RFC 9162 §2.1.4.1 PROOF(m, D[n]) = SUBPROOF(m, D[n], true): the ranges, deepest first. */
function consistencyRanges(size1: number, size2: number): [number, number][] {
  checkSize(size1, 'size1');
  checkSize(size2, 'size2');
  if (size1 > size2) throw new RangeError(`size1 ${size1} is larger than size2 ${size2}`);
  if (size1 === 0 || size1 === size2) return [];
  const ranges: [number, number][] = [];
  let m = size1;
  let lo = 0;
  let hi = size2;
  let complete = true;
  for (;;) {
    if (m === hi - lo) {
      if (!complete) ranges.push([lo, hi]);
      break;
    }
    const k = splitPoint(hi - lo);
    if (m <= k) {
      ranges.push([lo + k, hi]);
      hi = lo + k;
    } else {
      ranges.push([lo, lo + k]);
      m -= k;
      lo += k;
      complete = false;
    }
  }
  return ranges.reverse();
}

export async function inclusionProof(index: number, size: number, node: NodeHash): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for (const [a, b] of inclusionRanges(index, size)) out.push(await subtreeHash(a, b, node));
  return out;
}

export async function consistencyProof(size1: number, size2: number, node: NodeHash): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for (const [a, b] of consistencyRanges(size1, size2)) out.push(await subtreeHash(a, b, node));
  return out;
}

/** A `NodeHash` over leaf hashes held in memory (tests, small trees). */
export function memoryNodes(leafHashes: readonly Uint8Array[]): NodeHash {
  const node = (level: number, index: number): Uint8Array => {
    if (level === 0) {
      const h = leafHashes[index];
      if (h === undefined) throw new RangeError(`no leaf ${index}`);
      return h;
    }
    return hashChildren(node(level - 1, index * 2), node(level - 1, index * 2 + 1));
  };
  return node;
}

// ───────────────────────────── verification ─────────────────────────────

const ProofErrorCodes = [
  /** An argument has the wrong type, a hash is not 32 bytes, a size is negative… */
  'PROOF_MALFORMED',
  'INCLUSION_INDEX_OUT_OF_RANGE',
  /** The proof has more or fewer hashes than the index and tree size call for. */
  'INCLUSION_PROOF_WRONG_SIZE',
  'CONSISTENCY_SIZES_DECREASING',
  'CONSISTENCY_PROOF_WRONG_SIZE',
  /** The proof does not lead back to the older tree's root. */
  'CONSISTENCY_OLD_ROOT_MISMATCH',
  /** The proof does not lead to the (newer) tree's root. */
  'ROOT_MISMATCH',
] as const;
export type ProofErrorCode = (typeof ProofErrorCodes)[number];

export class ProofError extends CodedError<ProofErrorCode> {
  override readonly name = 'ProofError';
}

function toSize(v: unknown, what: string): bigint {
  if (typeof v === 'bigint' && v >= 0n) return v;
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return BigInt(v);
  throw new ProofError('PROOF_MALFORMED', `${what} must be a non-negative integer (bigint)`);
}

function toHash(v: unknown, what: string): Uint8Array {
  if (v instanceof Uint8Array && v.length === HASH_SIZE) return v;
  throw new ProofError('PROOF_MALFORMED', `${what} must be a ${HASH_SIZE}-byte Uint8Array`);
}

function toProof(v: unknown): Uint8Array[] {
  if (!Array.isArray(v)) throw new ProofError('PROOF_MALFORMED', 'proof must be an array of 32-byte hashes');
  return v.map((h, i) => toHash(h, `proof[${i}]`));
}

/** Runs a verification so that nothing but a ProofError escapes, whatever the input. */
function guarded(f: () => void): void {
  try {
    f();
  } catch (e) {
    if (e instanceof ProofError) throw e;
    throw new ProofError('PROOF_MALFORMED', 'the proof could not be read; check its encoding', { cause: e });
  }
}

export interface InclusionProofInput {
  leafHash: Uint8Array;
  index: bigint;
  treeSize: bigint;
  proof: readonly Uint8Array[];
  root: Uint8Array;
}

/** RFC 9162 §2.1.3.2: returns when `leafHash` is leaf `index` of the tree of `treeSize` with `root`. */
export function verifyInclusionProof(input: InclusionProofInput): void {
  guarded(() => {
    if (typeof input !== 'object' || input === null)
      throw new ProofError('PROOF_MALFORMED', 'expected an object');
    const leaf = toHash(input.leafHash, 'leafHash');
    const index = toSize(input.index, 'index');
    const size = toSize(input.treeSize, 'treeSize');
    const proof = toProof(input.proof);
    const root = toHash(input.root, 'root');
    // Step 1.
    if (index >= size) {
      throw new ProofError(
        'INCLUSION_INDEX_OUT_OF_RANGE',
        `leaf index ${index} is not below tree size ${size}`,
      );
    }
    // Steps 2-4.
    let fn = index;
    let sn = size - 1n;
    let r = leaf;
    for (const p of proof) {
      if (sn === 0n)
        throw new ProofError('INCLUSION_PROOF_WRONG_SIZE', 'the proof has more hashes than expected');
      if ((fn & 1n) === 1n || fn === sn) {
        r = hashChildren(p, r);
        if ((fn & 1n) === 0n) {
          while ((fn & 1n) === 0n && fn !== 0n) {
            fn >>= 1n;
            sn >>= 1n;
          }
        }
      } else {
        r = hashChildren(r, p);
      }
      fn >>= 1n;
      sn >>= 1n;
    }
    // Step 5.
    if (sn !== 0n)
      throw new ProofError('INCLUSION_PROOF_WRONG_SIZE', 'the proof has fewer hashes than expected');
    if (!bytesEqual(r, root)) {
      throw new ProofError('ROOT_MISMATCH', 'the inclusion proof does not lead to the given root');
    }
  });
}

export interface ConsistencyProofInput {
  size1: bigint;
  size2: bigint;
  proof: readonly Uint8Array[];
  root1: Uint8Array;
  root2: Uint8Array;
}

/** RFC 9162 §2.1.4.2: returns when the tree (size2, root2) extends the tree (size1, root1). */
export function verifyConsistencyProof(input: ConsistencyProofInput): void {
  guarded(() => {
    if (typeof input !== 'object' || input === null)
      throw new ProofError('PROOF_MALFORMED', 'expected an object');
    const size1 = toSize(input.size1, 'size1');
    const size2 = toSize(input.size2, 'size2');
    const proof = toProof(input.proof);
    const root1 = toHash(input.root1, 'root1');
    const root2 = toHash(input.root2, 'root2');
    if (size2 < size1) {
      throw new ProofError('CONSISTENCY_SIZES_DECREASING', `size2 ${size2} is smaller than size1 ${size1}`);
    }
    if (size1 === size2) {
      if (proof.length !== 0) {
        throw new ProofError('CONSISTENCY_PROOF_WRONG_SIZE', 'trees of equal size need an empty proof');
      }
      if (!bytesEqual(root1, root2))
        throw new ProofError('ROOT_MISMATCH', 'trees of equal size have different roots');
      return;
    }
    if (size1 === 0n) {
      // Every tree extends the empty tree.
      if (proof.length !== 0) {
        throw new ProofError('CONSISTENCY_PROOF_WRONG_SIZE', 'a proof from the empty tree must be empty');
      }
      return;
    }
    // Step 1.
    if (proof.length === 0) throw new ProofError('CONSISTENCY_PROOF_WRONG_SIZE', 'the proof is empty');
    // Step 2: a power-of-two first tree is itself a node of the second, so its root seeds the walk.
    const path = (size1 & (size1 - 1n)) === 0n ? [root1, ...proof] : proof;
    // Steps 3-4.
    let fn = size1 - 1n;
    let sn = size2 - 1n;
    while ((fn & 1n) === 1n) {
      fn >>= 1n;
      sn >>= 1n;
    }
    // Step 5.
    let fr = path[0] as Uint8Array;
    let sr = fr;
    // Step 6.
    for (let i = 1; i < path.length; i++) {
      const c = path[i] as Uint8Array;
      if (sn === 0n)
        throw new ProofError('CONSISTENCY_PROOF_WRONG_SIZE', 'the proof has more hashes than expected');
      if ((fn & 1n) === 1n || fn === sn) {
        fr = hashChildren(c, fr);
        sr = hashChildren(c, sr);
        if ((fn & 1n) === 0n) {
          while ((fn & 1n) === 0n && fn !== 0n) {
            fn >>= 1n;
            sn >>= 1n;
          }
        }
      } else {
        sr = hashChildren(sr, c);
      }
      fn >>= 1n;
      sn >>= 1n;
    }
    // Step 7.
    if (sn !== 0n)
      throw new ProofError('CONSISTENCY_PROOF_WRONG_SIZE', 'the proof has fewer hashes than expected');
    if (!bytesEqual(fr, root1)) {
      throw new ProofError('CONSISTENCY_OLD_ROOT_MISMATCH', 'the proof does not lead back to the older root');
    }
    if (!bytesEqual(sr, root2))
      throw new ProofError('ROOT_MISMATCH', 'the proof does not lead to the newer root');
  });
}
