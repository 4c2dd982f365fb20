/**
 * A witness cosigner over a KMS key: key spec ECC_NIST_EDWARDS25519, usage SIGN_VERIFY, algorithm
 * ED25519_SHA_512 with MessageType RAW, which is pure Ed25519 (RFC 8032 §5.1) over the message as
 * given: exactly what c2sp.org/tlog-cosignature `cosignature/v1` specifies. (ED25519_PH_SHA_512 is
 * HashEdDSA, Ed25519ph: a different signature that cosignature/v1 verifiers reject.) The private
 * key never leaves KMS; the function holds only the permission to sign with it.
 *
 * KMS Developer Guide, "Key spec reference": for ECC_NIST_EDWARDS25519 keys, ED25519_SHA_512
 * requires MessageType RAW, and a RAW message is at most 4096 bytes. A cosigned message is the
 * checkpoint's note text plus two short lines, far below that for veritrail's checkpoints.
 */
import { type KMSClient, SignCommand } from '@aws-sdk/client-kms';
import type { Cosigner } from '../audit/witness/cosigner.js';
import type { WitnessKey } from '../core/cosignature.js';
import { KMS_WITNESS_KEY_SPEC, KMS_WITNESS_SIGNING_ALGORITHM } from '../core/deployment.js';
import { VeritrailError } from '../core/errors.js';
import { awsCall } from './errors.js';
import { KMS_RAW_MESSAGE_LIMIT, kmsPublicKey, wrongKmsKey } from './kms-signer.js';

export class KmsCosigner implements Cosigner {
  private publicKey: Promise<WitnessKey> | undefined;

  constructor(
    private readonly kms: KMSClient,
    private readonly keyArn: string,
    private readonly name: string,
    private readonly configuredBy = 'VERITRAIL_WITNESS_KEY_ARN',
  ) {
    if (!keyArn) throw new VeritrailError('USAGE', 'KmsCosigner needs a KMS key ARN');
  }

  private ctx(action: string) {
    return { action, resource: this.keyArn, configuredBy: this.configuredBy };
  }

  /** Cached after the first success; a failure is not cached, so the next call tries again. */
  key(): Promise<WitnessKey> {
    if (!this.publicKey) {
      this.publicKey = this.fetchKey();
      this.publicKey.catch(() => {
        this.publicKey = undefined;
      });
    }
    return this.publicKey;
  }

  private async fetchKey(): Promise<WitnessKey> {
    const expected = {
      spec: KMS_WITNESS_KEY_SPEC,
      algorithm: KMS_WITNESS_SIGNING_ALGORITHM,
      needs: 'a witness needs',
      note: '(c2sp.org/tlog-cosignature is Ed25519)',
      configuredBy: this.configuredBy,
    };
    const key = await kmsPublicKey(this.kms, this.keyArn, expected);
    if (key.asymmetricKeyType !== 'ed25519')
      throw wrongKmsKey(this.keyArn, expected, `is a ${key.asymmetricKeyType} key`);
    // RFC 8410: the SubjectPublicKeyInfo of an Ed25519 key ends with the 32-byte public key.
    const der = key.export({ type: 'spki', format: 'der' });
    return { name: this.name, publicKey: new Uint8Array(der.subarray(der.length - 32)) };
  }

  async sign(message: Uint8Array): Promise<Uint8Array> {
    if (message.byteLength > KMS_RAW_MESSAGE_LIMIT) {
      throw new VeritrailError(
        'USAGE',
        `the checkpoint is too large to cosign: KMS signs Ed25519 messages of at most ${KMS_RAW_MESSAGE_LIMIT} bytes, this one is ${message.byteLength}`,
      );
    }
    const out = await awsCall(this.ctx('kms:Sign'), () =>
      this.kms.send(
        new SignCommand({
          KeyId: this.keyArn,
          Message: message,
          MessageType: 'RAW',
          SigningAlgorithm: KMS_WITNESS_SIGNING_ALGORITHM,
        }),
      ),
    );
    if (!out.Signature) {
      throw new VeritrailError('SIGNATURE_INVALID', `kms:Sign with ${this.keyArn} returned no signature`);
    }
    // Checked against the public key by cosignatureLine (src/audit/witness/cosigner.ts).
    return new Uint8Array(out.Signature);
  }
}
