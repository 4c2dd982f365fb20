/**
 * Leaf hashing of entry bundles on worker threads, so `audit verify` runs at the speed of one
 * SHA-256 per entry on the main thread (the tree's interior node) rather than two. The worker is
 * a few lines of plain JavaScript evaluated in place, so it runs the same from TypeScript sources
 * (tsx, vitest) and from the built package, with no file to locate.
 *
 * Each job is one bundle: its bytes and where each entry's 2-byte length sits; the worker
 * returns the 256 RFC 9162 §2.1.1 leaf hashes, SHA-256(0x00 || entry), as one 8 KiB buffer.
 * The bundle's memory is moved to the worker and back, never copied: the worker writes the leaf
 * prefix over each entry's low length byte and hashes the entry where it lies.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';

const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { hash } = require('node:crypto');
parentPort.on('message', ({ id, bytes, starts, lens }) => {
  const buf = Buffer.from(bytes);
  const out = Buffer.allocUnsafeSlow(starts.length * 32);
  for (let i = 0; i < starts.length; i++) {
    const at = starts[i];
    buf[at + 1] = 0;
    out.set(hash('sha256', buf.subarray(at + 1, at + 2 + lens[i]), 'buffer'), i * 32);
  }
  parentPort.postMessage({ id, bytes, leaves: out.buffer }, [bytes, out.buffer]);
});
`;

export interface HashedBundle {
  /** The bundle, moved back (its length bytes are overwritten: keep the lengths elsewhere). */
  bytes: Buffer;
  leaves: Uint8Array;
}

interface Job {
  resolve: (r: HashedBundle) => void;
  reject: (e: unknown) => void;
}

export class LeafPool {
  private readonly workers: Worker[];
  private readonly jobs = new Map<number, Job>();
  private nextId = 0;
  private failed: unknown;

  constructor(size = Math.max(1, Math.min(3, availableParallelism() - 1))) {
    this.workers = Array.from({ length: size }, () => {
      const w = new Worker(WORKER_SOURCE, { eval: true });
      w.on('message', (m: { id: number; bytes: ArrayBuffer; leaves: ArrayBuffer }) => {
        const job = this.jobs.get(m.id);
        this.jobs.delete(m.id);
        job?.resolve({ bytes: Buffer.from(m.bytes), leaves: new Uint8Array(m.leaves) });
      });
      w.on('error', (e) => this.fail(e));
      return w;
    });
  }

  private fail(e: unknown): void {
    this.failed = e;
    for (const j of this.jobs.values()) j.reject(e);
    this.jobs.clear();
  }

  /**
   * The leaf hashes of a bundle's entries. `bytes` must own its whole ArrayBuffer, which is
   * detached here and comes back in the result.
   */
  leaves(bytes: Buffer, starts: Uint32Array, lens: Uint32Array): Promise<HashedBundle> {
    if (this.failed !== undefined) return Promise.reject(this.failed);
    const id = this.nextId++;
    const w = this.workers[id % this.workers.length] as Worker;
    const ab = bytes.buffer as ArrayBuffer;
    return new Promise((resolve, reject) => {
      this.jobs.set(id, { resolve, reject });
      w.postMessage({ id, bytes: ab, starts, lens }, [ab]);
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
