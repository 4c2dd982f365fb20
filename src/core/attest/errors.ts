import type { ErrorCode } from '../errors.js';
import { CodedError, VeritrailError } from '../errors.js';

/**
 * Why an attestation was refused. A closed union, stable across releases: callers, tests and the
 * `veritrail verify --json` output branch on it.
 */
export const AttestationErrorCodes = [
  /** Not a Sigstore bundle v0.3 / DSSE envelope we can read: bad JSON shape, bad base64, ≠1 signature. */
  'BUNDLE_MALFORMED',
  /** The public key handed in is not a PEM SubjectPublicKeyInfo EC key on a supported curve. */
  'KEY_INVALID',
  /** The signature does not verify over PAE(payloadType, payload) with the given key. */
  'SIGNATURE_INVALID',
  /** The (signed) payloadType is not `application/vnd.in-toto+json`. */
  'PAYLOAD_TYPE',
  /** The signed payload is not an in-toto Statement v1. */
  'STATEMENT_MALFORMED',
  /** The statement has another predicateType than the one the caller expects. */
  'PREDICATE_TYPE',
  /** The predicate does not match the schema of its (known) predicateType. */
  'PREDICATE_MALFORMED',
  /** No subject digest equals the artifact's digest. */
  'SUBJECT_MISMATCH',
] as const;

export type AttestationErrorCode = (typeof AttestationErrorCodes)[number];

/** How each attestation code maps onto the domain-wide {@link ErrorCode} (run records, CLI exit). */
const ATTESTATION_TO_DOMAIN_CODE: Readonly<Record<AttestationErrorCode, ErrorCode>> = {
  BUNDLE_MALFORMED: 'ATTESTATION_INVALID',
  KEY_INVALID: 'USAGE',
  SIGNATURE_INVALID: 'SIGNATURE_INVALID',
  PAYLOAD_TYPE: 'ATTESTATION_INVALID',
  STATEMENT_MALFORMED: 'ATTESTATION_INVALID',
  PREDICATE_TYPE: 'ATTESTATION_INVALID',
  PREDICATE_MALFORMED: 'ATTESTATION_INVALID',
  SUBJECT_MISMATCH: 'DIGEST_MISMATCH',
};

export class AttestationError extends CodedError<AttestationErrorCode> {
  override readonly name = 'AttestationError';

  /** The same failure as a domain {@link VeritrailError}, keeping this error as `cause`. */
  toVeritrailError(): VeritrailError {
    return new VeritrailError(ATTESTATION_TO_DOMAIN_CODE[this.code], `${this.message} [${this.code}]`, {
      cause: this,
      details: { attestationCode: this.code, ...this.details },
    });
  }
}

export function isAttestationError(e: unknown, code?: AttestationErrorCode): e is AttestationError {
  return e instanceof AttestationError && (code === undefined || e.code === code);
}
