/**
 * An ObjectStore that adds S3-like latency to every request of the store it wraps: the sequencing
 * design is measured against the round trips it costs, not against local disk.
 */
import type { Readable } from 'node:stream';
import type { Bucket, ObjectInfo, ObjectStore, PutOptions } from '../../src/ports.js';

export class LatencyStore implements ObjectStore {
  requests = 0;

  constructor(
    private readonly inner: ObjectStore,
    private readonly ms: number,
  ) {}

  private wait(): Promise<void> {
    this.requests += 1;
    return new Promise((r) => setTimeout(r, this.ms));
  }

  async put(
    bucket: Bucket,
    key: string,
    body: Uint8Array | Readable,
    options?: PutOptions,
  ): Promise<ObjectInfo> {
    await this.wait();
    return this.inner.put(bucket, key, body, options);
  }

  async open(bucket: Bucket, key: string, options?: { versionId?: string }): Promise<Readable> {
    await this.wait();
    return this.inner.open(bucket, key, options);
  }

  async head(bucket: Bucket, key: string): Promise<ObjectInfo | undefined> {
    await this.wait();
    return this.inner.head(bucket, key);
  }

  async *list(bucket: Bucket, prefix: string): AsyncIterable<ObjectInfo> {
    await this.wait();
    yield* this.inner.list(bucket, prefix);
  }
}
