/**
 * Signer over an asymmetric KMS key: ECC_NIST_P256, SIGN_VERIFY, ECDSA_SHA_256.
 *
 * KMS Sign accepts a RAW message of at most 4096 bytes (KMS then hashes it with SHA-256) or a
 * DIGEST, the SHA-256 of the message computed here. Both yield an ECDSA signature over
 * sha256(message), DER-encoded (ASN.1 Ecdsa-Sig-Value), which is what openssl and node:crypto
 * verify, so the two shapes are interchangeable: RAW while the message fits the limit, DIGEST
 * beyond it (DSSE envelopes of large statements).
 *
 * Every signature is checked against the key's public key before it is returned: a key alias
 * repointed to a different key, or a wrong key spec, fails here rather than in an auditor's hands.
 */
import { createHash, createPublicKey, type KeyObject, verify } from 'node:crypto';
import { GetPublicKeyCommand, type KMSClient, SignCommand } from '@aws-sdk/client-kms';
import { VeritrailError } from '../core/errors.js';
import type { Signer } from '../ports.js';
import { awsCall } from './errors.js';

/** KMS Sign's limit for MessageType RAW. */
export const KMS_RAW_MESSAGE_LIMIT = 4096;

export const KMS_KEY_SPEC = 'ECC_NIST_P256';
export const KMS_SIGNING_ALGORITHM = 'ECDSA_SHA_256';

export interface KmsSignerOptions {
  /** The environment variable or setting that names the key, quoted in error messages. */
  configuredBy?: string;
}

/** What a KMS signing key must be, and how an error names it. */
export interface KmsKeyExpectation {
  spec: string;
  algorithm: string;
  /** Who needs it, in the error: "veritrail needs", "a witness needs". */
  needs: string;
  /** Said after the requirement, in the error. */
  note?: string;
  /** The environment variable or setting that names the key. */
  configuredBy?: string;
}

/** INTERNAL naming the key, what is wrong with it and what it must be. */
export function wrongKmsKey(keyId: string, e: KmsKeyExpectation, what: string): VeritrailError {
  return new VeritrailError(
    'INTERNAL',
    `the KMS key ${keyId}${e.configuredBy ? ` (from ${e.configuredBy})` : ''} ${what}; ${e.needs} an asymmetric ${e.spec} key with usage SIGN_VERIFY and algorithm ${e.algorithm}${e.note ? ` ${e.note}` : ''}`,
    { details: { keyId } },
  );
}

/**
 * The public key of a KMS signing key (kms:GetPublicKey), checked against what the caller expects:
 * key spec, usage and algorithm where KMS says them (some AWS-compatible endpoints leave them out;
 * the caller's check of the key itself still holds then), and a DER SubjectPublicKeyInfo.
 */
export async function kmsPublicKey(kms: KMSClient, keyId: string, e: KmsKeyExpectation): Promise<KeyObject> {
  const out = await awsCall(
    {
      action: 'kms:GetPublicKey',
      resource: keyId,
      ...(e.configuredBy ? { configuredBy: e.configuredBy } : {}),
    },
    () => kms.send(new GetPublicKeyCommand({ KeyId: keyId })),
  );
  if (out.KeySpec !== undefined && out.KeySpec !== e.spec)
    throw wrongKmsKey(keyId, e, `has key spec ${out.KeySpec}`);
  if (out.KeyUsage !== undefined && out.KeyUsage !== 'SIGN_VERIFY')
    throw wrongKmsKey(keyId, e, `has usage ${out.KeyUsage}`);
  if (out.SigningAlgorithms && !(out.SigningAlgorithms as string[]).includes(e.algorithm))
    throw wrongKmsKey(keyId, e, `does not support ${e.algorithm}`);
  if (!out.PublicKey) throw wrongKmsKey(keyId, e, 'returned no public key');
  try {
    return createPublicKey({ key: Buffer.from(out.PublicKey), format: 'der', type: 'spki' });
  } catch (cause) {
    throw new VeritrailError(
      'INTERNAL',
      `kms:GetPublicKey for ${keyId} returned a public key that is not DER SubjectPublicKeyInfo`,
      { cause },
    );
  }
}

interface PublicKey {
  pem: string;
  key: KeyObject;
}

export class KmsSigner implements Signer {
  /** The key ARN, recorded as the Sigstore bundle's public key hint. */
  readonly keyId: string;
  private readonly configuredBy: string | undefined;
  private publicKey: Promise<PublicKey> | undefined;

  constructor(
    private readonly kms: KMSClient,
    keyArn: string,
    options: KmsSignerOptions = {},
  ) {
    if (!keyArn) throw new VeritrailError('USAGE', 'KmsSigner needs a KMS key ARN');
    this.keyId = keyArn;
    this.configuredBy = options.configuredBy;
  }

  private ctx(action: string) {
    return {
      action,
      resource: this.keyId,
      ...(this.configuredBy ? { configuredBy: this.configuredBy } : {}),
    };
  }

  async publicKeyPem(): Promise<string> {
    return (await this.loadPublicKey()).pem;
  }

  /** Cached after the first success; a failure is not cached, so the next call tries again. */
  private loadPublicKey(): Promise<PublicKey> {
    if (!this.publicKey) {
      this.publicKey = this.fetchPublicKey();
      this.publicKey.catch(() => {
        this.publicKey = undefined;
      });
    }
    return this.publicKey;
  }

  private async fetchPublicKey(): Promise<PublicKey> {
    const expected: KmsKeyExpectation = {
      spec: KMS_KEY_SPEC,
      algorithm: KMS_SIGNING_ALGORITHM,
      needs: 'veritrail needs',
      ...(this.configuredBy ? { configuredBy: this.configuredBy } : {}),
    };
    const key = await kmsPublicKey(this.kms, this.keyId, expected);
    if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
      throw wrongKmsKey(
        this.keyId,
        expected,
        `is a ${key.asymmetricKeyType} key on ${key.asymmetricKeyDetails?.namedCurve ?? 'no curve'}`,
      );
    }
    return { pem: key.export({ type: 'spki', format: 'pem' }).toString(), key };
  }

  async sign(message: Uint8Array): Promise<Uint8Array> {
    const publicKey = await this.loadPublicKey();
    const raw = message.byteLength <= KMS_RAW_MESSAGE_LIMIT;
    const out = await awsCall(this.ctx('kms:Sign'), () =>
      this.kms.send(
        new SignCommand({
          KeyId: this.keyId,
          Message: raw ? message : new Uint8Array(createHash('sha256').update(message).digest()),
          MessageType: raw ? 'RAW' : 'DIGEST',
          SigningAlgorithm: KMS_SIGNING_ALGORITHM,
        }),
      ),
    );
    if (!out.Signature) {
      throw new VeritrailError('SIGNATURE_INVALID', `kms:Sign with ${this.keyId} returned no signature`);
    }
    const signature = new Uint8Array(out.Signature);
    if (!verify('sha256', message, publicKey.key, signature)) {
      throw new VeritrailError(
        'SIGNATURE_INVALID',
        `the signature kms:Sign returned does not verify under the public key of ${this.keyId}; check that the key (or the alias it is reached by) has not changed and that it is ${KMS_KEY_SPEC}`,
        { details: { keyId: this.keyId, messageType: raw ? 'RAW' : 'DIGEST' } },
      );
    }
    return signature;
  }
}
