import { Buffer } from 'node:buffer';
import { createPublicKey, type KeyObject } from 'node:crypto';
import { type Digest, digestOf, isDigest, sha256Hex } from '../digest.js';
import { AttestationError } from './errors.js';

/**
 * ECDSA curves we verify, each with the hash Sigstore pairs with it
 * (protobuf-specs sigstore_common.proto PublicKeyDetails: PKIX_ECDSA_P256_SHA_256, _P384_SHA_384,
 * _P521_SHA_512; model-transparency `get_ec_key_hash` does the same). veritrail itself signs with
 * P-256 only; P-384 is accepted so that third-party model signatures verify too.
 */
const CURVE_HASH: Readonly<Record<string, 'sha256' | 'sha384' | 'sha512'>> = {
  prime256v1: 'sha256',
  secp384r1: 'sha384',
  secp521r1: 'sha512',
};

export interface VerificationKey {
  key: KeyObject;
  hash: 'sha256' | 'sha384' | 'sha512';
  /** The key re-exported as SubjectPublicKeyInfo PEM (64-column base64, trailing newline). */
  pem: string;
  /** {@link publicKeyHint} of the key. */
  hint: string;
}

/** Parses a PEM SubjectPublicKeyInfo EC public key; KEY_INVALID otherwise. */
export function parsePublicKey(pem: string): VerificationKey {
  let key: KeyObject;
  try {
    if (typeof pem !== 'string' || !pem.includes('-----BEGIN PUBLIC KEY-----'))
      throw new Error('no PUBLIC KEY block');
    key = createPublicKey({ key: pem, format: 'pem' });
  } catch (cause) {
    throw new AttestationError(
      'KEY_INVALID',
      'the public key is not a PEM "PUBLIC KEY" (SubjectPublicKeyInfo); export it with `openssl pkey -pubout` or `veritrail export`',
      { cause },
    );
  }
  const curve = key.asymmetricKeyType === 'ec' ? key.asymmetricKeyDetails?.namedCurve : undefined;
  const hash = curve === undefined ? undefined : CURVE_HASH[curve];
  if (hash === undefined) {
    throw new AttestationError(
      'KEY_INVALID',
      `the public key is ${key.asymmetricKeyType ?? 'unknown'} ${curve ?? ''}; an ECDSA P-256 key is expected`,
    );
  }
  const canonical = key.export({ type: 'spki', format: 'pem' }).toString();
  return { key, hash, pem: canonical, hint: sha256Hex(canonical) };
}

/**
 * The key hint written to `verificationMaterial.publicKey.hint` and to the DSSE `keyid`:
 * lowercase hex sha256 of the key's SubjectPublicKeyInfo PEM text, exactly as model-transparency
 * computes it (src/model_signing/_signing/sign_ec_key.py, `_get_verification_material`: sha256 of
 * `public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)`), so their verifier's hint check
 * passes. The PEM is re-exported first, so line endings or extra text around the block do not matter.
 */
export function publicKeyHint(pem: string): string {
  return parsePublicKey(pem).hint;
}

/** DER SubjectPublicKeyInfo bytes of a PEM public key. */
export function publicKeyDer(pem: string): Uint8Array {
  return new Uint8Array(Buffer.from(parsePublicKey(pem).key.export({ type: 'spki', format: 'der' })));
}

/**
 * The signing key as an auditor's trust roots name it: sha256 of its DER SubjectPublicKeyInfo.
 * The local signer's keyId already is that; a KMS signer's keyId is the key ARN, so its public key
 * is fingerprinted instead (what the log and the run record name must be checkable offline).
 */
export async function signingKeyId(signer: Signer): Promise<Digest> {
  return isDigest(signer.keyId) ? signer.keyId : digestOf(publicKeyDer(await signer.publicKeyPem()));
}

/** ECDSA P-256 with SHA-256; signatures are ASN.1 DER, as KMS and openssl produce them. */
export interface Signer {
  /** A stable hint naming the key (KMS key ARN, or the local key's fingerprint). */
  readonly keyId: string;
  /** SubjectPublicKeyInfo PEM, for offline verification with openssl. */
  publicKeyPem(): Promise<string>;
  /** Signs sha256(message). */
  sign(message: Uint8Array): Promise<Uint8Array>;
}
