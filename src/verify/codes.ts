/**
 * What `veritrail verify` reports: one check per link of the chain of custody, each with a stable
 * code from a closed union (docs/verify.md lists them). Tests and scripts branch on `code`, never
 * on `detail`.
 */
import type { AttestationErrorCode, ChainCheckCode } from '../core/attest/index.js';

/** Codes of our own, beyond the attestation and chain codes of src/core/attest. */
export const VerifyOwnCodes = [
  /** A piece of evidence the run should have (an object, a fact, a key) is absent. */
  'EVIDENCE_MISSING',
  /** A fact of the run record is malformed (not a digest, not a content address…). */
  'RECORD_INVALID',
  /** Bytes hash to something else than the digest they are recorded or addressed under. */
  'DIGEST_MISMATCH',
  /** A stored manifest is not a veritrail manifest. */
  'MANIFEST_INVALID',
  /** The run record disagrees with the signed evidence (gate decision, status, signing key). */
  'RECORD_MISMATCH',
  /** The run has no audit entries, or lacks the entry that ends it. */
  'AUDIT_ENTRY_MISSING',
  /** An audit entry or the log cannot be read. */
  'AUDIT_CORRUPT',
  /** No signed checkpoint covers the run's entries. */
  'AUDIT_NOT_CHECKPOINTED',
  /** The checkpoint is not signed by the audit key (altered or forged). */
  'AUDIT_CHECKPOINT_INVALID',
  /** An entry is not included in the signed checkpoint: it was altered after the fact. */
  'AUDIT_PROOF_FAILED',
  /** An audit entry names other digests than the evidence. */
  'AUDIT_SUBJECT_MISMATCH',
  /** The audit log records another signing key than the one that verifies the bundles (a swapped key). */
  'KEY_MISMATCH',
  /** The report statement is absent, altered, or names other files than the evidence. */
  'REPORT_MISMATCH',
  /** Witnesses were named, but no checkpoint they cosigned covers the run's entries. */
  'AUDIT_NOT_WITNESSED',
] as const;

export type VerifyOwnCode = (typeof VerifyOwnCodes)[number];

/** Every code a check can carry. */
export type VerifyCode = 'OK' | VerifyOwnCode | AttestationErrorCode | Exclude<ChainCheckCode, 'OK'>;

export interface VerifyCheck {
  /** Stable dotted name of the link, e.g. `raw.data`, `provenance.signature`, `link.processed`. */
  name: string;
  ok: boolean;
  code: VerifyCode;
  detail: string;
}

export interface VerifyReport {
  ok: boolean;
  runId: string;
  /** The run's recorded status (SUCCEEDED, REJECTED, FAILED…). */
  status: string;
  checks: VerifyCheck[];
}

/** The first failing check: the first broken link along the chain. */
export function firstBroken(checks: readonly VerifyCheck[]): VerifyCheck | undefined {
  return checks.find((c) => !c.ok);
}

/** Errors of the verify module that stop it before any check (run unknown, keys unreadable). */
export type VerifyErrorCode = 'RUN_NOT_FOUND' | 'KEY_MISSING' | 'KEY_INVALID' | 'EXPORT_TARGET';

export class VerifyError extends Error {
  override readonly name = 'VerifyError';
  readonly code: VerifyErrorCode;

  constructor(code: VerifyErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
  }
}
