/**
 * The in-memory store of the million-entry benchmark log. An entry object holds exactly the bytes
 * of its item in the entry bundle (that is how the appenders write them), so for sealed entries
 * this store serves `open`, `head` and `list` from the bundle instead of holding a million more
 * allocations: a deployed verifier's heap does not hold the log either (it is on disk or in S3),
 * and a heap of a million live objects would make every garbage collection of the benchmark
 * process measure the test harness instead of the verifier.
 */
import { Readable } from 'node:stream';
import { decodeEntryBundle, TILE_WIDTH } from '../../src/core/tiles.js';
import type { Bucket, ObjectInfo } from '../../src/ports.js';
import { MemoryObjectStore } from '../../test/reliability/helpers.js';

export class CompactAuditStore extends MemoryObjectStore {
  private readonly sealed = new Map<number, Uint8Array>();
  /** The last few decoded bundles: verification reads a bundle's 256 objects together. */
  private readonly decoded = new Map<number, Uint8Array[] | undefined>();

  constructor(private readonly entriesPrefix = 'log/entries/') {
    super();
  }

  /** Registers bundle `index` (its encoded bytes): its 256 entry objects are served from it. */
  seal(index: number, bundle: Uint8Array): void {
    this.sealed.set(index, bundle);
  }

  private sealedEntry(bucket: Bucket, key: string): Uint8Array | undefined {
    if (bucket !== 'audit' || !key.startsWith(this.entriesPrefix)) return undefined;
    const digits = key.slice(this.entriesPrefix.length).replaceAll('/', '');
    if (!/^\d{15}$/.test(digits)) return undefined;
    const seq = Number(digits);
    const index = Math.floor(seq / TILE_WIDTH);
    const b = this.sealed.get(index);
    if (b === undefined) return undefined;
    if (!this.decoded.has(index)) {
      if (this.decoded.size >= 16) this.decoded.delete(this.decoded.keys().next().value as number);
      this.decoded.set(index, decodeEntryBundle(b));
    }
    return this.decoded.get(index)?.[seq % TILE_WIDTH];
  }

  override async open(bucket: Bucket, key: string): Promise<Readable> {
    const e = this.sealedEntry(bucket, key);
    return e === undefined ? super.open(bucket, key) : Readable.from([Buffer.from(e)]);
  }

  override async head(bucket: Bucket, key: string): Promise<ObjectInfo | undefined> {
    const e = this.sealedEntry(bucket, key);
    return e === undefined ? super.head(bucket, key) : { bucket, key, size: e.length };
  }

  override async *list(bucket: Bucket, prefix: string): AsyncIterable<ObjectInfo> {
    const found: ObjectInfo[] = [];
    for await (const o of super.list(bucket, prefix)) found.push(o);
    if (bucket === 'audit' && prefix.startsWith(this.entriesPrefix)) {
      // Entry keys are 15 digits in groups of three: the prefix fixes the leading digits.
      const fixed = prefix.slice(this.entriesPrefix.length).replaceAll('/', '');
      if (/^\d{0,15}$/.test(fixed)) {
        const span = 10 ** (15 - fixed.length);
        const lo = Number(fixed.padEnd(15, '0'));
        for (const [index, b] of this.sealed) {
          const first = Math.max(lo, index * TILE_WIDTH);
          const last = Math.min(lo + span, (index + 1) * TILE_WIDTH);
          const items = first < last ? decodeEntryBundle(b) : undefined;
          for (let seq = first; seq < last; seq++) {
            const key = `${this.entriesPrefix}${String(seq)
              .padStart(15, '0')
              .replace(/(\d{3})(?=\d)/g, '$1/')}`;
            found.push({ bucket, key, size: items?.[seq % TILE_WIDTH]?.length ?? 0 });
          }
        }
      }
    }
    found.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    yield* found;
  }
}
