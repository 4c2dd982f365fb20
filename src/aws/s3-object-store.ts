/**
 * ObjectStore over S3. The three logical buckets map to real bucket names given at construction.
 *
 * Writes carry a SHA-256 checksum that S3 verifies before it stores a byte (a mismatch is
 * `BadDigest`, translated to DIGEST_MISMATCH); create-only writes use `If-None-Match: *` (S3
 * conditional writes: 412 PreconditionFailed when the key exists, which sequences the audit log);
 * retained writes set Object Lock COMPLIANCE with a retain-until date (the WORM audit bucket).
 *
 * This adapter never deletes, never changes retention or lock configuration and never sets
 * `BypassGovernanceRetention`: it imports no command that could (see the unit test that checks).
 *
 * One difference from the embedded store: on a versioned bucket a *plain* put over a key whose
 * current version is retained succeeds and adds a new version, while the retained version stays
 * untouched and readable by VersionId. The audit log only writes with `ifAbsent`, and a put with
 * `retainUntil` is always create-only here, so a retained key is never silently superseded by
 * veritrail itself.
 */
import { createHash } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  GetObjectCommand,
  type GetObjectCommandOutput,
  HeadObjectCommand,
  PutObjectCommand,
  type PutObjectCommandInput,
  type PutObjectCommandOutput,
  paginateListObjectsV2,
  type S3Client,
} from '@aws-sdk/client-s3';
import { VeritrailError } from '../core/errors.js';
import { objectKeyProblem } from '../core/events/key.js';
import type { Bucket, ObjectInfo, ObjectStore, OpenOptions, PutOptions } from '../ports.js';
import { awsCall, awsErrorName, awsHttpStatus, translateAwsError } from './errors.js';

const BUCKETS: readonly Bucket[] = ['landing', 'artifacts', 'audit'];

export interface S3ObjectStoreConfig {
  /** Real bucket name for each logical bucket. */
  buckets: Readonly<Record<Bucket, string>>;
  /** When set, every put is SSE-KMS with this key (ARN or id). Otherwise the bucket default applies. */
  kmsKeyId?: string;
}

function rejectKey(bucket: string, key: string, why: string): never {
  throw new VeritrailError(
    'PATH_REJECTED',
    `object key "${key.replaceAll('\0', '\\0')}" in bucket "${bucket}" is rejected: ${why}; use a relative key of non-empty segments separated by "/"`,
    { details: { bucket, key } },
  );
}

/**
 * The same key rules as the embedded store (invariant 6): S3 itself would accept `../x` or `a//b`,
 * but keys come from events and user input, and a key that means one thing on S3 and another on
 * disk would break the "same pipeline, both runtimes" promise.
 */
function checkKey(bucket: string, key: string, isPrefix: boolean): void {
  const problem = objectKeyProblem(key, { prefix: isPrefix });
  if (problem) rejectKey(bucket, String(key), problem);
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

/** Counts and hashes the bytes of a stream as they pass to the SDK. */
class HashingPassThrough extends PassThrough {
  readonly hash = createHash('sha256');
  bytes = 0;
  override _transform(
    chunk: Buffer,
    encoding: BufferEncoding,
    callback: (error?: Error | null) => void,
  ): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    super._transform(chunk, encoding, callback);
  }
}

export class S3ObjectStore implements ObjectStore {
  private readonly buckets: Readonly<Record<Bucket, string>>;
  private readonly kmsKeyId: string | undefined;

  constructor(
    private readonly s3: S3Client,
    config: S3ObjectStoreConfig,
  ) {
    for (const b of BUCKETS) {
      if (!config.buckets[b]) {
        throw new VeritrailError('USAGE', `S3ObjectStore needs a bucket name for the "${b}" bucket`);
      }
    }
    this.buckets = { ...config.buckets };
    this.kmsKeyId = config.kmsKeyId;
  }

  private bucketName(bucket: Bucket): string {
    checkBucket(bucket);
    return this.buckets[bucket];
  }

  private uri(bucket: Bucket, key: string): string {
    return `s3://${this.buckets[bucket]}/${key}`;
  }

  async put(
    bucket: Bucket,
    key: string,
    body: Uint8Array | Readable,
    options: PutOptions = {},
  ): Promise<ObjectInfo> {
    const Bucket = this.bucketName(bucket);
    checkKey(bucket, key, false);
    const input: PutObjectCommandInput = { Bucket, Key: key, ChecksumAlgorithm: 'SHA256' };
    // A retained (WORM) object is written once: create-only, like the embedded store.
    if (options.ifAbsent || options.retainUntil) input.IfNoneMatch = '*';
    if (options.retainUntil) {
      input.ObjectLockMode = 'COMPLIANCE';
      input.ObjectLockRetainUntilDate = options.retainUntil;
    }
    if (this.kmsKeyId) {
      input.ServerSideEncryption = 'aws:kms';
      input.SSEKMSKeyId = this.kmsKeyId;
    }
    if (options.contentType) input.ContentType = options.contentType;

    let size: number;
    let hashing: HashingPassThrough | undefined;
    let feeding: Promise<void> | undefined;
    let sourceError: unknown;
    if (body instanceof Uint8Array) {
      size = body.byteLength;
      input.Body = body;
      input.ContentLength = size;
      input.ChecksumSHA256 = createHash('sha256').update(body).digest('base64');
    } else {
      if (options.size === undefined || !Number.isSafeInteger(options.size) || options.size < 0) {
        throw new VeritrailError(
          'USAGE',
          `putting a stream to ${this.uri(bucket, key)} needs options.size (its byte length): S3 must know the length of a streamed upload`,
        );
      }
      size = options.size;
      // The SDK sends a streamed body with a trailing SHA-256 checksum (aws-chunked) that S3
      // checks; we hash the same bytes on the way through and compare with what S3 reports.
      body.once('error', (e: unknown) => {
        sourceError = e;
      });
      hashing = new HashingPassThrough();
      feeding = pipeline(body, hashing);
      // Observed below; never an unhandled rejection.
      feeding.catch(() => undefined);
      input.Body = hashing;
      input.ContentLength = size;
    }

    let out: PutObjectCommandOutput;
    try {
      out = await this.s3.send(new PutObjectCommand(input));
    } catch (e) {
      hashing?.destroy();
      // A source stream that failed is the caller's error, not S3's: rethrow it as it was.
      if (sourceError !== undefined) throw sourceError;
      throw translateAwsError(e, { action: 's3:PutObject', resource: this.uri(bucket, key) });
    }
    if (hashing && feeding) {
      if (!hashing.readableEnded) {
        hashing.destroy();
        throw new VeritrailError(
          'DIGEST_MISMATCH',
          `S3 acknowledged ${this.uri(bucket, key)} before the whole stream was sent; retry the upload from the original data`,
          { details: { bucket, key, versionId: out.VersionId } },
        );
      }
      await feeding;
      const ours = hashing.hash.digest('base64');
      if (hashing.bytes !== size || (out.ChecksumSHA256 !== undefined && out.ChecksumSHA256 !== ours)) {
        throw new VeritrailError(
          'DIGEST_MISMATCH',
          `the stream put to ${this.uri(bucket, key)} had ${hashing.bytes} bytes with sha256 ${ours} (base64), but ${size} bytes were declared and S3 reports checksum ${out.ChecksumSHA256 ?? 'none'}; retry the upload from the original data`,
          { details: { bucket, key, versionId: out.VersionId } },
        );
      }
    }
    const info: ObjectInfo = { bucket, key, size };
    if (out.VersionId) info.versionId = out.VersionId;
    return info;
  }

  async open(bucket: Bucket, key: string, options: OpenOptions = {}): Promise<Readable> {
    const Bucket = this.bucketName(bucket);
    checkKey(bucket, key, false);
    const resource = options.versionId
      ? `${this.uri(bucket, key)}?versionId=${options.versionId}`
      : this.uri(bucket, key);
    const start = options.start ?? 0;
    let out: GetObjectCommandOutput;
    try {
      out = await this.s3.send(
        new GetObjectCommand({
          Bucket,
          Key: key,
          ...(options.versionId ? { VersionId: options.versionId } : {}),
          // A ranged read (S3 API Reference, GetObject "Range") carries no whole-object checksum to
          // verify; a whole read gets the stored checksum and the SDK verifies the streamed bytes.
          ...(start > 0 ? { Range: `bytes=${start}-` } : { ChecksumMode: 'ENABLED' as const }),
        }),
      );
    } catch (e) {
      // 416 InvalidRange: the range starts at or past the end; the rest of the object is nothing.
      if (start > 0 && (awsErrorName(e) === 'InvalidRange' || awsHttpStatus(e) === 416))
        return Readable.from([]);
      throw translateAwsError(e, { action: 's3:GetObject', resource });
    }
    const stream = out.Body;
    if (stream instanceof Readable) return stream;
    if (stream && typeof stream === 'object' && 'transformToWebStream' in stream) {
      return Readable.fromWeb(stream.transformToWebStream() as Parameters<typeof Readable.fromWeb>[0]);
    }
    throw new VeritrailError('INTERNAL', `s3:GetObject on ${resource} returned no body`);
  }

  async head(bucket: Bucket, key: string): Promise<ObjectInfo | undefined> {
    const Bucket = this.bucketName(bucket);
    checkKey(bucket, key, false);
    try {
      const out = await this.s3.send(new HeadObjectCommand({ Bucket, Key: key }));
      const info: ObjectInfo = { bucket, key, size: out.ContentLength ?? 0 };
      if (out.VersionId) info.versionId = out.VersionId;
      return info;
    } catch (e) {
      // HEAD responses have no body, so a missing key is a bare 404 named `NotFound`.
      if (awsErrorName(e) === 'NotFound' || awsErrorName(e) === 'NoSuchKey' || awsHttpStatus(e) === 404) {
        return undefined;
      }
      throw translateAwsError(e, { action: 's3:HeadObject', resource: this.uri(bucket, key) });
    }
  }

  async *list(bucket: Bucket, prefix: string): AsyncIterable<ObjectInfo> {
    const Bucket = this.bucketName(bucket);
    checkKey(bucket, prefix, true);
    const ctx = { action: 's3:ListBucket', resource: this.uri(bucket, prefix) };
    // ListObjectsV2 returns keys in ascending UTF-8 binary order, which is the order the port promises.
    const pages = paginateListObjectsV2({ client: this.s3 }, { Bucket, Prefix: prefix });
    const iterator = pages[Symbol.asyncIterator]();
    for (;;) {
      const next = await awsCall(ctx, () => iterator.next());
      if (next.done) return;
      for (const o of next.value.Contents ?? []) {
        if (o.Key === undefined) continue;
        yield { bucket, key: o.Key, size: o.Size ?? 0 };
      }
    }
  }
}
