/**
 * Audit log entries: the JSON record of one event, its RFC 8785 canonical bytes and its RFC 6962
 * leaf hash. The entry's `prev` field is the hex leaf hash of the entry before it, so the entries
 * form a hash chain as well as the leaves of a Merkle tree: the chain pinpoints an altered entry,
 * the tree gives compact proofs.
 */

import type { Digest } from './digest.js';
import { canonicalBytes } from './jcs.js';
import { hashLeaf } from './merkle.js';

/** `prev` of entry 0. */
export const ZERO_HASH_HEX = '0'.repeat(64);

/** Entry bundles prefix each entry with a 16-bit length (c2sp.org/tlog-tiles), so entries stay below 64 KiB. */
export const MAX_ENTRY_BYTES = 0xffff;

const OUTCOMES = new Set(['success', 'failure', 'refused', 'info']);
const HEX64 = /^[0-9a-f]{64}$/;

export type EntryProblem = { ok: true; entry: AuditEntry } | { ok: false; reason: string };

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Checks an event a step wants to append; returns a reason when it cannot be recorded. */
export function eventProblem(e: unknown): string | undefined {
  if (!isRecord(e)) return 'the event is not an object';
  for (const k of ['eventId', 'pipeline', 'runId', 'step', 'type', 'actor'] as const) {
    if (typeof e[k] !== 'string' || (e[k] as string).length === 0)
      return `field "${k}" must be a non-empty string`;
  }
  if (typeof e.outcome !== 'string' || !OUTCOMES.has(e.outcome)) {
    return 'field "outcome" must be one of success, failure, refused, info';
  }
  if (e.subjects !== undefined) {
    if (!isRecord(e.subjects)) return 'field "subjects" must be an object of digests';
    for (const [role, d] of Object.entries(e.subjects)) {
      if (typeof d !== 'string' || !/^sha256:[0-9a-f]{64}$/.test(d))
        return `subject "${role}" is not a sha256 digest`;
    }
  }
  if (e.detail !== undefined && !isRecord(e.detail)) return 'field "detail" must be an object';
  return undefined;
}

/** Builds the entry for `event` at `seq`; only the fields of the port are kept. */
export function makeEntry(event: AuditEventInput, seq: number, time: Date, prevHex: string): AuditEntry {
  const entry: AuditEntry = {
    seq,
    time: time.toISOString(),
    prev: prevHex,
    eventId: event.eventId,
    pipeline: event.pipeline,
    runId: event.runId,
    step: event.step,
    type: event.type,
    outcome: event.outcome,
    actor: event.actor,
  };
  if (event.subjects !== undefined) entry.subjects = { ...event.subjects };
  if (event.detail !== undefined) entry.detail = event.detail;
  return entry;
}

/** RFC 8785 bytes: what is stored and what is hashed. */
export function entryBytes(entry: AuditEntry): Uint8Array {
  return canonicalBytes(entry);
}

/** The RFC 6962 leaf hash of an entry's stored (canonical) bytes. */
export function entryLeafHash(bytes: Uint8Array): Uint8Array {
  return hashLeaf(bytes);
}

export function toHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

/** Parses stored entry bytes and checks the shape; never throws. */
export function parseEntry(bytes: Uint8Array): EntryProblem {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch {
    return { ok: false, reason: 'not JSON' };
  }
  if (!isRecord(v)) return { ok: false, reason: 'not a JSON object' };
  if (!Number.isSafeInteger(v.seq) || (v.seq as number) < 0) return { ok: false, reason: 'bad "seq"' };
  if (typeof v.time !== 'string') return { ok: false, reason: 'bad "time"' };
  if (typeof v.prev !== 'string' || !HEX64.test(v.prev)) return { ok: false, reason: 'bad "prev"' };
  const problem = eventProblem(v);
  if (problem !== undefined) return { ok: false, reason: problem };
  return { ok: true, entry: v as unknown as AuditEntry };
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const PREV_KEY = Buffer.from('"prev":"', 'latin1');
const RUNID_KEY = Buffer.from(',"runId":"', 'latin1');
const SEQ_KEY = Buffer.from(',"seq":', 'latin1');

function matchAt(bytes: Uint8Array, at: number, what: Uint8Array): boolean {
  if (at + what.length > bytes.length) return false;
  for (let k = 0; k < what.length; k++) if (bytes[at + k] !== what[k]) return false;
  return true;
}

/** The index just past the closing quote of the JSON string whose opening quote is at `at - 1`. */
function skipString(bytes: Uint8Array, at: number): number {
  for (let i = at; i < bytes.length; i++) {
    const c = bytes[i];
    if (c === BACKSLASH) i += 1;
    else if (c === QUOTE) return i + 1;
  }
  return -1;
}

/**
 * The chain fields of an entry's canonical bytes without parsing it: the offset of the 64 hex
 * digits of the top-level `prev`, and the top-level `seq`. RFC 8785 §3.2.3 sorts keys, so at the
 * top level `prev` is followed by `runId` then `seq`. The first `"prev":"` followed by that shape
 * is taken (a key inside a string is escaped and cannot match); only an object in `detail` could
 * mimic it, and then the link check fails and callers fall back to `parseEntry`, as they do when
 * the bytes do not have that shape. Hashes, not this scan, are what detect tampering: a mimic
 * changes the entry's leaf hash like any other edit.
 */
export function chainFields(bytes: Uint8Array): { prevAt: number; seq: number } | undefined {
  const b = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (b[0] !== 0x7b) return undefined;
  let key = b.indexOf(PREV_KEY);
  while (
    key >= 0 &&
    (b[key + PREV_KEY.length + 64] !== QUOTE || !matchAt(b, key + PREV_KEY.length + 65, RUNID_KEY))
  ) {
    key = b.indexOf(PREV_KEY, key + 1);
  }
  if (key < 0) return undefined;
  const prevAt = key + PREV_KEY.length;
  const afterRun = skipString(b, prevAt + 65 + RUNID_KEY.length);
  if (afterRun < 0 || !matchAt(b, afterRun, SEQ_KEY)) return undefined;
  const start = afterRun + SEQ_KEY.length;
  let j = start;
  let seq = 0;
  for (; j < b.length && j - start < 16; j++) {
    const d = b[j] as number;
    if (d < 0x30 || d > 0x39) break;
    seq = seq * 10 + (d - 0x30);
  }
  // RFC 8785 numbers have no leading zeros; the next token must be the next key.
  if (j === start || (b[start] === 0x30 && j - start > 1) || b[j] !== 0x2c) return undefined;
  return { prevAt, seq };
}

/** What a step records. The log adds seq, time and the previous entry's hash. */
export interface AuditEventInput {
  /** Idempotency key: appending the same eventId twice returns the first entry and adds nothing. */
  eventId: string;
  pipeline: string;
  runId: string;
  step: string;
  /** e.g. `run.registered`, `step.succeeded`, `step.failed`, `gate.decided`, `run.finished`. */
  type: string;
  outcome: 'success' | 'failure' | 'refused' | 'info';
  /** Principal or execution ARN on AWS; `user@host` locally. */
  actor: string;
  /** Content digests this event is about, by role. */
  subjects?: Record<string, Digest>;
  /** Small JSON facts (an error code and message, a decision…). Never a credential. */
  detail?: Record<string, unknown>;
}

export interface AuditEntry extends AuditEventInput {
  seq: number;
  time: string;
  /** Hex leaf hash of entry seq-1 (64 zeros for seq 0): the hash chain. */
  prev: string;
}
