/**
 * The append-only audit log over the ObjectStore port (S3 with Object Lock on AWS, a folder of
 * read-only files locally). Layout under the prefix (default `log/`) of the `audit` bucket:
 *
 *   entries/000/000/000/001/234   entry 1234: its RFC 8785 bytes (WORM, created only if absent)
 *   events/ab/<sha256(eventId)>   {"eventId","seq"}: the idempotency index (WORM)
 *   tile/<L>/<N>[.p/<W>]          c2sp.org/tlog-tiles hash tiles (WORM, written once)
 *   tile/entries/<N>              c2sp.org/tlog-tiles entry bundles of 256 (WORM)
 *   checkpoints/<size, 15 digits> signed C2SP checkpoints (WORM)
 *   head                          {"size"}: a hint only; every reader checks it
 *
 * Sequencing is a compare-and-set on the store: entry N is put with `ifAbsent`; whoever loses
 * reads the winner and tries N+1, so concurrent appenders get one total order with no gap.
 *
 * Idempotency per eventId, crash-safe: before writing entry N+1, an appender has read entry N
 * and made sure N's idempotency marker exists. So every entry but the last has its marker, and
 * an appender checks the marker after locating the tail and then compares the last entry (and
 * every entry it collides with) by eventId. A crash between an entry and its marker thus never
 * lets the same event in twice.
 */
import {
  entryBytes,
  eventProblem,
  MAX_ENTRY_BYTES,
  makeEntry,
  parseEntry,
  toHex,
  ZERO_HASH_HEX,
} from '../core/audit-entry.js';
import {
  CheckpointError,
  keyIdOf,
  openCheckpoint,
  parseSignedNote,
  type SignedCheckpoint,
  signCheckpoint,
} from '../core/checkpoint.js';
import { addSignatureLines, verifyCosignatures, type WitnessKey } from '../core/cosignature.js';
import { isVeritrailError, VeritrailError } from '../core/errors.js';
import {
  consistencyProof,
  hashChildren,
  hashLeaf,
  inclusionProof,
  ProofError,
  rootAt,
  rootOf,
  verifyConsistencyProof,
} from '../core/merkle.js';
import {
  decodeEntryBundle,
  decodeHashTile,
  encodeEntryBundle,
  encodeHashTile,
  entryBundlePath,
  hashTilePath,
  TILE_WIDTH,
} from '../core/tiles.js';
import type { AuditEntry, AuditEventInput, AuditLog, Bucket, ObjectStore, Signer } from '../ports.js';
import { type AppenderOptions, BatchAppender } from './appender.js';
import { DEFAULT_ORIGIN, joinBatch, type LogLayout, splitBatch } from './layout.js';
import { LogObjects } from './objects.js';
import { ChainVerifier } from './verify/chain-verifier.js';
import { FastChainCheck } from './verify/fast-chain-check.js';
import { hashTileHere, LeafPool, type TileHashes } from './verify/leaf-pool.js';
import { PROOF_MEDIA_TYPE, type ProofBundle } from './verify/proof.js';
import type { AuditProblem, AuditProblemCode, CheckpointInput, VerifyReport } from './verify/report.js';
import { addCheckpointBody } from './witness/core.js';
import { openWitnessView, type WitnessClient } from './witness/http.js';

export interface AuditLogOptions {
  store: ObjectStore;
  /** Signs checkpoints; needed by `checkpoint`, `prove` and (for its public key) `verify`. */
  signer?: Signer;
  /** The log's identity: first line of every checkpoint and the signature's key name. */
  origin?: string;
  bucket?: Bucket;
  prefix?: string;
  /** WORM retention of every object; default 7 years. */
  retentionDays?: number;
  now?: () => Date;
  /** How appends are pooled into batches (size, age, back-pressure). */
  batching?: AppenderOptions;
  /** Witnesses asked to cosign every checkpoint (c2sp.org/tlog-witness). */
  witnesses?: readonly WitnessClient[];
}

export interface VerifyOptions {
  /** The log key, when only one is trusted (default: the signer's). */
  publicKeyPem?: string;
  /** Every log key an auditor trusts (PEM), old and new across rotations; overrides publicKeyPem. */
  trustedKeys?: readonly string[];
  maxProblems?: number;
  entryObjects?: boolean;
  /** Witnesses whose cosignatures count, and (with `latest`) whose own view is compared. */
  witnesses?: readonly WitnessView[];
  /** Cosignatures the latest checkpoint needs (default 1 when witnesses are given). */
  quorum?: number;
}

export interface WitnessView {
  key: WitnessKey;
  latest?(origin: string): Promise<string | undefined>;
}

/** One witness's answer to a checkpoint. */
export type WitnessOutcome =
  | { witness: string; ok: true; line: string }
  | { witness: string; ok: false; status: number; detail: string };

/** The eventId of a `signing.key-rotated` entry; group 1 is the key it introduces. */
const SIGNING_KEY_EVENT = /^signing\/key-rotated\/(?:none|\d+)\/(sha256:[0-9a-f]{64})$/;

const EVENT_ID_KEY = Buffer.from('"eventId":"');

/**
 * The top-level eventId of an entry's canonical bytes without parsing them: the last `"eventId":"`
 * (RFC 8785 sorts keys, and after `eventId` only `subjects` holds an object, of digests; inside a
 * string the quotes are escaped, so the pattern cannot occur there).
 */
function eventIdOf(bytes: Uint8Array): string | undefined {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const at = b.lastIndexOf(EVENT_ID_KEY);
  if (at < 0) return undefined;
  let end = at + EVENT_ID_KEY.length;
  for (; end < b.length; end++) {
    const c = b[end];
    if (c === 0x5c) end += 1;
    else if (c === 0x22) break;
  }
  try {
    const id: unknown = JSON.parse(b.toString('utf8', at + EVENT_ID_KEY.length - 1, end + 1));
    return typeof id === 'string' ? id : undefined;
  } catch {
    return undefined;
  }
}

export class ObjectAuditLog implements AuditLog {
  readonly origin: string;
  private readonly objects: LogObjects;
  private readonly layout: LogLayout;
  private readonly signer: Signer | undefined;
  private readonly now: () => Date;
  /** A count of entries known to exist: a local lower bound, never trusted without a check. */
  private known = 0;
  private readonly appender: BatchAppender;
  private readonly witnesses: readonly WitnessClient[];
  /** The size each witness last cosigned, as this process knows it (else learnt from a 409). */
  private readonly witnessSizes = new Map<string, number>();

  constructor(options: AuditLogOptions) {
    this.signer = options.signer;
    this.origin = options.origin ?? DEFAULT_ORIGIN;
    this.now = options.now ?? (() => new Date());
    this.objects = new LogObjects({ ...options, now: this.now });
    this.layout = this.objects.layout;
    this.witnesses = options.witnesses ?? [];
    this.appender = new BatchAppender({ sequence: (events) => this.sequence(events) }, options.batching);
  }

  // ───────────── keys and raw access ─────────────

  entryKey(seq: number): string {
    return this.layout.entryKey(seq);
  }

  checkpointKey(size: number): string {
    return this.layout.checkpointKey(size);
  }

  // ───────────── the tail ─────────────

  /**
   * The number of entries: the end of the last batch. Found from the sealed entry bundles
   * (galloping, then a binary search over which exist) and the batches after them.
   */
  async size(): Promise<number> {
    if (this.head === undefined) {
      const sealed = (t: number) => this.objects.exists(this.layout.entryBundleKey(t));
      let full = 0;
      if (await sealed(0)) {
        let step = 1;
        while (await sealed(full + step)) {
          full += step;
          step *= 2;
        }
        let lo = full + 1;
        let hi = full + step;
        while (lo < hi) {
          const mid = Math.floor((lo + hi) / 2);
          if (await sealed(mid)) lo = mid + 1;
          else hi = mid;
        }
        full = lo;
      }
      let leaf = ZERO_HASH_HEX;
      if (full > 0) {
        const b = await this.objects.read(this.layout.entryBundleKey(full - 1));
        const last = b === undefined ? undefined : decodeEntryBundle(b)?.[TILE_WIDTH - 1];
        if (last !== undefined) leaf = toHex(hashLeaf(last));
        else full = 0;
      }
      this.head = { size: full * TILE_WIDTH, leaf };
    }
    return (await this.follow()).size;
  }

  // ───────────── append ─────────────

  /** eventId → seq of every entry up to `head` (loaded from the log on the first append). */
  private index: Map<string, number> | undefined;
  /** The end of the log as this process last saw it, and the hex leaf hash of its last entry. */
  private head: { size: number; leaf: string } | undefined;
  /** Batches this process wrote or read lately, by first sequence number (see `absorb`). */
  private readonly recent = new Map<number, readonly Uint8Array[]>();
  /** Tile seals under way (they lag the appends; `settle` waits for them). */
  private sealing: Promise<void> = Promise.resolve();

  /** Reads batch object `start` (its entries, one per line); undefined when absent. */
  private async readBatch(start: number): Promise<Uint8Array[] | undefined> {
    const b = await this.objects.read(this.layout.entryKey(start));
    return b === undefined ? undefined : splitBatch(b);
  }

  private absorb(start: number, items: readonly Uint8Array[]): void {
    // The batches of the tiles not yet sealed, so the seal need not read back what was just written.
    this.recent.set(start, items);
    if (this.recent.size > 2 * TILE_WIDTH) {
      const keep = (Math.floor(start / TILE_WIDTH) - 1) * TILE_WIDTH;
      for (const k of this.recent.keys()) if (k < keep) this.recent.delete(k);
    }
    const index = this.index;
    if (index !== undefined) {
      for (let i = 0; i < items.length; i++) {
        const id = eventIdOf(items[i] as Uint8Array);
        if (id !== undefined && !index.has(id)) index.set(id, start + i);
      }
    }
    const last = items[items.length - 1];
    if (last !== undefined) this.head = { size: start + items.length, leaf: toHex(hashLeaf(last)) };
    this.known = Math.max(this.known, start + items.length);
  }

  /** Follows the batches written after `head` (by other processes) to the end of the log. */
  private async follow(): Promise<{ size: number; leaf: string }> {
    let head = this.head ?? { size: 0, leaf: ZERO_HASH_HEX };
    for (;;) {
      const items = await this.readBatch(head.size);
      if (items === undefined) return head;
      this.absorb(head.size, items);
      head = this.head ?? head;
    }
  }

  /**
   * Builds the idempotency index from the whole log (sealed bundles, then the batches after
   * them): once per process, on its first append. Later batches by other processes are learnt
   * when a conditional write loses to them, so the index never misses an entry below the
   * position this process writes at.
   */
  private async loadIndex(): Promise<void> {
    if (this.index !== undefined) return;
    this.index = new Map();
    this.head = { size: 0, leaf: ZERO_HASH_HEX };
    let next = this.objects.read(this.layout.entryBundleKey(0));
    for (let t = 0; ; t++) {
      const b = await next;
      const items = b === undefined ? undefined : decodeEntryBundle(b);
      if (items === undefined || items.length !== TILE_WIDTH) break;
      next = this.objects.read(this.layout.entryBundleKey(t + 1));
      this.absorb(t * TILE_WIDTH, items);
    }
    await this.follow();
  }

  /** The entry stored at `seq` (sealed copy first), for an event appended before. */
  private async entryOf(seq: number): Promise<AuditEntry> {
    return (await this.readEntry(seq)).entry;
  }

  /**
   * One batch, one conditional write: the entries of `events` not yet in the log, chained from
   * the end of the log, are put as one object at the key of the first one's sequence number,
   * created only if absent. Whoever loses reads the winner's batch, learns its events and tries
   * again after it. A batch never crosses a 256-entry tile boundary, so each entry bundle is made
   * of whole batches.
   */
  private async sequence(events: readonly AuditEventInput[]): Promise<(AuditEntry | Error)[]> {
    await this.loadIndex();
    for (;;) {
      const head = this.head ?? { size: 0, leaf: ZERO_HASH_HEX };
      const index = this.index as Map<string, number>;
      const room = TILE_WIDTH - (head.size % TILE_WIDTH);
      const now = this.now();
      const fresh: AuditEntry[] = [];
      const bytes: Uint8Array[] = [];
      const taken: (AuditEntry | Error | number)[] = [];
      const inBatch = new Map<string, AuditEntry>();
      let prev = head.leaf;
      for (const event of events) {
        const before = index.get(event.eventId);
        if (before !== undefined) {
          taken.push(before);
          continue;
        }
        const same = inBatch.get(event.eventId);
        if (same !== undefined) {
          taken.push(same);
          continue;
        }
        if (fresh.length === room) break;
        const entry = makeEntry(event, head.size + fresh.length, now, prev);
        const b = entryBytes(entry);
        if (b.length > MAX_ENTRY_BYTES) {
          taken.push(
            new VeritrailError(
              'EVENT_INVALID',
              `audit event is ${b.length} bytes; keep "detail" small (< 64 KiB)`,
            ),
          );
          continue;
        }
        prev = toHex(hashLeaf(b));
        fresh.push(entry);
        bytes.push(b);
        inBatch.set(event.eventId, entry);
        taken.push(entry);
      }
      if (
        fresh.length > 0 &&
        !(await this.objects.putOnce(this.layout.entryKey(head.size), joinBatch(bytes)))
      ) {
        // Lost the race for this position: learn the winner's batch and chain after it.
        const winner = await this.readBatch(head.size);
        if (winner === undefined)
          throw new VeritrailError('TRANSIENT', `audit batch ${head.size} is not readable yet; retry`);
        this.absorb(head.size, winner);
        continue;
      }
      if (fresh.length > 0) {
        this.absorb(head.size, bytes);
        const end = head.size + fresh.length;
        if (end % TILE_WIDTH === 0) {
          // Integration lags the appends: tiles only speed reading up, and the next checkpoint
          // repairs a seal lost to a crash.
          this.sealing = this.sealing.then(() => this.sealTiles(end).catch(() => undefined));
        }
      }
      return Promise.all(taken.map((t) => (typeof t === 'number' ? this.entryOf(t) : t)));
    }
  }

  /**
   * Appends an event; resolves once the entry is durable (fsynced / acknowledged by S3). The same
   * eventId appended again returns the first entry and adds nothing. Concurrent appends of this
   * process travel together in batches (see appender.ts).
   */
  async append(event: AuditEventInput): Promise<AuditEntry> {
    const problem = eventProblem(event);
    if (problem !== undefined) {
      throw new VeritrailError('EVENT_INVALID', `audit event rejected: ${problem}`, { details: { problem } });
    }
    return this.appender.append(event);
  }

  /** Waits for the tile seals that appends started (integration runs behind the appends). */
  async settle(): Promise<void> {
    await this.sealing;
  }

  // ───────────── batches ─────────────

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

  // ───────────── tiles ─────────────

  /** Entries of full tile `t` from the batches in memory, when they cover all of it (and are dropped). */
  private recentTile(t: number): (Uint8Array | undefined)[] | undefined {
    const out: Uint8Array[] = [];
    const used: number[] = [];
    for (let s = t * TILE_WIDTH; s < (t + 1) * TILE_WIDTH; ) {
      const items = this.recent.get(s);
      if (items === undefined || items.length === 0) return undefined;
      out.push(...items);
      used.push(s);
      s += items.length;
    }
    if (out.length !== TILE_WIDTH) return undefined;
    for (const s of used) this.recent.delete(s);
    return out;
  }

  /** Writes the entry bundle and hash tiles completed when the log reached `size` (a multiple of 256). */
  async sealTiles(size: number): Promise<void> {
    const t = size / TILE_WIDTH - 1;
    if (!Number.isInteger(t) || t < 0) return;
    // A sealed tile implies every tile before it is sealed (the checkpoint's repair relies on it):
    // a seal lost when its process was killed is made here by whoever seals the next tile.
    if (t > 0 && !(await this.sealed(t - 1))) await this.sealTiles(t * TILE_WIDTH);
    const entries = this.recentTile(t) ?? (await this.tileEntries(t, size));
    if (entries.some((e) => e === undefined)) return;
    const leaves = (entries as Uint8Array[]).map((e) => hashLeaf(e));
    await Promise.all([
      this.objects.putOnce(this.layout.entryBundleKey(t), encodeEntryBundle(entries as Uint8Array[])),
      this.objects.putOnce(this.layout.hashTileKey(0, t), encodeHashTile(leaves)),
    ]);
    // Each tile above is the one written at the previous seal plus one hash: the root of the
    // tile just completed below it. Read that one tile instead of recomputing the level.
    let below = leaves;
    let level = 1;
    let idx = t;
    for (;;) {
      const parent = Math.floor(idx / TILE_WIDTH);
      const width = (idx % TILE_WIDTH) + 1;
      let hashes: Uint8Array[] | undefined;
      if (width === 1) hashes = [];
      else {
        const prev = await this.objects.read(this.layout.hashTileKey(level, parent, width - 1));
        hashes = prev === undefined ? undefined : decodeHashTile(prev);
        if (hashes?.length !== width - 1) hashes = undefined;
      }
      if (hashes === undefined) {
        // The previous partial tile is missing (a seal lost to a crash): from the levels below.
        const nodes = this.nodes(size);
        hashes = [];
        for (let i = 0; i < width - 1; i++) hashes.push(await nodes.node(level * 8, parent * TILE_WIDTH + i));
      }
      hashes.push(rootOf(below));
      await this.objects.putOnce(this.layout.hashTileKey(level, parent, width), encodeHashTile(hashes));
      if (width < TILE_WIDTH) break;
      below = hashes;
      idx = parent;
      level += 1;
    }
  }

  /** Tile `t` is sealed: its entry bundle and its level-0 hash tile are both stored. */
  private async sealed(t: number): Promise<boolean> {
    return (
      (await this.objects.exists(this.layout.entryBundleKey(t))) &&
      (await this.objects.exists(this.layout.hashTileKey(0, t)))
    );
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

  // ───────────── checkpoints ─────────────

  private requireSigner(): Signer {
    if (this.signer === undefined) {
      throw new VeritrailError(
        'USAGE',
        'this audit log was opened without a signer; checkpoints need the audit key',
      );
    }
    return this.signer;
  }

  private async trusted(publicKeyPem?: string): Promise<{ name: string; publicKeyPem: string }> {
    return { name: this.origin, publicKeyPem: publicKeyPem ?? (await this.requireSigner().publicKeyPem()) };
  }

  /**
   * Signs and stores (WORM) a checkpoint of the whole log as it is now, after asking the
   * configured witnesses to cosign it (their cosignatures are stored in the note). Also writes
   * what c2sp.org/tlog-tiles requires for a client that reads only tiles: the partial level-0 tile
   * and partial entry bundle of the last, incomplete tile, and `<prefix>checkpoint`.
   */
  async checkpoint(): Promise<SignedCheckpoint & { treeSize: number; witnessed: WitnessOutcome[] }> {
    return this.makeCheckpoint();
  }

  private async makeCheckpoint(): Promise<
    SignedCheckpoint & { treeSize: number; witnessed: WitnessOutcome[] }
  > {
    const signer = this.requireSigner();
    const trusted = await this.trusted();
    await this.recordKeyRotation(trusted.publicKeyPem);
    await this.sealing;
    const size = await this.size();
    const stored = await this.readCheckpoint(size, trusted.publicKeyPem);
    if (stored !== undefined) return { ...stored, treeSize: size, witnessed: [] };
    // Repair tile seals lost to a crash (integration runs behind the appends), oldest first.
    const lost: number[] = [];
    for (let t = Math.floor(size / TILE_WIDTH) - 1; t >= 0; t--) {
      if (await this.sealed(t)) break;
      lost.unshift(t);
    }
    for (const t of lost) await this.sealTiles((t + 1) * TILE_WIDTH).catch(() => undefined);
    await this.writePartials(size);
    const root = await rootAt(size, this.nodes(size).hash);
    let signed = await signCheckpoint(
      { origin: this.origin, size, root, extensions: [] },
      { name: this.origin, publicKeyPem: trusted.publicKeyPem, sign: (m) => signer.sign(m) },
    );
    const witnessed = await this.askWitnesses(signed);
    const lines = witnessed.flatMap((w) => (w.ok ? [w.line] : []));
    if (lines.length > 0) signed = { ...signed, note: addSignatureLines(signed.note, lines) };
    if (
      !(await this.objects.putOnce(this.layout.checkpointKey(size), new TextEncoder().encode(signed.note)))
    ) {
      const other = await this.readCheckpoint(size, trusted.publicKeyPem);
      if (other !== undefined) return { ...other, treeSize: size, witnessed };
    }
    await this.objects.put(this.layout.checkpointObjectKey, new TextEncoder().encode(signed.note));
    await this.objects.writeHint(size);
    return { ...signed, treeSize: size, witnessed };
  }

  /** tlog-tiles partial level-0 tile and partial entry bundle for a size that is not a multiple of 256. */
  private async writePartials(size: number): Promise<void> {
    const t = Math.floor(size / TILE_WIDTH);
    const w = size % TILE_WIDTH;
    if (w === 0) return;
    const entries = await this.tileEntries(t, size);
    if (entries.some((e) => e === undefined)) return;
    const items = entries as Uint8Array[];
    await this.objects.putOnce(this.layout.entryBundleKey(t, w), encodeEntryBundle(items));
    await this.objects.putOnce(
      this.layout.hashTileKey(0, t, w),
      encodeHashTile(items.map((e) => hashLeaf(e))),
    );
  }

  /** What each witness said: `line` is its cosignature, else why not. */
  private async askWitnesses(signed: SignedCheckpoint): Promise<WitnessOutcome[]> {
    return Promise.all(
      this.witnesses.map(async (w): Promise<WitnessOutcome> => {
        const name = w.key.name;
        let old = this.witnessSizes.get(name) ?? 0;
        try {
          for (let attempt = 0; attempt < 3; attempt++) {
            if (old > signed.size) {
              return {
                witness: name,
                ok: false,
                status: 409,
                detail: `the witness has seen size ${old}, larger than this log's ${signed.size}: the log was truncated or rolled back`,
              };
            }
            const proof =
              old === 0 || old === signed.size
                ? []
                : await consistencyProof(old, signed.size, this.nodes(signed.size).hash);
            const r = await w.submit(addCheckpointBody(old, proof, signed.note));
            if (r.status === 409 && /^\d+\n?$/.test(r.body)) {
              old = Number(r.body.trim());
              continue;
            }
            if (r.status !== 200)
              return { witness: name, ok: false, status: r.status, detail: r.body.trim() };
            const line = r.body.split('\n').find((l) => l.startsWith(`\u2014 ${name} `));
            if (
              line === undefined ||
              verifyCosignatures(addSignatureLines(signed.note, [line]), [w.key]).length !== 1
            ) {
              return {
                witness: name,
                ok: false,
                status: r.status,
                detail: 'the answer carries no valid cosignature',
              };
            }
            this.witnessSizes.set(name, signed.size);
            return { witness: name, ok: true, line };
          }
          return { witness: name, ok: false, status: 409, detail: 'the witness kept changing its size' };
        } catch (e) {
          return { witness: name, ok: false, status: 0, detail: e instanceof Error ? e.message : String(e) };
        }
      }),
    );
  }

  /**
   * Key rotation is recorded in the log itself: when the checkpoint key differs from the key that
   * signed the latest stored checkpoint, an `audit.key-rotated` entry names both key IDs before
   * the first checkpoint under the new key.
   */
  private async recordKeyRotation(publicKeyPem: string): Promise<void> {
    let last: number | undefined;
    for await (const s of this.checkpointSizes()) last = s;
    if (last === undefined) return;
    const b = await this.objects.read(this.layout.checkpointKey(last));
    if (b === undefined) return;
    let previous: string | undefined;
    try {
      const sig = parseSignedNote(Buffer.from(b).toString('utf8')).signatures.find(
        (x) => x.name === this.origin,
      );
      previous = sig === undefined ? undefined : Buffer.from(sig.keyId).toString('hex');
    } catch {
      return;
    }
    const current = Buffer.from(keyIdOf(publicKeyPem)).toString('hex');
    if (previous === undefined || previous === current) return;
    await this.append({
      eventId: `audit/key-rotated/${previous}/${current}`,
      pipeline: '-',
      runId: '-',
      step: 'audit',
      type: 'audit.key-rotated',
      outcome: 'info',
      actor: 'veritrail',
      detail: { fromKeyId: previous, toKeyId: current, publicKeyPem },
    });
  }

  /**
   * Signing-key rotation is recorded in the log too. The key history is the chain of
   * `signing/key-rotated/<seq of the previous record>/<keyId>` events, found through the
   * idempotency index (no scan beyond what the first append of a process reads anyway): when the
   * latest one names another key, a `signing.key-rotated` entry names both and the new public key.
   * Concurrent processes noting the same change derive the same eventId, so one entry is written;
   * a key that comes back after another is recorded again, since the previous record differs.
   */
  async noteSigningKey(keyId: string, publicKeyPem: string): Promise<void> {
    await this.loadIndex();
    const index = this.index as Map<string, number>;
    let latest: { seq: number; keyId: string } | undefined;
    for (const [eventId, seq] of index) {
      const m = SIGNING_KEY_EVENT.exec(eventId);
      if (m?.[1] !== undefined && (latest === undefined || seq > latest.seq)) latest = { seq, keyId: m[1] };
    }
    if (latest?.keyId === keyId) return;
    await this.append({
      eventId: `signing/key-rotated/${latest?.seq ?? 'none'}/${keyId}`,
      pipeline: '-',
      runId: '-',
      step: 'signing',
      type: 'signing.key-rotated',
      outcome: 'info',
      actor: 'veritrail',
      detail: { ...(latest ? { fromKeyId: latest.keyId } : {}), toKeyId: keyId, publicKeyPem },
    });
  }

  private async readCheckpoint(size: number, publicKeyPem: string): Promise<SignedCheckpoint | undefined> {
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
   * does. Checkpoint signatures are checked with `trustedKeys` (default: the signer's key). That
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

  // ───────────── proofs ─────────────

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
      keyId: this.requireSigner().keyId,
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

  // ───────────── reading ─────────────

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
   * Re-derives the chain and the tree from the stored entries, checks every checkpoint's
   * signature and root, the RFC 9162 §2.1.4 consistency of each checkpoint with the one before,
   * every hash tile against recomputed hashes, and (unless `entryObjects: false`) every sealed
   * entry object against its bundle; names each problem by sequence number. Streams: memory is
   * bounded by the number of checkpoints, not of entries.
   *
   * A fast lane hashes the log without parsing it; only when it meets an anomaly is the log
   * walked again by `ChainVerifier`, which parses every entry to name each problem.
   */
  async verify(options: VerifyOptions = {}): Promise<VerifyReport> {
    const keys =
      options.trustedKeys !== undefined && options.trustedKeys.length > 0
        ? options.trustedKeys
        : [(await this.trusted(options.publicKeyPem)).publicKeyPem];
    const open = (note: string): SignedCheckpoint => {
      let first: unknown;
      for (const publicKeyPem of keys) {
        try {
          return openCheckpoint(note, { name: this.origin, publicKeyPem });
        } catch (e) {
          if (e instanceof CheckpointError && e.code === 'CHECKPOINT_SIGNATURE_INVALID') throw e;
          first ??= e;
        }
      }
      throw first;
    };
    const checkpoints: CheckpointInput[] = [];
    for await (const size of this.checkpointSizes()) {
      const b = await this.objects.read(this.layout.checkpointKey(size));
      if (b === undefined) continue;
      try {
        checkpoints.push({ size, checkpoint: open(Buffer.from(b).toString('utf8')) });
      } catch (e) {
        checkpoints.push({
          size,
          error: e instanceof CheckpointError ? `${e.code}: ${e.message}` : String(e),
        });
      }
    }
    const maxSize = checkpoints.reduce((m, c) => Math.max(m, c.size), 0);
    const entryObjects = options.entryObjects !== false;

    let judge = new ChainVerifier(options.maxProblems);
    let tiles = new TileAudit(this);
    const fast = new FastChainCheck(checkpoints, tiles.onNode);
    const clean = await this.walk(maxSize, entryObjects, judge, tiles, {
      entry: (seq, bytes, leaf) => fast.push(seq, bytes, leaf),
      tile: (start, hashes, entry) => fast.pushTile(start, hashes, entry),
    });
    if (clean && fast.finish()) {
      judge.absorbClean(fast.size, checkpoints.length);
    } else {
      judge = new ChainVerifier(options.maxProblems, (l, i, h) => tiles.onNode(l, i, h));
      tiles = new TileAudit(this);
      for (const c of checkpoints) judge.addCheckpoint(c);
      const slow = judge;
      await this.walk(maxSize, entryObjects, judge, tiles, {
        entry: (seq, bytes, leaf) => {
          slow.push(seq, bytes, leaf);
          return true;
        },
        tile: (start, hashes, entry) => {
          // A copy of each leaf hash: the judge keeps them, and the tile's memory is reused.
          for (let i = 0; i < TILE_WIDTH; i++)
            slow.push(start + i, entry(i), hashes.leaves.slice(i * 32, i * 32 + 32));
          return true;
        },
      });
    }
    await tiles.finish();
    judge.settle();
    tiles.reportTo(judge);
    await this.checkConsistency(checkpoints, judge);
    const report = judge.finish();
    const missing = await this.checkTilesPresent(checkpoints, report);
    if (missing.length > 0) {
      report.problems.push(...missing);
      report.problems.sort((a, b) => a.seq - b.seq);
      report.ok = false;
    }
    if (options.trustedKeys !== undefined)
      report.trustedKeys = keys.map((k) => Buffer.from(keyIdOf(k)).toString('hex'));
    if (options.witnesses !== undefined && options.witnesses.length > 0) {
      await this.checkWitnesses(checkpoints, options.witnesses, options.quorum ?? 1, report);
    }
    return report;
  }

  /**
   * Invariant 10: the latest checkpoint must carry `quorum` cosignatures from the given witnesses,
   * and no witness may have cosigned a larger size (truncation, rollback) or another root at a
   * size this log holds (fork).
   */
  private async checkWitnesses(
    checkpoints: readonly CheckpointInput[],
    witnesses: readonly WitnessView[],
    quorum: number,
    report: VerifyReport,
  ): Promise<void> {
    const problems: AuditProblem[] = [];
    let latest: SignedCheckpoint | undefined;
    for (const c of checkpoints)
      if (c.checkpoint !== undefined && c.checkpoint.size === c.size) latest = c.checkpoint;
    const size = latest?.size ?? 0;
    let cosigned: string[] = [];
    if (latest !== undefined) {
      try {
        cosigned = verifyCosignatures(
          latest.note,
          witnesses.map((w) => w.key),
        ).map((c) => c.witness);
      } catch (e) {
        problems.push({
          seq: Math.max(0, size - 1),
          code: 'CHECKPOINT_FORGED',
          detail: e instanceof Error ? e.message : String(e),
        });
      }
    }
    report.witnesses = witnesses.map((w) => ({
      witness: w.key.name,
      cosigned: cosigned.includes(w.key.name),
    }));
    if (cosigned.length < quorum) {
      problems.push({
        seq: Math.max(0, size - 1),
        code: 'WITNESS_QUORUM_MISSING',
        detail: `the latest checkpoint (size ${size}) carries ${cosigned.length} of the ${quorum} witness cosignatures required`,
      });
    }
    for (const [i, w] of witnesses.entries()) {
      if (w.latest === undefined) continue;
      const note = await w.latest(this.origin);
      if (note === undefined) continue;
      let view: { size: number; root: Uint8Array };
      try {
        view = openWitnessView(note, w.key);
      } catch (e) {
        problems.push({
          seq: Math.max(0, size - 1),
          code: 'CHECKPOINT_FORGED',
          detail: `witness ${w.key.name}: ${e instanceof Error ? e.message : String(e)}`,
        });
        continue;
      }
      const entry = report.witnesses[i];
      if (entry !== undefined) entry.witnessSize = view.size;
      if (view.size > size) {
        problems.push({
          seq: view.size - 1,
          code: 'LOG_ROLLED_BACK',
          detail: `witness ${w.key.name} cosigned size ${view.size}, but the log's latest checkpoint is at ${size}: entries were truncated or the state was rolled back`,
        });
        continue;
      }
      let root: Uint8Array | undefined;
      try {
        root = await rootAt(view.size, this.nodes(size).hash);
      } catch {
        root = undefined;
      }
      if (root === undefined || !Buffer.from(root).equals(view.root)) {
        problems.push({
          seq: Math.max(0, view.size - 1),
          code: 'LOG_FORKED',
          detail: `witness ${w.key.name} cosigned another root at size ${view.size}: this log is a fork of the one it saw`,
        });
      }
    }
    if (problems.length > 0) {
      report.problems.push(...problems);
      report.ok = false;
    }
  }

  /**
   * Streams the log into `push` (false stops the walk: the fast lane gave up). Checks level-0
   * tiles and sealed entry objects against each bundle on the way; returns whether it finished.
   */
  private async walk(
    until: number,
    entryObjects: boolean,
    judge: ChainVerifier,
    tiles: TileAudit,
    sink: {
      entry(seq: number, bytes: Uint8Array, leaf: Uint8Array): boolean;
      tile(start: number, hashes: TileHashes, entry: (i: number) => Uint8Array): boolean;
    },
  ): Promise<boolean> {
    // Bundles are hashed ahead on worker threads once the log is big enough to pay for them
    // (~30 ms to start); the tree here then takes one hash per 256 entries. Once they run,
    // bundles are read straight into the pool's shared memory.
    let pool: LeafPool | undefined;
    const it = this.segments(until, (size) => pool?.take(size))[Symbol.asyncIterator]();
    const ahead: { seg: Segment; hashed?: Promise<TileHashes | undefined> }[] = [];
    let bundles = 0;
    let done = false;
    try {
      for (;;) {
        while (!done && ahead.length < LOOKAHEAD) {
          const r = await it.next();
          if (r.done === true) {
            done = true;
            break;
          }
          const seg = r.value;
          let b = seg.bundle;
          if (b === undefined) {
            ahead.push({ seg });
            break;
          }
          bundles += 1;
          if (pool === undefined && bundles === POOL_AFTER_BUNDLES) pool = startPool();
          // Once workers run, this thread only reads, checks and folds (measured faster than taking
          // a share of the hashing: its per-bundle work would hold the workers up). A bundle read
          // before they started is copied into shared memory.
          const workers = pool;
          const slot = workers === undefined || workers.owns(b.buf) ? undefined : workers.take(b.buf.length);
          if (slot !== undefined) {
            slot.set(b.buf);
            b = { ...b, buf: slot };
            seg.bundle = b;
          }
          if (workers === undefined || !workers.owns(b.buf)) {
            ahead.push({ seg });
          } else {
            ahead.push({
              seg,
              hashed: workers.hash(b.buf, b.starts, b.lens, seg.start).catch(() => undefined),
            });
          }
        }
        const next = ahead.shift();
        if (next === undefined) return true;
        const seg = next.seg;
        if (seg.entry !== undefined) {
          if (!sink.entry(seg.start, seg.entry, hashLeaf(seg.entry))) return false;
          continue;
        }
        if (seg.bundle === undefined) continue;
        const objects = entryObjects ? this.readObjects(seg.start) : undefined;
        const bundle = seg.bundle;
        let hashes: TileHashes;
        if (next.hashed !== undefined) {
          const hashed = await next.hashed;
          // A worker that died midway leaves the bundle unchecked: not the log's fault, so stop.
          if (hashed === undefined)
            throw new VeritrailError('TRANSIENT', 'a verification worker failed; retry');
          hashes = hashed;
        } else hashes = hashTileHere(bundle.buf, bundle.starts, bundle.lens, seg.start);
        // The bundle and its hashes may be in a pool slot, reused once released below: what the
        // sink and the checks keep, they copy.
        if (!sink.tile(seg.start, hashes, (i) => bundleItem(bundle, i))) return false;
        if (seg.tile !== undefined) this.checkLeafTile(seg.start, hashes.leaves, seg.tile, tiles);
        if (objects !== undefined) this.checkObjects(seg.start, bundle, await objects, judge);
        pool?.release(bundle.buf);
        await tiles.drain();
      }
    } finally {
      if (!done) await it.return?.(undefined);
      await pool?.close();
    }
  }

  private checkLeafTile(start: number, leaves: Uint8Array, tile: Uint8Array, tiles: TileAudit): void {
    if (Buffer.from(leaves.buffer, leaves.byteOffset, leaves.byteLength).equals(tile)) return;
    for (let i = 0; i < TILE_WIDTH; i++) {
      const a = Buffer.from(leaves.buffer, leaves.byteOffset + i * 32, 32);
      if (tile.length !== TILE_WIDTH * 32 || !a.equals(tile.subarray(i * 32, i * 32 + 32))) {
        tiles.suspect(
          start + i,
          1,
          `the hash tile's leaf hash for entry ${start + i} is not the hash of the entry`,
        );
      }
    }
  }

  private checkObjects(
    start: number,
    bundle: NonNullable<Segment['bundle']>,
    got: (Uint8Array | undefined)[],
    judge: ChainVerifier,
  ): void {
    for (let i = 0; i < got.length; i++) {
      const seq = start + i;
      const o = got[i];
      if (o === undefined) {
        judge.note(
          seq,
          'ENTRY_MISSING',
          `entry object ${seq} was deleted (its copy in entry bundle ${bundle.index} remains)`,
        );
      } else if (!Buffer.from(o.buffer, o.byteOffset, o.byteLength).equals(bundleItem(bundle, i))) {
        judge.note(
          seq,
          'ENTRY_ALTERED',
          `entry object ${seq} differs from its sealed copy in entry bundle ${bundle.index}`,
        );
      }
    }
  }

  private readObjects(start: number): Promise<(Uint8Array | undefined)[]> {
    return this.tileEntries(start / TILE_WIDTH, start + TILE_WIDTH);
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

  /**
   * Every object c2sp.org/tlog-tiles requires for the latest validly signed checkpoint must exist:
   * the full entry bundles and hash tiles below its size (every checkpoint repairs the seals
   * first), the partial ones of its own size, and `checkpoint`. Tiles beyond it may still be
   * on their way (integration lags the appends) and are not required.
   */
  private async checkTilesPresent(
    checkpoints: readonly CheckpointInput[],
    report: VerifyReport,
  ): Promise<AuditProblem[]> {
    // The latest checkpoint that is the log's own: a validly signed root of another history is
    // CHECKPOINT_INCONSISTENT already, and this log never wrote tiles for it.
    const foreign = new Set(
      report.problems.filter((p) => p.code.startsWith('CHECKPOINT_')).map((p) => p.seq + 1),
    );
    let size = 0;
    for (const c of checkpoints) {
      if (c.checkpoint !== undefined && c.checkpoint.size === c.size && !foreign.has(c.size))
        size = Math.max(size, c.size);
    }
    const problems: AuditProblem[] = [];
    if (size === 0) return problems;
    const present = new Set<string>();
    for await (const o of this.objects.list(this.layout.tilesPrefix))
      present.add(o.key.slice(this.layout.prefix.length));
    const missing = (path: string, seq: number, what: string) => {
      if (!present.has(path))
        problems.push({ seq, code: 'TILE_MISSING', detail: `${what} ${path} is missing` });
    };
    for (let level = 0; TILE_WIDTH ** level <= size; level++) {
      const span = TILE_WIDTH ** level;
      const nodes = Math.floor(size / span);
      for (let n = 0; n * TILE_WIDTH < nodes; n++) {
        const w = Math.min(TILE_WIDTH, nodes - n * TILE_WIDTH);
        missing(hashTilePath(level, n, w), n * TILE_WIDTH * span, 'hash tile');
        if (level === 0) missing(entryBundlePath(n, w), n * TILE_WIDTH, 'entry bundle');
      }
    }
    if (!(await this.objects.exists(this.layout.checkpointObjectKey))) {
      problems.push({
        seq: size - 1,
        code: 'TILE_MISSING',
        detail: 'the latest checkpoint object `checkpoint` is missing',
      });
    }
    return problems;
  }

  /**
   * RFC 9162 §2.1.4: each validly signed checkpoint must extend the one before. The proof comes
   * from the stored tiles; a failure that a tile problem explains is left to that problem, and
   * one that missing entries prevent from being made is left to ENTRY_MISSING.
   */
  private async checkConsistency(
    checkpoints: readonly CheckpointInput[],
    judge: ChainVerifier,
  ): Promise<void> {
    let before: SignedCheckpoint | undefined;
    const failures: [number, number, string][] = [];
    for (const c of checkpoints) {
      const cp = c.checkpoint;
      if (cp === undefined || cp.size !== c.size) continue;
      if (before !== undefined && before.size > 0) {
        try {
          const proof = await consistencyProof(before.size, cp.size, this.nodes(cp.size).hash);
          verifyConsistencyProof({
            size1: BigInt(before.size),
            size2: BigInt(cp.size),
            proof,
            root1: before.root,
            root2: cp.root,
          });
        } catch (e) {
          if (e instanceof ProofError) failures.push([before.size, cp.size, e.code]);
          else if (!isVeritrailError(e, 'AUDIT_CORRUPT')) throw e;
        }
      }
      before = cp;
    }
    if (failures.length > 0 && judge.hasUnexplainedTileProblem()) return;
    for (const [size1, size2, code] of failures) {
      judge.note(
        size2 - 1,
        'CHECKPOINT_INCONSISTENT',
        `the signed checkpoint at size ${size2} does not extend the one at size ${size1} (RFC 9162 §2.1.4: ${code})`,
      );
    }
  }
}

/** Bundles read ahead of the one being checked (each ~75 KiB: memory stays bounded). */
const LOOKAHEAD = 8;
const POOL_AFTER_BUNDLES = 4;

function startPool(): LeafPool | undefined {
  try {
    return new LeafPool();
  } catch {
    return undefined;
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
function bundleItem(b: { buf: Buffer; starts: Uint32Array; lens: Uint32Array }, i: number): Buffer {
  const at = b.starts[i] as number;
  return b.buf.subarray(at + 2, at + 2 + (b.lens[i] as number));
}

/**
 * Checks stored hash tiles above level 0 (full and partial, c2sp.org/tlog-tiles) against the
 * hashes recomputed from the entries, one tile group at a time: memory is ≤ 256 hashes a level.
 */
class TileAudit {
  private readonly open = new Map<number, { group: number; hashes: Uint8Array[] }>();
  private readonly done: { level: number; group: number; hashes: Uint8Array[] }[] = [];
  private readonly suspects: { seq: number; span: number; detail: string }[] = [];

  constructor(private readonly log: ObjectAuditLog) {}

  /** A tile hash over entries [seq, seq + span) disagrees with the recomputed one. */
  suspect(seq: number, span: number, detail: string): void {
    if (this.suspects.length < 1000) this.suspects.push({ seq, span, detail });
  }

  /**
   * Reports the tile problems no entry problem explains: hashes recomputed over an altered entry
   * differ from the (correct) stored tile, and that is the entry's problem.
   */
  reportTo(judge: ChainVerifier): void {
    for (const s of this.suspects) {
      if (!judge.entryProblemIn(s.seq, s.seq + s.span)) judge.note(s.seq, 'TILE_ALTERED', s.detail);
    }
  }

  readonly onNode = (level: number, index: number, hash: Uint8Array): void => {
    const tileLevel = level / 8;
    const group = Math.floor(index / TILE_WIDTH);
    let g = this.open.get(tileLevel);
    if (g !== undefined && g.group !== group) {
      this.done.push({ level: tileLevel, ...g });
      g = undefined;
    }
    if (g === undefined) {
      g = { group, hashes: [] };
      this.open.set(tileLevel, g);
    }
    g.hashes.push(hash);
    if (g.hashes.length === TILE_WIDTH) {
      this.done.push({ level: tileLevel, ...g });
      this.open.delete(tileLevel);
    }
  };

  async drain(): Promise<void> {
    for (let d = this.done.shift(); d !== undefined; d = this.done.shift()) await this.check(d);
  }

  async finish(): Promise<void> {
    for (const [level, g] of this.open) this.done.push({ level, ...g });
    this.open.clear();
    await this.drain();
  }

  private async check(d: { level: number; group: number; hashes: Uint8Array[] }): Promise<void> {
    const span = TILE_WIDTH ** d.level;
    for (const t of await this.log.hashTiles(d.level, d.group)) {
      // Widths beyond what was recomputed belong to entries that are missing: reported as such.
      if (t.width > d.hashes.length) continue;
      for (let i = 0; i < t.width; i++) {
        const stored = t.bytes.subarray(i * 32, i * 32 + 32);
        const h = d.hashes[i] as Uint8Array;
        if (t.bytes.length !== t.width * 32 || !Buffer.from(h).equals(stored)) {
          const seq = (d.group * TILE_WIDTH + i) * span;
          this.suspect(
            seq,
            span,
            `hash tile ${t.key.slice(t.key.indexOf('tile/'))} disagrees with the hash recomputed over entries ${seq}..${seq + span - 1}`,
          );
          break;
        }
      }
    }
  }
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

export function openAuditLog(options: AuditLogOptions): ObjectAuditLog {
  return new ObjectAuditLog(options);
}
