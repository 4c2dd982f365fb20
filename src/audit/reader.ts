/**
 * Reading the audit log: its entries (sealed entry bundles first, then the batches of the tail),
 * its checkpoints, the Merkle nodes its hash tiles hold (computed from the level below where a
 * tile is missing), and inclusion and consistency proofs. A reader checks checkpoints with the
 * log's public key (PEM or KeyObject) and never signs: it is given no Signer.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { publicKeyDer } from '../core/attest/keys.js';
import { parseEntry } from '../core/audit-entry.js';
import { openCheckpoint, type SignedCheckpoint } from '../core/checkpoint.js';
import { verifyCosignatures, type WitnessKey } from '../core/cosignature.js';
import { digestOf } from '../core/digest.js';
import { VeritrailError } from '../core/errors.js';
import { consistencyProof, hashChildren, hashLeaf, inclusionProof } from '../core/merkle.js';
import { decodeEntryBundle, decodeHashTile, hashTilePath, TILE_WIDTH } from '../core/tiles.js';
import type { AuditEntry, Bucket, ObjectStore } from '../ports.js';
import { DEFAULT_ORIGIN, type LogLayout, splitBatch } from './layout.js';
import { LogObjects } from './objects.js';
import { PROOF_MEDIA_TYPE, type ProofBundle } from './verify/proof.js';
import type { AuditProblemCode } from './verify/report.js';

/**
 * The log key as a reader holds it: the public key checkpoints are checked with, and the key ID
 * proof bundles name. A log with a signer gives its signer's public half; an auditor gives a PEM
 * or a KeyObject (`logPublicKey`).
 */
export interface LogPublicKey {
  readonly keyId: string;
  publicKeyPem(): Promise<string>;
}

/**
 * The log key of a PEM or a KeyObject (its public half is taken); its key ID is sha256 of its DER
 * SubjectPublicKeyInfo.
 */
function logPublicKey(key: string | KeyObject): LogPublicKey {
  const pub = typeof key === 'string' || key.type === 'public' ? key : createPublicKey(key);
  const pem = typeof pub === 'string' ? pub : pub.export({ type: 'spki', format: 'pem' }).toString();
  const keyId = digestOf(publicKeyDer(pem));
  return { keyId, publicKeyPem: async () => pem };
}

/** What a log opened without its key answers when asked for something that needs it. */
export function noLogKey(): VeritrailError {
  return new VeritrailError(
    'USAGE',
    'this audit log was opened without a signer; checkpoints need the audit key',
  );
}

export interface LogReaderOptions {
  objects: LogObjects;
  /** The log's identity: first line of every checkpoint and the signature's key name. */
  origin?: string;
  /** The log key checkpoints are checked with (`logPublicKey` of a PEM or KeyObject). */
  publicKey?: LogPublicKey;
  /** Entries this process knows exist (its appends): reading the tail never stops below them. */
  known?: () => number;
  /** Makes a checkpoint when `prove` finds none covering the entry (a log that can sign). */
  checkpoint?: () => Promise<SignedCheckpoint>;
}

export class LogReader {
  readonly origin: string;
  readonly objects: LogObjects;
  readonly layout: LogLayout;
  private readonly publicKey: LogPublicKey | undefined;
  private readonly knownSize: () => number;
  private readonly makeCheckpoint: (() => Promise<SignedCheckpoint>) | undefined;

  constructor(options: LogReaderOptions) {
    this.objects = options.objects;
    this.layout = options.objects.layout;
    this.origin = options.origin ?? DEFAULT_ORIGIN;
    this.publicKey = options.publicKey;
    this.knownSize = options.known ?? (() => 0);
    this.makeCheckpoint = options.checkpoint;
  }

  /** A count of entries known to exist: a local lower bound, never trusted without a check. */
  private get known(): number {
    return this.knownSize();
  }

  private key(): LogPublicKey {
    if (this.publicKey === undefined) throw noLogKey();
    return this.publicKey;
  }

  /** The log key to check a checkpoint with: `publicKeyPem` when given, else the reader's. */
  async trusted(publicKeyPem?: string): Promise<{ name: string; publicKeyPem: string }> {
    return { name: this.origin, publicKeyPem: publicKeyPem ?? (await this.key().publicKeyPem()) };
  }

  private checkpoint(): Promise<SignedCheckpoint> {
    if (this.makeCheckpoint === undefined) throw noLogKey();
    return this.makeCheckpoint();
  }

  async readCheckpoint(size: number, publicKeyPem: string): Promise<SignedCheckpoint | undefined> {
    const b = await this.objects.read(this.layout.checkpointKey(size));
    if (b === undefined) return undefined;
    try {
      return openCheckpoint(Buffer.from(b).toString('utf8'), { name: this.origin, publicKeyPem });
    } catch (e) {
      throw new VeritrailError(
        'SIGNATURE_INVALID',
        `the stored checkpoint at size ${size} does not verify; run: veritrail audit verify`,
        {
          cause: e,
          details: { size },
        },
      );
    }
  }

  /** Stored checkpoint sizes, in increasing order. */
  async *checkpointSizes(): AsyncIterable<number> {
    for await (const o of this.objects.list(this.layout.checkpointsPrefix)) {
      const name = o.key.slice(o.key.lastIndexOf('/') + 1);
      if (/^\d{15}$/.test(name)) yield Number(name);
    }
  }

  async latestCheckpoint(): Promise<SignedCheckpoint | undefined> {
    let last: number | undefined;
    for await (const s of this.checkpointSizes()) last = s;
    return last === undefined ? undefined : this.readCheckpoint(last, (await this.trusted()).publicKeyPem);
  }

  /**
   * For `veritrail verify <runId>`: is entry `seq` under a checkpoint cosigned by the given
   * witnesses? Returns the largest checkpoint covering it (size > seq) that carries at least one
   * valid cosignature from them, with who cosigned it and when (POSIX seconds); undefined when none
   * does. Checkpoint signatures are checked with `trustedKeys` (default: the reader's key). That
   * the checkpoints extend one another is `verify`'s check, not this one's.
   */
  async witnessedAt(
    seq: number,
    witnesses: readonly WitnessKey[],
    trustedKeys?: readonly string[],
  ): Promise<{ checkpointSize: number; cosignatures: { witness: string; timestamp: number }[] } | undefined> {
    const keys = trustedKeys ?? [(await this.trusted()).publicKeyPem];
    const sizes: number[] = [];
    for await (const s of this.checkpointSizes()) if (s > seq) sizes.push(s);
    for (const size of sizes.reverse()) {
      const b = await this.objects.read(this.layout.checkpointKey(size));
      if (b === undefined) continue;
      const note = Buffer.from(b).toString('utf8');
      const signed = keys.some((publicKeyPem) => {
        try {
          return openCheckpoint(note, { name: this.origin, publicKeyPem }).size === size;
        } catch {
          return false;
        }
      });
      if (!signed) continue;
      let cosignatures: { witness: string; timestamp: number }[];
      try {
        cosignatures = verifyCosignatures(note, witnesses);
      } catch {
        continue;
      }
      if (cosignatures.length > 0) return { checkpointSize: size, cosignatures };
    }
    return undefined;
  }

  /**
   * Entry `seq` as the log holds it. Once sealed, an entry's bundle is the log's copy (it is what
   * `verify` chains and hashes); the entry object must still agree with it, else AUDIT_CORRUPT
   * with `details.problem` ENTRY_ALTERED (or ENTRY_MISSING): invariant 3 holds for every read.
   */
  async readEntry(seq: number): Promise<{ bytes: Uint8Array; entry: AuditEntry }> {
    const t = Math.floor(seq / TILE_WIDTH);
    const b = await this.objects.read(this.layout.entryBundleKey(t));
    const items = b === undefined ? undefined : decodeEntryBundle(b);
    const sealed = items !== undefined && items.length === TILE_WIDTH ? items[seq % TILE_WIDTH] : undefined;
    const object = (await this.tileEntries(t, seq + 1))[seq % TILE_WIDTH];
    const corrupt = (problem: AuditProblemCode, why: string) =>
      new VeritrailError('AUDIT_CORRUPT', `audit entry ${seq} ${why}; run: veritrail audit verify`, {
        details: { seq, problem },
      });
    if (sealed !== undefined && object !== undefined && !Buffer.from(object).equals(sealed)) {
      throw corrupt(
        'ENTRY_ALTERED',
        `was altered: its object differs from its sealed copy in entry bundle ${t}`,
      );
    }
    const bytes = sealed ?? object;
    if (bytes === undefined) throw corrupt('ENTRY_MISSING', 'is missing');
    if (object === undefined)
      throw corrupt('ENTRY_MISSING', `was deleted (its copy in entry bundle ${t} remains)`);
    const parsed = parseEntry(bytes);
    if (!parsed.ok || parsed.entry.seq !== seq) throw corrupt('ENTRY_ALTERED', 'is unreadable');
    return { bytes, entry: parsed.entry };
  }

  /**
   * The stored log in sequence order: full entry bundles first (a few large reads, each with its
   * level-0 hash tile), then the tail entry by entry. `until` is a size the caller expects at least
   * (from checkpoints), so a deleted run of entries below it is still walked past. The next bundle
   * is fetched while the caller works on the current one. `into` may give the memory a bundle is
   * read into (shared memory for worker threads).
   */
  async *segments(until = 0, into?: (size: number) => Buffer | undefined): AsyncGenerator<Segment> {
    const fetchBundle = async (t: number): Promise<Segment | undefined> => {
      const [b, tile] = await Promise.all([
        this.objects.read(this.layout.entryBundleKey(t), into),
        this.objects.read(this.layout.hashTileKey(0, t)),
      ]);
      if (b === undefined) return undefined;
      // `read` made a private copy: verification may write the leaf prefix over each entry's
      // length bytes and move the memory to a worker and back.
      const buf = b;
      const starts = new Uint32Array(TILE_WIDTH);
      const lens = new Uint32Array(TILE_WIDTH);
      let at = 0;
      let n = 0;
      while (at + 2 <= buf.length && n < TILE_WIDTH) {
        const len = ((buf[at] as number) << 8) | (buf[at + 1] as number);
        if (at + 2 + len > buf.length) break;
        starts[n] = at;
        lens[n] = len;
        n += 1;
        at += 2 + len;
      }
      if (n !== TILE_WIDTH || at !== buf.length) return undefined;
      const seg: Segment = { start: t * TILE_WIDTH, bundle: { index: t, buf, starts, lens } };
      if (tile !== undefined) seg.tile = tile;
      return seg;
    };
    let t = 0;
    let next = fetchBundle(0);
    for (;;) {
      const seg = await next;
      if (seg === undefined) break;
      next = fetchBundle(t + 1);
      yield seg;
      t += 1;
    }
    const start = t * TILE_WIDTH;
    const limit = Math.max(until, this.known, await this.objects.readHint());
    for (let g = Math.floor(start / 1000); ; g++) {
      let any = false;
      for await (const o of this.objects.list(this.layout.entryGroupPrefix(g))) {
        const digits = o.key.slice(this.layout.entriesPrefix.length).replaceAll('/', '');
        if (!/^\d{15}$/.test(digits)) continue;
        const seq = Number(digits);
        if (seq < start) continue;
        any = true;
        const bytes = await this.objects.read(o.key);
        if (bytes === undefined) continue;
        const items = splitBatch(bytes);
        for (let i = 0; i < items.length; i++) yield { start: seq + i, entry: items[i] as Uint8Array };
      }
      if (!any && (g + 1) * 1000 > limit) break;
    }
  }

  /** Every stored entry in sequence order (bundles for sealed entries, objects for the tail). */
  async *stored(until = 0): AsyncGenerator<{ seq: number; bytes: Uint8Array }> {
    for await (const seg of this.segments(until)) {
      if (seg.entry !== undefined) yield { seq: seg.start, bytes: seg.entry };
      else if (seg.bundle !== undefined) {
        const bundle = seg.bundle;
        for (let i = 0; i < bundle.starts.length; i++)
          yield { seq: seg.start + i, bytes: bundleItem(bundle, i) };
      }
    }
  }

  /** Entries in order, optionally only those of one run. */
  async *entries(filter: { runId?: string } = {}): AsyncGenerator<AuditEntry> {
    for await (const { seq, bytes } of this.stored()) {
      const parsed = parseEntry(bytes);
      if (!parsed.ok) {
        throw new VeritrailError(
          'AUDIT_CORRUPT',
          `audit entry ${seq} is unreadable; run: veritrail audit verify`,
        );
      }
      if (filter.runId === undefined || parsed.entry.runId === filter.runId) yield parsed.entry;
    }
  }

  entriesOf(runId: string): AsyncGenerator<AuditEntry> {
    return this.entries({ runId });
  }

  /**
   * The batch objects starting in [from, to), in order, each split into its entries: listed, so
   * a batch deleted from the middle leaves a gap instead of hiding the batches after it.
   */
  async *batchesIn(from: number, to: number): AsyncGenerator<{ start: number; items: Uint8Array[] }> {
    const base = this.layout.entriesPrefix;
    for (let g = Math.floor(from / 1000); g * 1000 < to; g++) {
      for await (const o of this.objects.list(this.layout.entryGroupPrefix(g))) {
        const digits = o.key.slice(base.length).replaceAll('/', '');
        if (!/^\d{15}$/.test(digits)) continue;
        const start = Number(digits);
        if (start < from || start >= to) continue;
        const b = await this.objects.read(o.key);
        if (b !== undefined) yield { start, items: splitBatch(b) };
      }
    }
  }

  /** The stored batch copies of entries [256·t, end) (undefined where none), end ≤ 256·(t+1). */
  async tileEntries(t: number, end: number): Promise<(Uint8Array | undefined)[]> {
    const from = t * TILE_WIDTH;
    const out: (Uint8Array | undefined)[] = new Array(Math.max(0, end - from)).fill(undefined);
    for await (const { start, items } of this.batchesIn(from, end)) {
      for (let i = 0; i < items.length && start + i < end; i++) out[start + i - from] ??= items[i];
    }
    return out;
  }

  private proofNodes: NodeReader | undefined;

  /**
   * The node reader proofs at `size` use, kept between calls: a tree of a given size never
   * changes (every tile and entry is WORM), so successive proofs against one checkpoint, as
   * `veritrail verify <runId>` makes them, read each tile once.
   */
  private proofReader(size: number): NodeReader {
    if (this.proofNodes?.treeSize !== size) this.proofNodes = this.nodes(size);
    return this.proofNodes;
  }

  /** Perfect-subtree hashes of the tree of `size` leaves, from tiles where they exist. */
  nodes(size: number): NodeReader {
    return new NodeReader(
      size,
      (k) => this.objects.read(this.layout.key(k)),
      (t, end) => this.tileEntries(t, end),
    );
  }

  /**
   * A self-contained proof that entry `seq` is in the log: the entry, its inclusion proof and the
   * signed checkpoint it leads to (the latest one covering `seq`, made now if none does).
   */
  async prove(seq: number, options: { checkpointSize?: number } = {}): Promise<ProofBundle> {
    const trusted = await this.trusted();
    let cp: SignedCheckpoint | undefined;
    if (options.checkpointSize !== undefined) {
      cp = await this.readCheckpoint(options.checkpointSize, trusted.publicKeyPem);
      if (cp === undefined)
        throw new VeritrailError('OBJECT_NOT_FOUND', `no checkpoint at size ${options.checkpointSize}`);
    } else {
      cp = await this.latestCheckpoint();
      if (cp === undefined || cp.size <= seq) cp = await this.checkpoint();
    }
    if (!Number.isSafeInteger(seq) || seq < 0 || seq >= cp.size) {
      throw new VeritrailError(
        'USAGE',
        `entry ${seq} is not in the log (size ${cp.size}); pick 0..${cp.size - 1}`,
      );
    }
    const found = await this.readEntry(seq);
    const proof = await inclusionProof(seq, cp.size, this.proofReader(cp.size).hash);
    return {
      mediaType: PROOF_MEDIA_TYPE,
      origin: this.origin,
      keyId: this.key().keyId,
      publicKeyPem: trusted.publicKeyPem,
      entry: found.entry,
      leafIndex: seq,
      treeSize: cp.size,
      inclusionProof: proof.map((h) => Buffer.from(h).toString('base64')),
      checkpoint: cp.note,
    };
  }

  /** RFC 9162 consistency proof between two sizes of this log (base64 hashes). */
  async proveConsistency(size1: number, size2: number): Promise<string[]> {
    const proof = await consistencyProof(size1, size2, this.proofReader(size2).hash);
    return proof.map((h) => Buffer.from(h).toString('base64'));
  }

  /** Full and partial hash tiles stored for tile `group` of tile level `level` (≥ 1). */
  async hashTiles(
    level: number,
    group: number,
  ): Promise<{ key: string; width: number; bytes: Uint8Array }[]> {
    const out: { key: string; width: number; bytes: Uint8Array }[] = [];
    const fullKey = this.layout.hashTileKey(level, group);
    const full = await this.objects.read(fullKey);
    if (full !== undefined) out.push({ key: fullKey, width: TILE_WIDTH, bytes: full });
    const partials = this.layout.partialTilesPrefix(level, group);
    for await (const o of this.objects.list(partials)) {
      const width = Number(o.key.slice(partials.length));
      if (!Number.isInteger(width) || width < 1 || width >= TILE_WIDTH) continue;
      const bytes = await this.objects.read(o.key);
      if (bytes !== undefined) out.push({ key: o.key, width, bytes });
    }
    return out;
  }
}

/** A stretch of the stored log: one full entry bundle, or one tail entry. */
export interface Segment {
  start: number;
  bundle?: { index: number; buf: Buffer; starts: Uint32Array; lens: Uint32Array };
  tile?: Uint8Array;
  entry?: Uint8Array;
}

/** Entry `i` of a decoded bundle (its framing may since have been overwritten by hashing). */
export function bundleItem(b: { buf: Buffer; starts: Uint32Array; lens: Uint32Array }, i: number): Buffer {
  const at = b.starts[i] as number;
  return b.buf.subarray(at + 2, at + 2 + (b.lens[i] as number));
}

/**
 * Perfect-subtree hashes from the hash tiles (full, or the partial one of the width this tree
 * size implies), computed from the level below when a tile is missing, down to the entries.
 */
export class NodeReader {
  private readonly tiles = new Map<string, Uint8Array[] | null>();
  private readonly tails = new Map<number, Promise<(Uint8Array | undefined)[]>>();

  constructor(
    readonly treeSize: number,
    private readonly readKey: (key: string) => Promise<Uint8Array | undefined>,
    private readonly readTile: (t: number, end: number) => Promise<(Uint8Array | undefined)[]>,
  ) {}

  readonly hash = (level: number, index: number): Promise<Uint8Array> => this.node(level, index);

  private async tile(level: number, index: number, need: number): Promise<Uint8Array[] | undefined> {
    const id = `${level}/${index}`;
    const cached = this.tiles.get(id);
    if (cached !== undefined) return cached !== null && cached.length >= need ? cached : undefined;
    let hashes: Uint8Array[] | undefined;
    const full = await this.readKey(hashTilePath(level, index));
    if (full !== undefined) hashes = decodeHashTile(full);
    if (hashes === undefined && level > 0) {
      const complete = Math.floor(this.treeSize / TILE_WIDTH ** level);
      const width = Math.min(TILE_WIDTH, complete - index * TILE_WIDTH);
      if (width >= 1 && width < TILE_WIDTH) {
        const partial = await this.readKey(hashTilePath(level, index, width));
        if (partial !== undefined) hashes = decodeHashTile(partial);
      }
    }
    this.tiles.set(id, hashes ?? null);
    return hashes !== undefined && hashes.length >= need ? hashes : undefined;
  }

  /**
   * A leaf not covered by a hash tile (the tail of the log): the entries of its tile-sized group
   * up to the tree size are read together, in parallel, and hashed once.
   */
  private async tailLeaf(index: number): Promise<Uint8Array> {
    const group = Math.floor(index / TILE_WIDTH);
    let leaves = this.tails.get(group);
    if (leaves === undefined) {
      const start = group * TILE_WIDTH;
      const end = Math.min(this.treeSize, start + TILE_WIDTH);
      leaves = this.readTile(group, end).then((items) =>
        items.map((bytes) => (bytes === undefined ? undefined : hashLeaf(bytes))),
      );
      this.tails.set(group, leaves);
    }
    const leaf = (await leaves)[index % TILE_WIDTH];
    if (leaf === undefined) {
      throw new VeritrailError(
        'AUDIT_CORRUPT',
        `audit entry ${index} is missing; run: veritrail audit verify`,
      );
    }
    return leaf;
  }

  async node(level: number, index: number): Promise<Uint8Array> {
    if (level % 8 === 0) {
      const tl = level / 8;
      const i = index % TILE_WIDTH;
      const hs = await this.tile(tl, Math.floor(index / TILE_WIDTH), i + 1);
      const h = hs?.[i];
      if (h !== undefined) return h;
      if (level === 0) return this.tailLeaf(index);
    }
    return hashChildren(await this.node(level - 1, index * 2), await this.node(level - 1, index * 2 + 1));
  }
}

/** A reader of the log under `prefix` of `bucket`, checking checkpoints with `publicKey`. */
export function openLogReader(options: {
  store: ObjectStore;
  publicKey: string | KeyObject;
  bucket?: Bucket;
  prefix?: string;
  origin?: string;
}): LogReader {
  return new LogReader({
    objects: new LogObjects(options),
    publicKey: logPublicKey(options.publicKey),
    ...(options.origin === undefined ? {} : { origin: options.origin }),
  });
}
