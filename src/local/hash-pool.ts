import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { VeritrailError } from '../core/errors.js';

interface Pending {
  resolve(v: { hex: string; size: number }): void;
  reject(e: Error): void;
}

/**
 * A small pool of worker threads hashing files with SHA-256, so a folder of many files keeps every
 * core busy. Each worker is handed a few jobs ahead (`depth`): with small files, a worker that had
 * to wait for the main thread's next message between files would idle for a round trip each time.
 * Workers are unref'd while they have nothing to do: an idle pool never keeps the process alive.
 */
export class HashPool {
  private readonly workers: { worker: Worker; load: number }[] = [];
  private readonly queue: { path: string; p: Pending }[] = [];
  private readonly inFlight = new Map<number, { slot: { worker: Worker; load: number }; p: Pending }>();
  private nextId = 0;

  constructor(
    private readonly size = Math.max(1, Math.min(availableParallelism(), 8)),
    private readonly depth = 4,
  ) {}

  hashFile(path: string): Promise<{ hex: string; size: number }> {
    return new Promise((resolve, reject) => {
      this.queue.push({ path, p: { resolve, reject } });
      this.pump();
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.worker.terminate()));
    this.workers.length = 0;
  }

  /** The least loaded worker with room, spawning one while the pool is not full. */
  private pick(): { worker: Worker; load: number } | undefined {
    let best: { worker: Worker; load: number } | undefined;
    for (const w of this.workers)
      if (w.load < this.depth && (best === undefined || w.load < best.load)) best = w;
    if ((best === undefined || best.load > 0) && this.workers.length < this.size) return this.spawn();
    return best;
  }

  private pump(): void {
    while (this.queue.length > 0) {
      const slot = this.pick();
      if (!slot) return;
      const job = this.queue.shift();
      if (!job) return;
      const id = this.nextId++;
      this.inFlight.set(id, { slot, p: job.p });
      if (slot.load++ === 0) slot.worker.ref();
      slot.worker.postMessage({ id, path: job.path });
    }
  }

  private spawn(): { worker: Worker; load: number } {
    const worker = new Worker(new URL('./hash-worker.mjs', import.meta.url));
    worker.unref();
    const slot = { worker, load: 0 };
    worker.on(
      'message',
      (m: { id: number; hex?: string; size?: number; error?: { code?: string; message: string } }) => {
        const job = this.inFlight.get(m.id);
        if (!job) return;
        this.inFlight.delete(m.id);
        if (--slot.load === 0) worker.unref();
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
      const i = this.workers.indexOf(slot);
      if (i >= 0) this.workers.splice(i, 1);
      for (const [id, job] of this.inFlight) {
        if (job.slot === slot) {
          this.inFlight.delete(id);
          job.p.reject(e);
        }
      }
      this.pump();
    });
    this.workers.push(slot);
    return slot;
  }
}

let shared: HashPool | undefined;
/** The process-wide pool. */
export function hashPool(): HashPool {
  shared ??= new HashPool();
  return shared;
}
