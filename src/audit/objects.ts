/**
 * The audit log's objects in the ObjectStore port (S3 with Object Lock on AWS, a folder of
 * read-only files locally): reads into memory of their own, WORM writes that create an object
 * only if it is absent (with the log's retention), existence checks, listings, and the `head`
 * hint. Which key holds what is layout.ts's.
 */
import type { Readable } from 'node:stream';
import { isVeritrailError, VeritrailError } from '../core/errors.js';
import { canonicalBytes } from '../core/jcs.js';
import { DEFAULT_AUDIT_RETENTION_DAYS as DEFAULT_RETENTION_DAYS } from '../core/layout.js';
import type { Bucket, ObjectInfo, ObjectStore } from '../ports.js';
import { DEFAULT_BUCKET, DEFAULT_PREFIX, LogLayout } from './layout.js';

export interface LogObjectsOptions {
  store: ObjectStore;
  bucket?: Bucket;
  prefix?: string;
  /** WORM retention of every object; default 7 years. */
  retentionDays?: number;
  now?: () => Date;
}

/**
 * An object's bytes in memory of their own, copied once: verification writes over them and moves
 * them to worker threads, which a store's own buffers must not see. Large objects (entry bundles)
 * get an ArrayBuffer of exactly their size, or the memory `into` gives for their size.
 */
function readAll(r: Readable, into?: (size: number) => Buffer | undefined): Promise<Buffer> {
  // Events, not `for await`: the async iterator costs several ticks per object, and the entry
  // cross-check of `verify` reads one object per entry.
  return new Promise((resolve, reject) => {
    const chunks: Uint8Array[] = [];
    let total = 0;
    r.on('data', (c: unknown) => {
      const chunk = typeof c === 'string' ? Buffer.from(c) : (c as Uint8Array);
      chunks.push(chunk);
      total += chunk.length;
    });
    let ended = false;
    r.once('error', reject);
    // A stream destroyed without an error never ends: the read must fail, not hang.
    r.once('close', () => {
      if (!ended) reject(new VeritrailError('TRANSIENT', 'an object stream closed before its end; retry'));
    });
    r.once('end', () => {
      ended = true;
      const given = into?.(total);
      if (given === undefined && total < 4096) {
        resolve(Buffer.concat(chunks, total));
        return;
      }
      const out = given ?? Buffer.allocUnsafeSlow(total);
      let at = 0;
      for (const c of chunks) {
        out.set(c, at);
        at += c.length;
      }
      resolve(out);
    });
  });
}

export class LogObjects {
  readonly store: ObjectStore;
  readonly bucket: Bucket;
  readonly layout: LogLayout;
  private readonly retentionMs: number;
  private readonly now: () => Date;

  constructor(options: LogObjectsOptions) {
    this.store = options.store;
    this.bucket = options.bucket ?? DEFAULT_BUCKET;
    this.layout = new LogLayout(options.prefix ?? DEFAULT_PREFIX);
    this.retentionMs = (options.retentionDays ?? DEFAULT_RETENTION_DAYS) * 86_400_000;
    this.now = options.now ?? (() => new Date());
  }

  async read(key: string, into?: (size: number) => Buffer | undefined): Promise<Buffer | undefined> {
    try {
      return await readAll(await this.store.open(this.bucket, `${key}`), into);
    } catch (e) {
      if (isVeritrailError(e, 'OBJECT_NOT_FOUND')) return undefined;
      throw e;
    }
  }

  async exists(key: string): Promise<boolean> {
    return (await this.store.head(this.bucket, key)) !== undefined;
  }

  /** Creates a WORM object; false when it already existed. */
  async putOnce(key: string, body: Uint8Array): Promise<boolean> {
    try {
      await this.store.put(this.bucket, key, body, {
        ifAbsent: true,
        retainUntil: new Date(this.now().getTime() + this.retentionMs),
        size: body.length,
      });
      return true;
    } catch (e) {
      if (isVeritrailError(e, 'OBJECT_EXISTS')) return false;
      throw e;
    }
  }

  /** Writes an object that is overwritten (the latest `checkpoint`). */
  async put(key: string, body: Uint8Array): Promise<void> {
    await this.store.put(this.bucket, key, body);
  }

  list(prefix: string): AsyncIterable<ObjectInfo> {
    return this.store.list(this.bucket, prefix);
  }

  async readHint(): Promise<number> {
    try {
      const b = await this.read(this.layout.headKey);
      if (b === undefined) return 0;
      const v: unknown = JSON.parse(Buffer.from(b).toString('utf8'));
      const size = typeof v === 'object' && v !== null && 'size' in v ? v.size : undefined;
      return Number.isSafeInteger(size) && (size as number) > 0 ? (size as number) : 0;
    } catch {
      return 0;
    }
  }

  async writeHint(size: number): Promise<void> {
    await this.store.put(this.bucket, this.layout.headKey, canonicalBytes({ size })).catch(() => undefined);
  }
}
