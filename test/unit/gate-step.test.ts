import { describe, expect, it } from 'vitest';
import { AttestationError } from '../../src/core/attest/errors.js';
import { VeritrailError } from '../../src/core/errors.js';
import { isEvidenceProblem } from '../../src/steps/gate.js';

describe('Gate: what may become a policy verdict', () => {
  it('treats forged, malformed, unlinked or missing evidence as a fact the policy weighs', () => {
    expect(isEvidenceProblem(new AttestationError('SIGNATURE_INVALID', 'bad signature'))).toBe(true);
    expect(isEvidenceProblem(new SyntaxError('Unexpected token'))).toBe(true);
    for (const code of [
      'SIGNATURE_INVALID',
      'ATTESTATION_INVALID',
      'DIGEST_MISMATCH',
      'OBJECT_NOT_FOUND',
    ] as const) {
      expect(isEvidenceProblem(new VeritrailError(code, 'evidence'))).toBe(true);
    }
  });

  describe('when reading the evidence fails rather than the evidence', () => {
    it('never turns a refused call into "provenance not verified"', () => {
      // An IAM, key or bucket policy refusal (e.g. kms:GetPublicKey not granted) must fail the run
      // with that reason, not end it REJECTED as if the model's provenance were broken.
      expect(isEvidenceProblem(new VeritrailError('ACCESS_DENIED', 'access denied: kms:GetPublicKey'))).toBe(
        false,
      );
      expect(isEvidenceProblem(new VeritrailError('TRANSIENT', 'throttled'))).toBe(false);
      expect(isEvidenceProblem(new VeritrailError('INTERNAL', 'boom'))).toBe(false);
      expect(isEvidenceProblem(new TypeError('x is undefined'))).toBe(false);
    });
  });
});
