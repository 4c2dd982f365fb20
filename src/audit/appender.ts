/**
 * The appender front end: pools the appends of every caller in this process and hands them to the
 * sequencer a batch at a time (as transparency-dev/tessera's appender does), with back-pressure.
 *
 * Group commit: a batch is flushed as soon as the previous one is durable (or after `maxAgeMs`
 * when that is set), so a lone caller waits one store write, and under load a batch holds every
 * append that arrived while the previous batch was being written, up to `maxBatch`.
 *
 * Everything about storage (where a batch goes, how conflicts are resolved, idempotency) is the
 * sequencer's: this file only decides which appends travel together and when.
 */
import { VeritrailError } from '../core/errors.js';
import type { AuditEntry, AuditEventInput } from '../ports.js';

export interface AppenderOptions {
  /** Entries in one batch at most (Tessera's default is 256). */
  maxBatch?: number;
  /** Wait this long for more appends before flushing a batch that is not full; default 0 (group commit). */
  maxAgeMs?: number;
  /** Appends waiting for a batch at most; further callers wait (back-pressure). Default 4096. */
  maxPending?: number;
}

/** What the appender asks of the log: sequence these events as one batch (or fewer, at its choice). */
export interface Sequencer {
  /**
   * Durably sequences a prefix of `events` in one conditional write and returns the entry of each
   * event it took (an earlier entry for an event already in the log), in order, or the error that
   * refuses that one event. Events it did not take (the batch was cut at a tile boundary) are
   * offered again in the next call.
   */
  sequence(events: readonly AuditEventInput[]): Promise<(AuditEntry | Error)[]>;
}

interface Waiting {
  event: AuditEventInput;
  resolve(entry: AuditEntry): void;
  reject(error: unknown): void;
}

export class BatchAppender {
  private readonly maxBatch: number;
  private readonly maxAgeMs: number;
  private readonly maxPending: number;
  private readonly pending: Waiting[] = [];
  private readonly blocked: (() => void)[] = [];
  private running = false;

  constructor(
    private readonly sequencer: Sequencer,
    options: AppenderOptions = {},
  ) {
    this.maxBatch = options.maxBatch ?? 256;
    this.maxAgeMs = options.maxAgeMs ?? 0;
    this.maxPending = options.maxPending ?? 4096;
    if (!Number.isInteger(this.maxBatch) || this.maxBatch < 1 || this.maxBatch > 256) {
      throw new VeritrailError('USAGE', 'maxBatch must be an integer from 1 to 256');
    }
  }

  /** Appends waiting for a batch right now (for tests and metrics). */
  get waiting(): number {
    return this.pending.length;
  }

  /** Resolves once the entry is durable. */
  async append(event: AuditEventInput): Promise<AuditEntry> {
    while (this.pending.length >= this.maxPending) {
      await new Promise<void>((resolve) => this.blocked.push(resolve));
    }
    const done = new Promise<AuditEntry>((resolve, reject) => {
      this.pending.push({ event, resolve, reject });
    });
    if (!this.running) {
      this.running = true;
      void this.run();
    }
    return done;
  }

  private async run(): Promise<void> {
    try {
      if (this.maxAgeMs > 0 && this.pending.length < this.maxBatch) {
        await new Promise((r) => setTimeout(r, this.maxAgeMs));
      }
      while (this.pending.length > 0) {
        // Let the callers just acknowledged queue their next append first: without this turn, a
        // batch of one would leave alone with the others waiting behind it.
        await new Promise((r) => setImmediate(r));
        const batch = this.pending.slice(0, this.maxBatch);
        let entries: (AuditEntry | Error)[];
        try {
          entries = await this.sequencer.sequence(batch.map((w) => w.event));
        } catch (e) {
          // The whole batch failed (nothing of it was acknowledged): its callers see the error.
          this.pending.splice(0, batch.length);
          for (const w of batch) w.reject(e);
          this.unblock();
          continue;
        }
        this.pending.splice(0, entries.length);
        for (let i = 0; i < entries.length; i++) {
          const e = entries[i] as AuditEntry | Error;
          if (e instanceof Error) (batch[i] as Waiting).reject(e);
          else (batch[i] as Waiting).resolve(e);
        }
        this.unblock();
      }
    } finally {
      this.running = false;
      // An append that arrived between the last check and `running = false` still gets a flush.
      if (this.pending.length > 0) {
        this.running = true;
        void this.run();
      }
    }
  }

  private unblock(): void {
    while (this.blocked.length > 0 && this.pending.length < this.maxPending) this.blocked.shift()?.();
  }
}
