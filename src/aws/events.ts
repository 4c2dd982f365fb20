/**
 * veritrail's own domain events on EventBridge (source `veritrail`): run status changes and
 * OpenLineage RunEvents, for operators' rules and lineage consumers.
 *
 * PutEvents can succeed as a call while failing some entries (`FailedEntryCount` > 0, an
 * `ErrorCode` per failed entry): those entries are retried with backoff, alone, and an entry that
 * still fails — or fails for a reason retrying cannot fix — is an error, never silently dropped.
 */
import {
  type EventBridgeClient,
  PutEventsCommand,
  type PutEventsRequestEntry,
} from '@aws-sdk/client-eventbridge';
import { VeritrailError } from '../core/errors.js';
import { awsCall } from './errors.js';

const EVENT_SOURCE = 'veritrail';

export const DetailType = {
  RUN_STATUS_CHANGE: 'Run Status Change',
  OPENLINEAGE_RUN_EVENT: 'OpenLineage RunEvent',
  AUDIT_CHECKPOINT: 'Audit Checkpoint',
} as const;
export type DetailType = (typeof DetailType)[keyof typeof DetailType];

export interface DomainEvent {
  detailType: DetailType;
  detail: Record<string, unknown>;
  /** ARNs the event is about (the execution, the training job…). */
  resources?: string[];
  time?: Date;
}

export interface EventPublisherOptions {
  /** Default: the account's `default` bus. */
  eventBusName?: string;
  /** Attempts per entry, first one included. Default 4. */
  maxAttempts?: number;
  /** First backoff delay; doubles each attempt, with full jitter. Default 100 ms. */
  baseDelayMs?: number;
  /** Injected for tests. */
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
}

/** PutEvents limits: 10 entries per call, 256 KiB per call (entry size as AWS computes it). */
const MAX_ENTRIES_PER_CALL = 10;
const MAX_ENTRY_BYTES = 256 * 1024;

/** Per-entry error codes worth retrying; anything else (malformed detail, access) is final. */
const RETRYABLE_ENTRY_ERRORS = new Set([
  'InternalFailure',
  'InternalException',
  'ThrottlingException',
  'ServiceUnavailable',
]);

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Entry size as the PutEvents docs define it: UTF-8 bytes of Source, DetailType, Detail, Resources, plus 14 for Time. */
function entrySize(e: PutEventsRequestEntry): number {
  let size = e.Time ? 14 : 0;
  for (const s of [e.Source, e.DetailType, e.Detail, ...(e.Resources ?? [])]) {
    if (s) size += Buffer.byteLength(s);
  }
  return size;
}

export class EventPublisher {
  private readonly maxAttempts: number;
  private readonly baseDelayMs: number;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly random: () => number;

  constructor(
    private readonly eventbridge: EventBridgeClient,
    private readonly options: EventPublisherOptions = {},
  ) {
    this.maxAttempts = options.maxAttempts ?? 4;
    this.baseDelayMs = options.baseDelayMs ?? 100;
    this.sleep = options.sleep ?? defaultSleep;
    this.random = options.random ?? Math.random;
  }

  private toEntry(event: DomainEvent): PutEventsRequestEntry {
    const entry: PutEventsRequestEntry = {
      Source: EVENT_SOURCE,
      DetailType: event.detailType,
      Detail: JSON.stringify(event.detail),
    };
    if (this.options.eventBusName) entry.EventBusName = this.options.eventBusName;
    if (event.resources?.length) entry.Resources = [...event.resources];
    if (event.time) entry.Time = event.time;
    const size = entrySize(entry);
    if (size > MAX_ENTRY_BYTES) {
      throw new VeritrailError(
        'EVENT_INVALID',
        `a "${event.detailType}" event is ${size} bytes; EventBridge accepts at most ${MAX_ENTRY_BYTES}. Put large facts in the artifacts bucket and reference them by key and digest`,
      );
    }
    return entry;
  }

  /** Publishes events in order-preserving batches; resolves once every entry was accepted. */
  async publish(events: DomainEvent[]): Promise<void> {
    const entries = events.map((e) => this.toEntry(e));
    let batch: PutEventsRequestEntry[] = [];
    let batchBytes = 0;
    for (const entry of entries) {
      const size = entrySize(entry);
      if (batch.length === MAX_ENTRIES_PER_CALL || batchBytes + size > MAX_ENTRY_BYTES) {
        await this.putBatch(batch);
        batch = [];
        batchBytes = 0;
      }
      batch.push(entry);
      batchBytes += size;
    }
    if (batch.length > 0) await this.putBatch(batch);
  }

  private async putBatch(batch: PutEventsRequestEntry[]): Promise<void> {
    let pending = batch;
    for (let attempt = 1; ; attempt++) {
      const out = await awsCall(
        { action: 'events:PutEvents', resource: `event-bus/${this.options.eventBusName ?? 'default'}` },
        () => this.eventbridge.send(new PutEventsCommand({ Entries: pending })),
      );
      if (!out.FailedEntryCount) return;
      // Results are positional: result i belongs to entry i of the request.
      const failed: { entry: PutEventsRequestEntry; code: string; message: string }[] = [];
      pending.forEach((entry, i) => {
        const r = out.Entries?.[i];
        if (r?.ErrorCode) failed.push({ entry, code: r.ErrorCode, message: r.ErrorMessage ?? '' });
      });
      const final = failed.filter((f) => !RETRYABLE_ENTRY_ERRORS.has(f.code));
      if (final.length > 0 || attempt >= this.maxAttempts || failed.length === 0) {
        const first = final[0] ?? failed[0];
        throw new VeritrailError(
          final.length > 0 ? 'EVENT_INVALID' : 'TRANSIENT',
          `EventBridge rejected ${failed.length || out.FailedEntryCount} of ${pending.length} events after ${attempt} attempt(s)${first ? ` (${first.code}: ${first.message}; detail type "${first.entry.DetailType}")` : ''}; ${final.length > 0 ? 'fix the event' : 'retry later'}`,
          { details: { failed: failed.map((f) => ({ code: f.code, detailType: f.entry.DetailType })) } },
        );
      }
      pending = failed.map((f) => f.entry);
      // Exponential backoff with full jitter.
      await this.sleep(Math.floor(this.random() * this.baseDelayMs * 2 ** (attempt - 1)));
    }
  }
}
