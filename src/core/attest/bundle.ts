import { Buffer } from 'node:buffer';
import type { Digest } from '../digest.js';
import { canonicalDigest } from '../jcs.js';
import { type DecodedEnvelope, type DsseEnvelope, decodeEnvelope, signEnvelope, verifyPae } from './dsse.js';
import { AttestationError } from './errors.js';
import type { Signer } from './keys.js';
import { parsePublicKey } from './keys.js';
import { IN_TOTO_PAYLOAD_TYPE, type Statement, statementPayload } from './statement.js';

/**
 * Sigstore bundle v0.3, JSON form (sigstore/protobuf-specs protos/sigstore_bundle.proto, message
 * Bundle; field names are the protobuf JSON mapping's lowerCamelCase: media_type → mediaType,
 * verification_material → verificationMaterial, public_key → publicKey, tlog_entries →
 * tlogEntries, dsse_envelope → dsseEnvelope; bytes fields are base64).
 *
 * We use VerificationMaterial form (1), a PublicKeyIdentifier (sigstore_common.proto: `hint`),
 * which the proto allows for self-managed keys, and no transparency log entries: veritrail keeps
 * its own append-only audit log, and the key (KMS or local) is handed to the verifier out of
 * band. `tlogEntries` is written as an empty list, as model-transparency does for key-signed bundles.
 */
export const BUNDLE_MEDIA_TYPE = 'application/vnd.dev.sigstore.bundle.v0.3+json';

/** Media types accepted when reading (sigstore_bundle.proto: clients must accept the older spelling of 0.3). */
const ACCEPTED_MEDIA_TYPES: readonly string[] = [
  BUNDLE_MEDIA_TYPE,
  'application/vnd.dev.sigstore.bundle+json;version=0.3',
];

export interface SigstoreBundle {
  mediaType: typeof BUNDLE_MEDIA_TYPE;
  verificationMaterial: { publicKey: { hint: string }; tlogEntries: [] };
  dsseEnvelope: DsseEnvelope;
}

export interface SignedStatement {
  bundle: SigstoreBundle;
  /** sha256 of the DSSE payload bytes (= {@link statementDigest} of the statement). */
  payloadDigest: Digest;
  /** The key hint written in the bundle and as DSSE keyid. */
  keyHint: string;
}

/**
 * sha256 of the RFC 8785 canonical statement: the digest of the DSSE payload that
 * {@link signStatement} signs. Gate and retrain-skip predicates name statements by it.
 */
export function statementDigest(statement: Statement): Digest {
  return canonicalDigest(statement);
}

/**
 * Signs an in-toto statement into a Sigstore bundle: payload = RFC 8785 canonical statement,
 * payloadType `application/vnd.in-toto+json`, one DSSE signature whose keyid equals
 * `verificationMaterial.publicKey.hint` (sigstore_bundle.proto: "the key hints MUST be exactly
 * the same"). The fresh signature is checked against the signer's own public key before the
 * bundle is returned, so a misconfigured signer (wrong key spec, a KMS MessageType mix-up) fails
 * here with SIGNATURE_INVALID instead of producing a bundle nobody can verify.
 */
export async function signStatement(statement: Statement, signer: Signer): Promise<SignedStatement> {
  const key = parsePublicKey(await signer.publicKeyPem());
  const payload = statementPayload(statement);
  const dsseEnvelope = await signEnvelope(IN_TOTO_PAYLOAD_TYPE, payload, signer, { keyid: key.hint });
  const sig = dsseEnvelope.signatures[0]?.sig ?? '';
  if (!verifyPae(key, IN_TOTO_PAYLOAD_TYPE, payload, new Uint8Array(Buffer.from(sig, 'base64')))) {
    throw new AttestationError(
      'SIGNATURE_INVALID',
      `signer ${signer.keyId} returned a signature that does not verify with its own public key: check that it signs sha256(message) with ECDSA P-256 and returns DER`,
    );
  }
  return {
    bundle: {
      mediaType: BUNDLE_MEDIA_TYPE,
      verificationMaterial: { publicKey: { hint: key.hint }, tlogEntries: [] },
      dsseEnvelope,
    },
    payloadDigest: canonicalDigest(statement),
    keyHint: key.hint,
  };
}

/** The bundle as JSON text (2-space indent, trailing newline); the text itself is not signed. */
export function serializeBundle(bundle: SigstoreBundle): string {
  return `${JSON.stringify(bundle, null, 2)}\n`;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A bundle read back: the (unauthenticated) key hint and the decoded DSSE envelope. */
export interface ParsedBundle {
  keyHint: string | undefined;
  envelope: DecodedEnvelope;
}

/**
 * Reads a bundle from JSON text, UTF-8 bytes or an already parsed value. BUNDLE_MALFORMED unless
 * it is a v0.3 bundle with publicKey verification material and a DSSE envelope with exactly one
 * signature (sigstore_bundle.proto: "a client MUST reject an envelope if the number of signatures
 * is not equal to one"). tlogEntries, if any, are not read.
 */
export function parseBundle(input: unknown): ParsedBundle {
  let value = input;
  if (input instanceof Uint8Array) {
    try {
      value = new TextDecoder('utf-8', { fatal: true }).decode(input);
    } catch (cause) {
      throw new AttestationError('BUNDLE_MALFORMED', 'the bundle is not UTF-8 text', { cause });
    }
  }
  if (typeof value === 'string') {
    try {
      value = JSON.parse(value);
    } catch (cause) {
      throw new AttestationError('BUNDLE_MALFORMED', 'the bundle is not JSON', { cause });
    }
  }
  if (!isRecord(value)) throw new AttestationError('BUNDLE_MALFORMED', 'the bundle is not a JSON object');
  if (typeof value.mediaType !== 'string' || !ACCEPTED_MEDIA_TYPES.includes(value.mediaType)) {
    throw new AttestationError(
      'BUNDLE_MALFORMED',
      `the bundle mediaType is ${JSON.stringify(value.mediaType)}; expected ${BUNDLE_MEDIA_TYPE}`,
    );
  }
  const vm = value.verificationMaterial;
  if (!isRecord(vm) || !isRecord(vm.publicKey)) {
    throw new AttestationError(
      'BUNDLE_MALFORMED',
      'the bundle has no verificationMaterial.publicKey: veritrail verifies bundles signed by a key, not by a certificate',
    );
  }
  const hint = vm.publicKey.hint;
  if (hint !== undefined && hint !== null && typeof hint !== 'string') {
    throw new AttestationError('BUNDLE_MALFORMED', 'verificationMaterial.publicKey.hint is not a string');
  }
  if (value.dsseEnvelope === undefined) {
    throw new AttestationError('BUNDLE_MALFORMED', 'the bundle carries no dsseEnvelope');
  }
  const envelope = decodeEnvelope(value.dsseEnvelope);
  if (envelope.signatures.length !== 1) {
    throw new AttestationError(
      'BUNDLE_MALFORMED',
      `the DSSE envelope has ${envelope.signatures.length} signatures; a Sigstore bundle must have exactly one`,
    );
  }
  return { keyHint: typeof hint === 'string' && hint !== '' ? hint : undefined, envelope };
}
