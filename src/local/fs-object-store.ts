/**
 * The embedded object store: bucket `b`, key `k` is the file `<root>/<b>/<k>`.
 *
 * Durability: every put writes a temporary file in the target directory and fsyncs it before
 * the name appears, then fsyncs the directory, so a crash leaves either the whole object or
 * nothing under its key (never a torn file).
 *
 * Compare-and-set: a put with `ifAbsent` or `retainUntil` publishes the temporary file with
 * `link(2)`, which fails with EEXIST when the name is taken, atomically, across processes. This
 * is what sequences the audit log (the local analogue of S3 `If-None-Match: *`).
 *
 * WORM: a put with `retainUntil` makes the file read-only (0444) before it is published, and
 * this store refuses to replace a read-only object. The local store cannot stop an administrator
 * who has write access to the folder; the audit log's hash chain, Merkle tree and signed
 * checkpoints are what detect such changes.
 */
import { randomBytes } from 'node:crypto';
import type { Stats } from 'node:fs';
import { chmod, type FileHandle, link, lstat, mkdir, open, readdir, rename, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { VeritrailError } from '../core/errors.js';
import { objectKeyProblem } from '../core/events/key.js';
import type { Bucket, ObjectInfo, ObjectStore, OpenOptions, PutOptions } from '../ports.js';

const BUCKETS: readonly Bucket[] = ['landing', 'artifacts', 'audit'];

/** Temporary files start with this; no key segment may, and `list` skips them. */
const TEMP_PREFIX = '.vt-tmp-';

/** Most file systems limit one name to 255 bytes. */
const MAX_SEGMENT_BYTES = 255;

function rejectKey(bucket: string, key: string, why: string): never {
  throw new VeritrailError(
    'PATH_REJECTED',
    `object key "${key.replaceAll('\0', '\\0')}" in bucket "${bucket}" is rejected: ${why}; use a relative key of non-empty segments separated by "/"`,
    { details: { bucket, key } },
  );
}

function checkBucket(bucket: string): asserts bucket is Bucket {
  if (!(BUCKETS as readonly string[]).includes(bucket)) {
    throw new VeritrailError(
      'PATH_REJECTED',
      `unknown bucket "${bucket}"; expected one of ${BUCKETS.join(', ')}`,
      {
        details: { bucket },
      },
    );
  }
}

/**
 * Validates a key or a list prefix segment by segment. Keys come from event payloads and user
 * input, so path tricks (`..`, absolute paths, NUL, backslashes) must never reach the file system
 * (DESIGN invariant 6).
 */
function checkPath(bucket: string, key: string, isPrefix: boolean): void {
  const problem = objectKeyProblem(key, { prefix: isPrefix });
  if (problem) rejectKey(bucket, String(key), problem);
  for (const segment of key.split('/')) {
    if (segment.startsWith(TEMP_PREFIX))
      rejectKey(bucket, key, `a segment starts with the reserved "${TEMP_PREFIX}"`);
    if (Buffer.byteLength(segment) > MAX_SEGMENT_BYTES) {
      rejectKey(bucket, key, `a segment is longer than ${MAX_SEGMENT_BYTES} bytes`);
    }
  }
}

function errnoOf(e: unknown): string | undefined {
  return typeof e === 'object' && e !== null && 'code' in e && typeof e.code === 'string'
    ? e.code
    : undefined;
}

function isReadable(body: Uint8Array | Readable): body is Readable {
  return !(body instanceof Uint8Array);
}

async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** UTF-8 byte order, as S3 lists keys. */
function compareUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

export class FsObjectStore implements ObjectStore {
  constructor(private readonly root: string) {}

  private pathOf(bucket: Bucket, key: string): string {
    return join(this.root, bucket, ...key.split('/'));
  }

  async put(
    bucket: Bucket,
    key: string,
    body: Uint8Array | Readable,
    options: PutOptions = {},
  ): Promise<ObjectInfo> {
    checkBucket(bucket);
    checkPath(bucket, key, false);
    const target = this.pathOf(bucket, key);
    const dir = dirname(target);
    await this.makeDirs(dir);
    const temp = join(dir, `${TEMP_PREFIX}${process.pid}-${randomBytes(6).toString('hex')}`);
    let size = 0;
    let fh: FileHandle | undefined = await open(temp, 'wx', 0o644);
    try {
      if (isReadable(body)) {
        // Chunk by chunk: memory stays constant whatever the object size.
        for await (const chunk of body) {
          const bytes: Uint8Array = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Uint8Array);
          await fh.write(bytes);
          size += bytes.byteLength;
        }
      } else {
        await fh.writeFile(body);
        size = body.byteLength;
      }
      await fh.sync();
      await fh.close();
      fh = undefined;
      if (options.size !== undefined && options.size !== size) {
        throw new VeritrailError(
          'TRANSIENT',
          `object "${bucket}/${key}" was announced as ${options.size} bytes but ${size} arrived; retry the upload`,
          { details: { bucket, key, expected: options.size, actual: size } },
        );
      }
      if (options.ifAbsent === true || options.retainUntil !== undefined) {
        // Read-only before the name appears: no instant where a retained object is writable.
        if (options.retainUntil !== undefined) await chmod(temp, 0o444);
        try {
          await link(temp, target);
        } catch (e) {
          if (errnoOf(e) === 'EEXIST') {
            throw new VeritrailError(
              'OBJECT_EXISTS',
              `object "${bucket}/${key}" already exists and is not replaced; read it or write another key`,
              { cause: e, details: { bucket, key } },
            );
          }
          throw e;
        }
        await unlink(temp);
      } else {
        const existing = await lstat(target).catch(() => undefined);
        if (existing !== undefined && (existing.mode & 0o222) === 0) {
          throw new VeritrailError(
            'OBJECT_EXISTS',
            `object "${bucket}/${key}" is write-once (retained) and cannot be replaced; write another key`,
            { details: { bucket, key } },
          );
        }
        await rename(temp, target);
      }
      await fsyncDir(dir);
    } catch (e) {
      if (fh !== undefined) await fh.close().catch(() => undefined);
      await unlink(temp).catch(() => undefined);
      throw e;
    }
    return { bucket, key, size };
  }

  /** mkdir -p, then fsync the parents of every directory it created so they survive a crash. */
  private async makeDirs(dir: string): Promise<void> {
    const first = await mkdir(dir, { recursive: true });
    if (first === undefined) return;
    const created: string[] = [];
    for (let d = dir; d.length >= first.length; d = dirname(d)) {
      created.push(d);
      if (d === first) break;
    }
    for (const d of created) await fsyncDir(dirname(d));
  }

  async open(bucket: Bucket, key: string, options: OpenOptions = {}): Promise<Readable> {
    checkBucket(bucket);
    checkPath(bucket, key, false);
    let fh: FileHandle;
    try {
      fh = await open(this.pathOf(bucket, key), 'r');
    } catch (e) {
      throw this.notFoundOr(e, bucket, key);
    }
    const st = await fh.stat();
    if (!st.isFile()) {
      await fh.close();
      throw this.notFoundOr(Object.assign(new Error('not a file'), { code: 'EISDIR' }), bucket, key);
    }
    // versionId: none locally (content digests pin versions); start: past the end reads nothing.
    return fh.createReadStream({ autoClose: true, ...(options.start ? { start: options.start } : {}) });
  }

  private notFoundOr(e: unknown, bucket: Bucket, key: string): unknown {
    const code = errnoOf(e);
    if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR') {
      return new VeritrailError(
        'OBJECT_NOT_FOUND',
        `object "${bucket}/${key}" does not exist; check the key`,
        {
          cause: e,
          details: { bucket, key },
        },
      );
    }
    return e;
  }

  async head(bucket: Bucket, key: string): Promise<ObjectInfo | undefined> {
    checkBucket(bucket);
    checkPath(bucket, key, false);
    let st: Stats;
    try {
      st = await lstat(this.pathOf(bucket, key));
    } catch (e) {
      const code = errnoOf(e);
      if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
      throw e;
    }
    return st.isFile() ? { bucket, key, size: st.size } : undefined;
  }

  /**
   * Keys starting with `prefix`, recursively, in UTF-8 byte order (as S3 lists them). Directory
   * names sort as if followed by "/", so "a-b" comes before "a/c" exactly as the keys compare.
   */
  async *list(bucket: Bucket, prefix: string): AsyncIterable<ObjectInfo> {
    checkBucket(bucket);
    checkPath(bucket, prefix, true);
    const cut = prefix.lastIndexOf('/');
    const baseKey = cut < 0 ? '' : prefix.slice(0, cut + 1);
    const namePrefix = prefix.slice(cut + 1);
    yield* this.walk(bucket, baseKey, namePrefix);
  }

  private async *walk(bucket: Bucket, baseKey: string, namePrefix: string): AsyncGenerator<ObjectInfo> {
    const dir = baseKey === '' ? join(this.root, bucket) : this.pathOf(bucket, baseKey.slice(0, -1));
    let names: { name: string; isDir: boolean; sortKey: string }[];
    try {
      const dirents = await readdir(dir, { withFileTypes: true });
      names = dirents
        .filter((d) => d.name.startsWith(namePrefix) && !d.name.startsWith(TEMP_PREFIX))
        .filter((d) => d.isDirectory() || d.isFile())
        .map((d) => ({
          name: d.name,
          isDir: d.isDirectory(),
          sortKey: d.isDirectory() ? `${d.name}/` : d.name,
        }));
    } catch (e) {
      const code = errnoOf(e);
      if (code === 'ENOENT' || code === 'ENOTDIR') return;
      throw e;
    }
    names.sort((a, b) => compareUtf8(a.sortKey, b.sortKey));
    for (const n of names) {
      const key = `${baseKey}${n.name}`;
      if (n.isDir) {
        yield* this.walk(bucket, `${key}/`, '');
      } else {
        const st = await lstat(join(dir, n.name)).catch(() => undefined);
        if (st?.isFile()) yield { bucket, key, size: st.size };
      }
    }
  }
}
