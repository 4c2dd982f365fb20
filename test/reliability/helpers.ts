/** Shared by the audit tests: an in-memory ObjectStore (fast, for tile-sized logs) and a P-256 test signer. */
import { createHash, createPublicKey, generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { Readable } from 'node:stream';
import { VeritrailError } from '../../src/core/errors.js';
import type {
  AuditEventInput,
  Bucket,
  ObjectInfo,
  ObjectStore,
  PutOptions,
  Signer,
} from '../../src/ports.js';

export class MemoryObjectStore implements ObjectStore {
  readonly objects = new Map<string, Uint8Array>();

  async put(
    bucket: Bucket,
    key: string,
    body: Uint8Array | Readable,
    options: PutOptions = {},
  ): Promise<ObjectInfo> {
    const id = `${bucket}/${key}`;
    let bytes: Uint8Array;
    if (body instanceof Uint8Array) bytes = new Uint8Array(body);
    else {
      const chunks: Buffer[] = [];
      for await (const c of body) chunks.push(Buffer.from(c as Uint8Array));
      bytes = Buffer.concat(chunks);
    }
    if ((options.ifAbsent === true || options.retainUntil !== undefined) && this.objects.has(id)) {
      throw new VeritrailError('OBJECT_EXISTS', `${id} exists`);
    }
    this.objects.set(id, bytes);
    return { bucket, key, size: bytes.length };
  }

  async open(bucket: Bucket, key: string): Promise<Readable> {
    const b = this.objects.get(`${bucket}/${key}`);
    if (b === undefined) throw new VeritrailError('OBJECT_NOT_FOUND', `${bucket}/${key} not found`);
    return Readable.from([Buffer.from(b)]);
  }

  async head(bucket: Bucket, key: string): Promise<ObjectInfo | undefined> {
    const b = this.objects.get(`${bucket}/${key}`);
    return b === undefined ? undefined : { bucket, key, size: b.length };
  }

  async *list(bucket: Bucket, prefix: string): AsyncIterable<ObjectInfo> {
    const keys = [...this.objects.keys()]
      .filter((k) => k.startsWith(`${bucket}/${prefix}`))
      .map((k) => k.slice(bucket.length + 1))
      .sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    for (const key of keys) yield { bucket, key, size: this.objects.get(`${bucket}/${key}`)?.length ?? 0 };
  }
}

export function testSigner(privateKey?: KeyObject): Signer & { privateKey: KeyObject } {
  const key = privateKey ?? generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  const pub = createPublicKey(key);
  const pem = pub.export({ type: 'spki', format: 'pem' }).toString();
  const keyId = `sha256:${createHash('sha256')
    .update(pub.export({ type: 'spki', format: 'der' }))
    .digest('hex')}`;
  return {
    privateKey: key,
    keyId,
    publicKeyPem: async () => pem,
    sign: async (m) => new Uint8Array(sign('sha256', m, { key, dsaEncoding: 'der' })),
  };
}

export function event(i: number | string, runId = 'run-1'): AuditEventInput {
  return {
    eventId: `evt-${i}`,
    pipeline: 'credit',
    runId,
    step: 'Train',
    type: 'step.succeeded',
    outcome: 'success',
    actor: 'tester@host',
    subjects: { model: `sha256:${createHash('sha256').update(String(i)).digest('hex')}` },
    detail: { i: String(i) },
  };
}
