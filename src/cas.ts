/** Content-addressed storage over the ObjectStore port: `sha256/<hex>` keys, written once, read back verified. */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { casKey, type Digest, digestsEqual, isDigest } from './core/digest.js';
import { isVeritrailError, VeritrailError } from './core/errors.js';
import { canonicalBytes, canonicalDigest } from './core/jcs.js';
import { type PipelineDefinition, parsePipelineDefinition } from './core/pipeline.js';
import type { Bucket, ObjectStore } from './ports.js';

/** Reads a whole (small) object. */
export async function readObject(objects: ObjectStore, bucket: Bucket, key: string): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  for await (const c of await objects.open(bucket, key)) chunks.push(c as Buffer);
  return new Uint8Array(Buffer.concat(chunks));
}

/** SHA-256 of a stream, in constant memory. */
export async function hashStream(stream: Readable): Promise<{ hex: string; size: number }> {
  const h = createHash('sha256');
  let size = 0;
  for await (const c of stream) {
    h.update(c as Buffer);
    size += (c as Buffer).length;
  }
  return { hex: h.digest('hex'), size };
}

/**
 * Stores JSON under its content address (RFC 8785 bytes); idempotent. `keyOf` places it under
 * another prefix than `sha256/` (a dataset listing the state machine itself reads, which may read
 * nothing else: src/steps/hashing.ts).
 */
export async function putJsonCas(
  objects: ObjectStore,
  value: unknown,
  keyOf: (digest: Digest) => string = casKey,
): Promise<{ key: string; digest: Digest }> {
  const digest = canonicalDigest(value);
  const key = keyOf(digest);
  await putOnce(objects, key, canonicalBytes(value));
  return { key, digest };
}

/** Stores raw bytes under their content address; idempotent. */
export async function putBytesCas(
  objects: ObjectStore,
  bytes: Uint8Array,
  digest: Digest,
): Promise<{ key: string; digest: Digest }> {
  const key = casKey(digest);
  await putOnce(objects, key, bytes);
  return { key, digest };
}

/** Stores a local file under its content address, streaming; idempotent. */
export async function putFileCas(
  objects: ObjectStore,
  path: string,
): Promise<{ key: string; digest: Digest; size: number }> {
  const { hex, size } = await hashStream(createReadStream(path, { highWaterMark: 1 << 20 }));
  const digest: Digest = `sha256:${hex}`;
  const key = casKey(digest);
  if (!(await objects.head('artifacts', key))) {
    try {
      await objects.put('artifacts', key, createReadStream(path, { highWaterMark: 1 << 20 }), {
        ifAbsent: true,
        size: (await stat(path)).size,
      });
    } catch (e) {
      if (!isVeritrailError(e, 'OBJECT_EXISTS')) throw e;
    }
  }
  return { key, digest, size };
}

async function putOnce(objects: ObjectStore, key: string, bytes: Uint8Array): Promise<void> {
  // Content-addressed: an object already at this key holds these very bytes.
  if (await objects.head('artifacts', key)) return;
  try {
    await objects.put('artifacts', key, bytes, { ifAbsent: true, size: bytes.length });
  } catch (e) {
    if (!isVeritrailError(e, 'OBJECT_EXISTS')) throw e;
  }
}

/** Reads a content-addressed object back and checks its bytes still match the address. */
export async function readCasVerified(
  objects: ObjectStore,
  digest: Digest,
  what: string,
): Promise<Uint8Array> {
  const bytes = await readObject(objects, 'artifacts', casKey(digest));
  const actual = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  if (!digestsEqual(actual, digest)) {
    throw new VeritrailError(
      'DIGEST_MISMATCH',
      `${what}: stored bytes hash to ${actual}, recorded ${digest}`,
    );
  }
  return bytes;
}

/** The pipeline definition a run was started with, verified against its digest. */
export async function loadPipeline(objects: ObjectStore, digest: string): Promise<PipelineDefinition> {
  if (!isDigest(digest))
    throw new VeritrailError('PIPELINE_INVALID', `pipeline digest ${digest} is malformed`);
  const bytes = await readObject(objects, 'artifacts', casKey(digest));
  const value = JSON.parse(new TextDecoder().decode(bytes)) as unknown;
  if (!digestsEqual(canonicalDigest(value), digest)) {
    throw new VeritrailError(
      'DIGEST_MISMATCH',
      `stored pipeline definition does not match its digest ${digest}`,
    );
  }
  return parsePipelineDefinition(value, 'stored pipeline definition');
}
