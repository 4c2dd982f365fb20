/**
 * The append-only audit log over the ObjectStore port (S3 with Object Lock on AWS, a folder of
 * read-only files locally), split as transparency-dev/tessera splits a log. This file only puts
 * the parts together behind the AuditLog port (`ObjectAuditLog`); each concept has its file:
 *
 *   layout.ts           the key of every object under the prefix, the batch framing
 *   objects.ts          reading and writing those objects (WORM, created once), the head hint
 *   appender.ts         pooling the appends of a process into batches (group commit, back-pressure)
 *   sequencer.ts        sequencing each batch by compare-and-set, the tail, the idempotency index
 *   integrate.ts        sealing entry bundles and hash tiles behind the appends
 *   checkpoints.ts      making, signing and cosigning checkpoints, repairing lost seals
 *   reader.ts           entries, checkpoints and proofs, read with the log's public key
 *   verify/             `audit verify` (log-verifier.ts: `verifyLog(log.reader)`) and the
 *                       offline verifiers (proof bundles, tiles-only client); log-verifier.ts is
 *                       not imported here, so what appends and checkpoints (every Lambda) does
 *                       not carry the verifier
 */
import type { SignedCheckpoint } from '../core/checkpoint.js';
import type { WitnessKey } from '../core/cosignature.js';
import type { AuditEntry, AuditEventInput, AuditLog, Bucket, ObjectStore, Signer } from '../ports.js';
import type { AppenderOptions } from './appender.js';
import { Checkpointer, type WitnessOutcome } from './checkpoints.js';
import { Integrator } from './integrate.js';
import { DEFAULT_ORIGIN, type LogLayout } from './layout.js';
import { LogObjects } from './objects.js';
import { LogReader } from './reader.js';
import { LogSequencer } from './sequencer.js';
import type { ProofBundle } from './verify/proof.js';
import type { WitnessClient } from './witness/http.js';

export interface AuditLogOptions {
  store: ObjectStore;
  /**
   * Signs checkpoints (`checkpoint`, and `prove` when no checkpoint covers the entry); its public
   * half, and only that, is the key `reader` (and so `verifyLog(log.reader)`) checks checkpoints
   * with by default.
   */
  signer?: Signer;
  /** The log's identity: first line of every checkpoint and the signature's key name. */
  origin?: string;
  bucket?: Bucket;
  prefix?: string;
  /** WORM retention of every object; default 7 years. */
  retentionDays?: number;
  now?: () => Date;
  /** How appends are pooled into batches (size, age, back-pressure). */
  batching?: AppenderOptions;
  /** Witnesses asked to cosign every checkpoint (c2sp.org/tlog-witness). */
  witnesses?: readonly WitnessClient[];
}

export class ObjectAuditLog implements AuditLog {
  readonly origin: string;
  private readonly objects: LogObjects;
  private readonly layout: LogLayout;
  /**
   * Reads the log with the signer's public half only: what `audit verify` reads through
   * (`verifyLog`, verify/log-verifier.ts), so that appending and checkpointing, the Lambdas' use,
   * do not carry the verifier.
   */
  readonly reader: LogReader;
  private readonly integrator: Integrator;
  private readonly sequencer: LogSequencer;
  private readonly checkpointer: Checkpointer;

  constructor(options: AuditLogOptions) {
    this.origin = options.origin ?? DEFAULT_ORIGIN;
    const now = options.now ?? (() => new Date());
    this.objects = new LogObjects({ ...options, now });
    this.layout = this.objects.layout;
    const signer = options.signer;
    this.reader = new LogReader({
      objects: this.objects,
      origin: this.origin,
      // The signer's public half only: reading never signs.
      publicKey:
        signer === undefined ? undefined : { keyId: signer.keyId, publicKeyPem: () => signer.publicKeyPem() },
      known: () => this.sequencer.knownSize(),
      checkpoint: () => this.checkpoint(),
    });
    this.integrator = new Integrator(this.objects, this.reader, (t) => this.sequencer.recentTile(t));
    this.sequencer = new LogSequencer({
      objects: this.objects,
      reader: this.reader,
      seal: (size) => this.integrator.sealTiles(size),
      now,
      batching: options.batching,
    });
    this.checkpointer = new Checkpointer({
      objects: this.objects,
      reader: this.reader,
      integrator: this.integrator,
      tail: this.sequencer,
      origin: this.origin,
      signer: options.signer,
      witnesses: options.witnesses,
    });
  }

  // ───────────── keys (layout.ts) ─────────────

  entryKey(seq: number): string {
    return this.layout.entryKey(seq);
  }

  checkpointKey(size: number): string {
    return this.layout.checkpointKey(size);
  }

  // ───────────── reading (reader.ts) ─────────────

  latestCheckpoint(): Promise<SignedCheckpoint | undefined> {
    return this.reader.latestCheckpoint();
  }

  /** See `LogReader.witnessedAt`. */
  witnessedAt(
    seq: number,
    witnesses: readonly WitnessKey[],
    trustedKeys?: readonly string[],
  ): Promise<{ checkpointSize: number; cosignatures: { witness: string; timestamp: number }[] } | undefined> {
    return this.reader.witnessedAt(seq, witnesses, trustedKeys);
  }

  /** See `LogReader.prove`: made from a new checkpoint when none covers `seq`. */
  prove(seq: number, options: { checkpointSize?: number } = {}): Promise<ProofBundle> {
    return this.reader.prove(seq, options);
  }

  proveConsistency(size1: number, size2: number): Promise<string[]> {
    return this.reader.proveConsistency(size1, size2);
  }

  readEntry(seq: number): Promise<{ bytes: Uint8Array; entry: AuditEntry }> {
    return this.reader.readEntry(seq);
  }

  entries(filter: { runId?: string } = {}): AsyncGenerator<AuditEntry> {
    return this.reader.entries(filter);
  }

  entriesOf(runId: string): AsyncGenerator<AuditEntry> {
    return this.reader.entriesOf(runId);
  }

  // ───────────── appending (sequencer.ts) ─────────────

  /** The number of entries: the end of the last batch. */
  size(): Promise<number> {
    return this.sequencer.size();
  }

  /**
   * Appends an event; resolves once the entry is durable (fsynced / acknowledged by S3). The same
   * eventId appended again returns the first entry and adds nothing. Concurrent appends of this
   * process travel together in batches (see appender.ts).
   */
  append(event: AuditEventInput): Promise<AuditEntry> {
    return this.sequencer.append(event);
  }

  /** Waits for the tile seals that appends started (integration runs behind the appends). */
  settle(): Promise<void> {
    return this.sequencer.settle();
  }

  /** See `LogSequencer.noteSigningKey`: a `signing.key-rotated` entry when the signing key changed. */
  noteSigningKey(keyId: string, publicKeyPem: string): Promise<void> {
    return this.sequencer.noteSigningKey(keyId, publicKeyPem);
  }

  // ───────────── checkpoints (checkpoints.ts) ─────────────

  /** See `Checkpointer.checkpoint`. */
  checkpoint(): Promise<SignedCheckpoint & { treeSize: number; witnessed: WitnessOutcome[] }> {
    return this.checkpointer.checkpoint();
  }
}

export function openAuditLog(options: AuditLogOptions): ObjectAuditLog {
  return new ObjectAuditLog(options);
}
