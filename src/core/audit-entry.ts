/**
 * Audit log entries: the JSON record of one event, its RFC 8785 canonical bytes and its RFC 6962
 * leaf hash. The entry's `prev` field is the hex leaf hash of the entry before it, so the entries
 * form a hash chain as well as the leaves of a Merkle tree: the chain pinpoints an altered entry,
 * the tree gives compact proofs.
 */

import type { AuditEntry, AuditEventInput } from '../ports.js';
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
