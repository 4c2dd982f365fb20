import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { VeritrailError } from './core/errors.js';

interface Pending {
  resolve(v: { hex: string; size: number }[]): void;
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
  private readonly queue: { paths: string[]; p: Pending }[] = [];
  private readonly inFlight = new Map<number, { slot: { worker: Worker; load: number }; p: Pending }>();
  private nextId = 0;

  constructor(
    private readonly size = Math.max(1, Math.min(availableParallelism(), 8)),
    private readonly depth = 2,
  ) {}

  hashFile(path: string): Promise<{ hex: string; size: number }> {
    return this.hashFiles([path]).then((r) => r[0] as { hex: string; size: number });
  }

  /**
   * Hashes many files, in order. They go to the workers in batches sized to keep every worker busy
   * to the end (a few batches per worker), so small files cost one message round trip per batch.
   */
  async hashFiles(paths: readonly string[]): Promise<{ hex: string; size: number }[]> {
    if (paths.length === 0) return [];
    const batch = Math.max(1, Math.min(64, Math.ceil(paths.length / (this.size * 4))));
    const parts: Promise<{ hex: string; size: number }[]>[] = [];
    for (let i = 0; i < paths.length; i += batch) {
      const chunk = paths.slice(i, i + batch);
      parts.push(
        new Promise((resolve, reject) => {
          this.queue.push({ paths: chunk, p: { resolve, reject } });
        }),
      );
    }
    this.pump();
    return (await Promise.all(parts)).flat();
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
      slot.worker.postMessage({ id, paths: job.paths });
    }
  }

  private spawn(): { worker: Worker; load: number } {
    const worker = new Worker(new URL('./hash-worker.mjs', import.meta.url));
    worker.unref();
    const slot = { worker, load: 0 };
    worker.on('message', (m: { id: number; results: WorkerResult[] }) => {
      const job = this.inFlight.get(m.id);
      if (!job) return;
      this.inFlight.delete(m.id);
      if (--slot.load === 0) worker.unref();
      const failed = m.results.find((r) => r.error);
      if (failed?.error) {
        job.p.reject(
          new VeritrailError('DATASET_UNREADABLE', `cannot read ${failed.error.message}`, {
            details: { code: failed.error.code },
          }),
        );
      } else {
        job.p.resolve(m.results.map((r) => ({ hex: r.hex ?? '', size: r.size ?? 0 })));
      }
      this.pump();
    });
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

type WorkerResult = { hex?: string; size?: number; error?: { code?: string; message: string } };

let shared: HashPool | undefined;
/** The process-wide pool. */
export function hashPool(): HashPool {
  shared ??= new HashPool();
  return shared;
}
