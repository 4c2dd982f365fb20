/**
 * Who makes a witness's cosignatures (c2sp.org/tlog-cosignature, Ed25519 `cosignature/v1`): a key
 * in a file (`veritrail witness serve`) or a KMS key that never leaves KMS (src/aws/kms-cosigner.ts).
 * The witness only needs its name and public key (the vkey) and an Ed25519 signature over the
 * cosigned message; the line is built and checked here, so both kinds produce identical bytes.
 */
import { createPrivateKey, sign } from 'node:crypto';
import {
  addSignatureLines,
  cosignedMessage,
  cosignerKeyId,
  verifyCosignatures,
  type WitnessKey,
  witnessKeyOf,
} from '../../core/cosignature.js';
import { VeritrailError } from '../../core/errors.js';

const EM_DASH = '\u2014';
/** Ed25519 signatures are 64 bytes (RFC 8032 §5.1.6). */
const ED25519_SIGNATURE_BYTES = 64;

export interface Cosigner {
  /** The witness's name and 32-byte Ed25519 public key (what its vkey encodes). */
  key(): Promise<WitnessKey>;
  /** A pure Ed25519 signature (RFC 8032, 64 bytes) of `message`. */
  sign(message: Uint8Array): Promise<Uint8Array>;
}

/** A cosigner over an Ed25519 private key (PKCS#8 PEM) held by this process. */
export function ed25519Cosigner(name: string, privateKeyPem: string): Cosigner {
  const key = witnessKeyOf(name, privateKeyPem);
  const privateKey = createPrivateKey(privateKeyPem);
  return {
    key: async () => key,
    sign: async (message) => new Uint8Array(sign(null, message, privateKey)),
  };
}

/**
 * One cosignature line (`— <name> base64(key ID ‖ u64 BE timestamp ‖ signature)`, with its final
 * newline) over the note text of a checkpoint at `timestamp` (POSIX seconds). The line is verified
 * against the cosigner's public key before it is returned: a signature from the wrong key, or a
 * malformed one, never leaves the witness.
 */
export async function cosignatureLine(note: string, cosigner: Cosigner, timestamp: number): Promise<string> {
  if (!Number.isSafeInteger(timestamp) || timestamp <= 0) throw new RangeError('timestamp must be positive');
  const key = await cosigner.key();
  const text = note.slice(0, note.lastIndexOf('\n\n') + 1);
  const signature = await cosigner.sign(cosignedMessage(text, timestamp));
  const ts = Buffer.alloc(8);
  ts.writeBigUInt64BE(BigInt(timestamp));
  const blob = Buffer.concat([cosignerKeyId(key), ts, signature]).toString('base64');
  const line = `${EM_DASH} ${key.name} ${blob}\n`;
  let valid = false;
  if (signature.byteLength === ED25519_SIGNATURE_BYTES) {
    try {
      valid = verifyCosignatures(addSignatureLines(note, [line]), [key]).length === 1;
    } catch {
      valid = false;
    }
  }
  if (!valid) {
    throw new VeritrailError(
      'SIGNATURE_INVALID',
      `the cosignature made for witness ${key.name} does not verify under its public key: check that its key is the Ed25519 key its vkey names`,
    );
  }
  return line;
}
