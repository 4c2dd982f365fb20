/** Shared by the audit tests: an in-memory ObjectStore (fast, for tile-sized logs) and a P-256 test signer. */
import { createHash, createPublicKey, generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { Readable } from 'node:stream';
import { VeritrailError } from '../../src/core/errors.js';
import type {
  AuditEventInput,
  Bucket,
  ObjectInfo,
  ObjectStore,
  OpenOptions,
  PutOptions,
  Signer,
} from '../../src/ports.js';

/**
 * In-memory ObjectStore. Keys are also indexed by "folder" so that `list(prefix)` costs the
 * folders plus the matching keys, not every key (a million-entry benchmark log lists its tail).
 */
export class MemoryObjectStore implements ObjectStore {
  readonly objects = new IndexedMap();

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

  async open(bucket: Bucket, key: string, options: OpenOptions = {}): Promise<Readable> {
    const b = this.objects.get(`${bucket}/${key}`);
    if (b === undefined) throw new VeritrailError('OBJECT_NOT_FOUND', `${bucket}/${key} not found`);
    return Readable.from([Buffer.from(b.subarray(options.start ?? 0))]);
  }

  async head(bucket: Bucket, key: string): Promise<ObjectInfo | undefined> {
    const b = this.objects.get(`${bucket}/${key}`);
    return b === undefined ? undefined : { bucket, key, size: b.length };
  }

  async *list(bucket: Bucket, prefix: string): AsyncIterable<ObjectInfo> {
    const keys = [...this.objects.startingWith(`${bucket}/${prefix}`)]
      .map((k) => k.slice(bucket.length + 1))
      .sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    for (const key of keys) yield { bucket, key, size: this.objects.get(`${bucket}/${key}`)?.length ?? 0 };
  }
}

/** A Map of `bucket/key` → bytes that keeps a folder index; tests may `set`/`delete` directly. */
class IndexedMap extends Map<string, Uint8Array> {
  readonly folders = new Map<string, Set<string>>();

  override set(id: string, bytes: Uint8Array): this {
    if (this.folders !== undefined && !super.has(id)) {
      const cut = id.lastIndexOf('/');
      const dir = id.slice(0, cut + 1);
      const names = this.folders.get(dir) ?? new Set<string>();
      this.folders.set(dir, names);
      names.add(id.slice(cut + 1));
    }
    return super.set(id, bytes);
  }

  override delete(id: string): boolean {
    const cut = id.lastIndexOf('/');
    this.folders.get(id.slice(0, cut + 1))?.delete(id.slice(cut + 1));
    return super.delete(id);
  }

  /** Ids starting with `prefix`, unsorted. */
  *startingWith(prefix: string): Generator<string> {
    for (const [dir, names] of this.folders) {
      if (dir.startsWith(prefix)) for (const n of names) yield dir + n;
      else if (prefix.startsWith(dir)) {
        const rest = prefix.slice(dir.length);
        for (const n of names) if (n.startsWith(rest)) yield dir + n;
      }
    }
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
