/**
 * Witness cosignatures, c2sp.org/tlog-cosignature (Ed25519, "cosignature/v1"):
 *
 * - signed message: `cosignature/v1\ntime <POSIX seconds>\n` followed by the checkpoint's note
 *   text (every line up to the blank line, final newline included);
 * - signature line: `— <witness name> base64(key ID ‖ u64 BE timestamp ‖ 64-byte Ed25519 signature)`;
 * - key ID: SHA-256(<name> ‖ "\n" ‖ 0x04 ‖ 32-byte Ed25519 public key)[:4];
 * - verifier key (c2sp.org/signed-note "vkey"): `<name>+<hex key ID>+base64(0x04 ‖ public key)`.
 *
 * Ed25519, not ML-DSA-44 (which the spec recommends for new deployments): Node 22 has no ML-DSA.
 */
import { createPrivateKey, createPublicKey, hash, type KeyObject, verify } from 'node:crypto';
import { CheckpointError, parseCheckpointText, parseSignedNote } from './checkpoint.js';

/** The signed-note signature type of Ed25519 cosignatures. */
const COSIGNATURE_TYPE_ED25519 = 0x04;
const EM_DASH = '\u2014';
/** DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410), followed by the 32-byte key. */
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

export interface WitnessKey {
  name: string;
  /** The 32-byte Ed25519 public key. */
  publicKey: Uint8Array;
}

/** The 4-byte key ID of an Ed25519 cosigner (tlog-cosignature "Format"). */
export function cosignerKeyId(key: WitnessKey): Uint8Array {
  return hash(
    'sha256',
    Buffer.concat([Buffer.from(`${key.name}\n`), Buffer.from([COSIGNATURE_TYPE_ED25519]), key.publicKey]),
    'buffer',
  ).subarray(0, 4);
}

/** `<name>+<hex key ID>+<base64(0x04 ‖ key)>` (signed-note verifier key). */
export function formatVkey(key: WitnessKey): string {
  const id = Buffer.from(cosignerKeyId(key)).toString('hex');
  const material = Buffer.concat([Buffer.from([COSIGNATURE_TYPE_ED25519]), key.publicKey]).toString('base64');
  return `${key.name}+${id}+${material}`;
}

/** Parses a verifier key; CHECKPOINT_MALFORMED when it is not an Ed25519 cosigner vkey. */
export function parseVkey(vkey: string): WitnessKey {
  // The base64 key material may itself contain "+": split at the first two only.
  const m = /^([^+\s]+)\+([0-9a-fA-F]{8})\+([A-Za-z0-9+/]+={0,2})$/.exec(vkey.trim());
  if (m === null) {
    throw new CheckpointError(
      'CHECKPOINT_MALFORMED',
      'a witness key must read <name>+<hex key id>+<base64 key>',
    );
  }
  const [, name, id, material] = m as unknown as [string, string, string, string];
  const raw = Buffer.from(material, 'base64');
  if (name.length === 0 || raw.length !== 33 || raw[0] !== COSIGNATURE_TYPE_ED25519) {
    throw new CheckpointError('CHECKPOINT_MALFORMED', `witness key "${name}" is not an Ed25519 (0x04) key`);
  }
  const key = { name, publicKey: new Uint8Array(raw.subarray(1)) };
  if (Buffer.from(cosignerKeyId(key)).toString('hex') !== id.toLowerCase()) {
    throw new CheckpointError('CHECKPOINT_MALFORMED', `witness key "${name}" has a wrong key id`);
  }
  return key;
}

/** The message an Ed25519 cosigner signs over checkpoint note text at `timestamp` (seconds). */
export function cosignedMessage(noteText: string, timestamp: number): Uint8Array {
  return Buffer.from(`cosignature/v1\ntime ${timestamp}\n${noteText}`);
}

function ed25519Public(raw: Uint8Array): KeyObject {
  return createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, raw]), format: 'der', type: 'spki' });
}

/** The witness's public key from its private key (PKCS#8 PEM). */
export function witnessKeyOf(name: string, privateKeyPem: string): WitnessKey {
  const priv = createPrivateKey(privateKeyPem);
  if (priv.asymmetricKeyType !== 'ed25519') {
    throw new CheckpointError('CHECKPOINT_MALFORMED', 'a witness key must be an Ed25519 private key');
  }
  const der = createPublicKey(priv).export({ type: 'spki', format: 'der' });
  return { name, publicKey: new Uint8Array(der.subarray(der.length - 32)) };
}

export interface Cosignature {
  witness: string;
  timestamp: number;
}

/**
 * The valid cosignatures in a signed note by the given witnesses (others are ignored, as
 * signed-note says). A line with a trusted name and key ID whose signature fails is an error:
 * CHECKPOINT_SIGNATURE_INVALID.
 */
export function verifyCosignatures(note: string, witnesses: readonly WitnessKey[]): Cosignature[] {
  const { text, signatures } = parseSignedNote(note);
  parseCheckpointText(text);
  const out: Cosignature[] = [];
  for (const w of witnesses) {
    const id = Buffer.from(cosignerKeyId(w));
    for (const s of signatures) {
      if (s.name !== w.name || !id.equals(s.keyId)) continue;
      if (s.signature.length !== 72) {
        throw new CheckpointError(
          'CHECKPOINT_SIGNATURE_INVALID',
          `the cosignature by "${w.name}" is malformed`,
        );
      }
      const timestamp = Buffer.from(s.signature.subarray(0, 8)).readBigUInt64BE();
      const ok =
        timestamp > 0n &&
        timestamp < 2n ** 63n &&
        verify(
          null,
          cosignedMessage(text, Number(timestamp)),
          ed25519Public(w.publicKey),
          s.signature.subarray(8),
        );
      if (!ok) {
        throw new CheckpointError(
          'CHECKPOINT_SIGNATURE_INVALID',
          `the cosignature by witness "${w.name}" does not verify: the checkpoint was altered`,
        );
      }
      out.push({ witness: w.name, timestamp: Number(timestamp) });
      break;
    }
  }
  return out;
}

/** The note with `lines` (signature lines, each ending in a newline) added to its signatures. */
export function addSignatureLines(note: string, lines: readonly string[]): string {
  const have = new Set(note.split('\n'));
  const extra = lines.flatMap((l) => l.split('\n')).filter((l) => l.startsWith(EM_DASH) && !have.has(l));
  return extra.length === 0 ? note : `${note}${extra.join('\n')}\n`;
}
