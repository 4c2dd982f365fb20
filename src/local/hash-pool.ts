import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { VeritrailError } from '../core/errors.js';

interface Pending {
  resolve(v: { hex: string; size: number }): void;
  reject(e: Error): void;
}

/**
 * A small pool of worker threads hashing files with SHA-256, so a folder of many files keeps every
 * core busy. Workers are unref'd: an idle pool never keeps the process alive.
 */
export class HashPool {
  private readonly workers: Worker[] = [];
  private readonly idle: Worker[] = [];
  private readonly queue: { path: string; p: Pending }[] = [];
  private readonly inFlight = new Map<number, { worker: Worker; p: Pending }>();
  private nextId = 0;

  constructor(private readonly size = Math.max(1, Math.min(availableParallelism(), 8))) {}

  hashFile(path: string): Promise<{ hex: string; size: number }> {
    return new Promise((resolve, reject) => {
      this.queue.push({ path, p: { resolve, reject } });
      this.pump();
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
    this.workers.length = 0;
    this.idle.length = 0;
  }

  private pump(): void {
    while (this.queue.length > 0) {
      let worker = this.idle.pop();
      if (!worker && this.workers.length < this.size) worker = this.spawn();
      if (!worker) return;
      const job = this.queue.shift();
      if (!job) return;
      const id = this.nextId++;
      this.inFlight.set(id, { worker, p: job.p });
      worker.ref();
      worker.postMessage({ id, path: job.path });
    }
  }

  private spawn(): Worker {
    const worker = new Worker(new URL('./hash-worker.mjs', import.meta.url));
    worker.unref();
    worker.on(
      'message',
      (m: { id: number; hex?: string; size?: number; error?: { code?: string; message: string } }) => {
        const job = this.inFlight.get(m.id);
        if (!job) return;
        this.inFlight.delete(m.id);
        worker.unref();
        this.idle.push(worker);
        if (m.error) {
          job.p.reject(
            new VeritrailError('DATASET_UNREADABLE', `cannot read ${m.error.message}`, {
              details: { code: m.error.code },
            }),
          );
        } else {
          job.p.resolve({ hex: m.hex ?? '', size: m.size ?? 0 });
        }
        this.pump();
      },
    );
    worker.on('error', (e) => {
      for (const [id, job] of this.inFlight) {
        if (job.worker === worker) {
          this.inFlight.delete(id);
          job.p.reject(e);
        }
      }
    });
    this.workers.push(worker);
    return worker;
  }
}

let shared: HashPool | undefined;
/** The process-wide pool. */
export function hashPool(): HashPool {
  shared ??= new HashPool();
  return shared;
}
