/**
 * Sequencing: where appends become entries. Each batch the appender (appender.ts) hands over is
 * chained from the end of the log and put as one batch object at the key of its first sequence
 * number, created only if absent (a compare-and-set on the store); whoever loses reads the
 * winner's batch, learns its entries and tries right after it, so concurrent appenders get one
 * total order with no gap.
 *
 * Idempotency per eventId: the index eventId → seq is built from the whole log (sealed bundles,
 * then batches) on a process's first append and extended by every batch it writes or loses to.
 * A process only writes right after the last batch it has read, so its index holds every entry
 * below where it writes: an event already in the log gets its first entry back. The signing-key
 * history (`noteSigningKey`) is found through the same index.
 *
 * Also here: the tail of the log as this process saw it (size and last leaf hash), and the
 * batches of the tiles not yet sealed, which integration (integrate.ts) seals from memory.
 */
import {
  entryBytes,
  eventProblem,
  MAX_ENTRY_BYTES,
  makeEntry,
  toHex,
  ZERO_HASH_HEX,
} from '../core/audit-entry.js';
import { VeritrailError } from '../core/errors.js';
import { hashLeaf } from '../core/merkle.js';
import { decodeEntryBundle, TILE_WIDTH } from '../core/tiles.js';
import type { AuditEntry, AuditEventInput } from '../ports.js';
import { type AppenderOptions, BatchAppender } from './appender.js';
import { joinBatch, type LogLayout, splitBatch } from './layout.js';
import type { LogObjects } from './objects.js';
import type { LogReader } from './reader.js';

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

export interface LogSequencerOptions {
  objects: LogObjects;
  /** Reads back the entry of an event appended before. */
  reader: LogReader;
  /** Seals the tiles completed when the log reached `size` (a multiple of 256), behind the appends. */
  seal: (size: number) => Promise<void>;
  now?: () => Date;
  /** How appends are pooled into batches (size, age, back-pressure). */
  batching?: AppenderOptions;
}

export class LogSequencer {
  private readonly objects: LogObjects;
  private readonly layout: LogLayout;
  private readonly reader: LogReader;
  private readonly seal: (size: number) => Promise<void>;
  private readonly now: () => Date;
  private readonly appender: BatchAppender;
  /** A count of entries known to exist: a local lower bound, never trusted without a check. */
  private known = 0;
  /** eventId → seq of every entry up to `head` (loaded from the log on the first append). */
  private index: Map<string, number> | undefined;
  /** The end of the log as this process last saw it, and the hex leaf hash of its last entry. */
  private head: { size: number; leaf: string } | undefined;
  /** Batches this process wrote or read lately, by first sequence number (see `absorb`). */
  private readonly recent = new Map<number, readonly Uint8Array[]>();
  /** Tile seals under way (they lag the appends; `settle` waits for them). */
  private sealing: Promise<void> = Promise.resolve();

  constructor(options: LogSequencerOptions) {
    this.objects = options.objects;
    this.layout = options.objects.layout;
    this.reader = options.reader;
    this.seal = options.seal;
    this.now = options.now ?? (() => new Date());
    this.appender = new BatchAppender({ sequence: (events) => this.sequence(events) }, options.batching);
  }

  /** Entries this process knows exist (see `known`). */
  knownSize(): number {
    return this.known;
  }

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
    return (await this.reader.readEntry(seq)).entry;
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
          this.sealing = this.sealing.then(() => this.seal(end).catch(() => undefined));
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

  /** Entries of full tile `t` from the batches in memory, when they cover all of it (and are dropped). */
  recentTile(t: number): (Uint8Array | undefined)[] | undefined {
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
}
