/**
 * What `veritrail verify` reports: one check per link of the chain of custody, each with a stable
 * code from a closed union (docs/verify.md lists them). Tests and scripts branch on `code`, never
 * on `detail`.
 */
import { AttestationErrorCodes, type ChainCheckCode } from '../core/attest/index.js';
import { CodedError } from '../core/errors.js';

/** Codes of our own, beyond the attestation and chain codes of src/core/attest. */
const VerifyOwnCodes = [
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

/**
 * The codes of src/core/attest's chain checks that are not attestation codes too. Its
 * `STATEMENT_MISSING` is not one of ours: a slot without a statement always has a failing
 * `<slot>.signature` check already (src/verify/checks/signatures.ts), so verify never reports it.
 */
const VerifyChainCodes = [
  'DEPENDENCY_MISMATCH',
  'LINK_BROKEN',
  'RUN_MISMATCH',
] as const satisfies readonly ChainCheckCode[];

/** Every code a check can carry, `OK` first (docs/verify.md lists them; a test holds the two equal). */
export const VerifyCodes = ['OK', ...VerifyOwnCodes, ...AttestationErrorCodes, ...VerifyChainCodes] as const;

/** Every code a check can carry. */
export type VerifyCode = (typeof VerifyCodes)[number];

/**
 * Every check `veritrail verify <runId>` can report, in the order it runs them: one name per link
 * of the chain of custody. docs/verify.md's table lists exactly these (test/unit/verify-docs.test.ts).
 * The chain checks of src/core/attest (`<slot>.predicate`, `<slot>.subject`, `transform.raw`,
 * `provenance.*`, `link.*` but `link.evaluation-data`, `run.id`) are narrowed to this union as
 * they are recorded; `transform.code` and `provenance.image` are absent because verify never hands
 * checkChain a transform-code or image digest to compare.
 */
export const VerifyCheckNames = [
  'raw.manifest',
  'raw.data',
  'processed.manifest',
  'processed.data',
  'model.data',
  'transform.signature',
  'provenance.signature',
  'model-signing.signature',
  'fairness.signature',
  'gate.signature',
  'transform.predicate',
  'transform.subject',
  'transform.raw',
  'provenance.predicate',
  'provenance.subject',
  'provenance.raw',
  'provenance.processed',
  'provenance.code',
  'link.raw',
  'link.processed',
  'model-signing.predicate',
  'model-signing.subject',
  'link.model-signing',
  'fairness.predicate',
  'fairness.subject',
  'link.fairness',
  'gate.predicate',
  'gate.subject',
  'link.gate',
  'run.id',
  'link.evaluation-data',
  'fairness.report',
  'gate.decision',
  'report.statement',
  'record.dataset',
  'record.gate',
  'record.status',
  'record.registry',
  'record.signing-key',
  'audit.entries',
  'audit.checkpoint',
  'audit.inclusion',
  'audit.witnessed',
  'audit.subjects',
  'audit.report',
  'audit.signing-key',
] as const;

export type VerifyCheckName = (typeof VerifyCheckNames)[number];

const CHECK_NAMES: ReadonlySet<string> = new Set(VerifyCheckNames);

/** True when `name` is a check `veritrail verify <runId>` reports. */
export function isVerifyCheckName(name: string): name is VerifyCheckName {
  return CHECK_NAMES.has(name);
}

/**
 * One check. `Name` is {@link VerifyCheckName} in a run's report; `verify --bundle` and
 * `report --check` name their few checks (`bundle.signature`, `report.rendering`…) themselves.
 */
export interface VerifyCheck<Name extends string = string> {
  /** Stable dotted name of the link, e.g. `raw.data`, `provenance.signature`, `link.processed`. */
  name: Name;
  ok: boolean;
  code: VerifyCode;
  detail: string;
}

/** A verification's result; a run's (`verifyRunWith`) is a `VerifyReport<VerifyCheckName>`. */
export interface VerifyReport<Name extends string = string> {
  ok: boolean;
  runId: string;
  /** The run's recorded status (SUCCEEDED, REJECTED, FAILED…). */
  status: string;
  checks: VerifyCheck<Name>[];
}

/** The first failing check: the first broken link along the chain. */
export function firstBroken<C extends VerifyCheck>(checks: readonly C[]): C | undefined {
  return checks.find((c) => !c.ok);
}

/** Errors of the verify module that stop it before any check (run unknown, keys unreadable). */
export type VerifyErrorCode = 'RUN_NOT_FOUND' | 'KEY_MISSING' | 'KEY_INVALID' | 'EXPORT_TARGET';

export class VerifyError extends CodedError<VerifyErrorCode> {
  override readonly name = 'VerifyError';
}
