/**
 * Checkpoints (signed tree heads) in the C2SP formats:
 *
 * - tlog-checkpoint (https://c2sp.org/tlog-checkpoint): the note text is
 *   `<origin>\n<decimal tree size>\n<base64 root hash>\n[<extension line>\n]*`.
 * - signed-note (https://c2sp.org/signed-note): the text, a blank line, then one line per
 *   signature: `— <key name> <base64(4-byte key ID || signature)>`.
 *
 * Our signatures use signed-note signature type 0x02 (ECDSA, as implemented by
 * transparency-dev/witness): ECDSA P-256 with SHA-256 over the note text, ASN.1 DER encoded, which
 * is what AWS KMS (ECDSA_SHA_256) and openssl produce. For that type the signed-note spec makes
 * the key ID the first four bytes of SHA-256 of the DER-encoded SubjectPublicKeyInfo.
 *
 * Everything read back (from storage or from a third party's proof) is parsed defensively: any
 * deviation is a `CheckpointError`, never a crash.
 */
import { createPublicKey, hash, verify } from 'node:crypto';
import { CodedError } from './errors.js';

const EM_DASH = '\u2014';
const MAX_NOTE_BYTES = 1 << 20;

const CheckpointErrorCodes = [
  /** The text is not a well-formed signed checkpoint. */
  'CHECKPOINT_MALFORMED',
  /** No signature line from the expected key (name and key ID). */
  'CHECKPOINT_UNSIGNED',
  /** A signature from the expected key does not verify: the note was altered or forged. */
  'CHECKPOINT_SIGNATURE_INVALID',
] as const;
export type CheckpointErrorCode = (typeof CheckpointErrorCodes)[number];

export class CheckpointError extends CodedError<CheckpointErrorCode> {
  override readonly name = 'CheckpointError';
}

export interface Checkpoint {
  /** Unique identifier of the log, e.g. `veritrail.local/audit`. */
  origin: string;
  size: number;
  /** 32-byte RFC 6962 root hash. */
  root: Uint8Array;
  extensions: string[];
}

export interface SignedCheckpoint extends Checkpoint {
  /** The complete signed note as stored. */
  note: string;
  /** The note text that was signed (checkpoint lines, final newline included). */
  text: string;
}

/** ASCII control characters (below U+0020, and DEL), optionally allowing newline. */
function hasControl(s: string, allowNewline = false): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if ((c < 0x20 && !(allowNewline && c === 0x0a)) || c === 0x7f) return true;
  }
  return false;
}

const B64_RE = /^[A-Za-z0-9+/]*={0,2}$/;

function decodeBase64Strict(s: string, what: string): Uint8Array {
  if (!B64_RE.test(s) || s.length % 4 !== 0)
    throw new CheckpointError('CHECKPOINT_MALFORMED', `${what} is not base64`);
  const bytes = Buffer.from(s, 'base64');
  // Re-encoding must give the same text: rejects non-canonical padding bits.
  if (bytes.toString('base64') !== s)
    throw new CheckpointError('CHECKPOINT_MALFORMED', `${what} is not canonical base64`);
  return new Uint8Array(bytes);
}

function checkLine(line: string, what: string): void {
  if (line.length === 0) throw new CheckpointError('CHECKPOINT_MALFORMED', `${what} is empty`);
  // signed-note: no ASCII control characters other than newline.
  if (hasControl(line)) {
    throw new CheckpointError('CHECKPOINT_MALFORMED', `${what} contains a control character`);
  }
}

/** The note text of a checkpoint (C2SP tlog-checkpoint). */
export function formatCheckpoint(c: Checkpoint): string {
  checkLine(c.origin, 'origin');
  if (!Number.isSafeInteger(c.size) || c.size < 0)
    throw new RangeError('tree size must be a non-negative integer');
  if (c.root.length !== 32) throw new RangeError('root hash must be 32 bytes');
  for (const e of c.extensions) checkLine(e, 'extension line');
  const lines = [c.origin, String(c.size), Buffer.from(c.root).toString('base64'), ...c.extensions];
  return `${lines.join('\n')}\n`;
}

/** Parses checkpoint note text (without signatures). */
export function parseCheckpointText(text: string): Checkpoint {
  if (typeof text !== 'string' || !text.endsWith('\n')) {
    throw new CheckpointError('CHECKPOINT_MALFORMED', 'checkpoint text must end with a newline');
  }
  const lines = text.slice(0, -1).split('\n');
  const [origin, sizeText, rootText, ...extensions] = lines;
  if (origin === undefined || sizeText === undefined || rootText === undefined) {
    throw new CheckpointError(
      'CHECKPOINT_MALFORMED',
      'a checkpoint has at least origin, size and root lines',
    );
  }
  checkLine(origin, 'origin');
  // tlog-checkpoint: ASCII decimal, no leading zeros.
  if (!/^(0|[1-9][0-9]{0,15})$/.test(sizeText) || !Number.isSafeInteger(Number(sizeText))) {
    throw new CheckpointError(
      'CHECKPOINT_MALFORMED',
      `tree size "${sizeText.slice(0, 40)}" is not a decimal number`,
    );
  }
  const root = decodeBase64Strict(rootText, 'root hash');
  if (root.length !== 32) throw new CheckpointError('CHECKPOINT_MALFORMED', 'root hash is not 32 bytes');
  for (const [i, e] of extensions.entries()) checkLine(e, `extension line ${i + 1}`);
  return { origin, size: Number(sizeText), root, extensions };
}

function spkiDer(publicKeyPem: string): Uint8Array {
  try {
    const key = createPublicKey(publicKeyPem);
    if (key.asymmetricKeyType !== 'ec') throw new Error(`not an EC key: ${key.asymmetricKeyType}`);
    return new Uint8Array(key.export({ type: 'spki', format: 'der' }));
  } catch (e) {
    throw new CheckpointError(
      'CHECKPOINT_MALFORMED',
      'the public key is not an EC SubjectPublicKeyInfo PEM',
      {
        cause: e,
      },
    );
  }
}

/** C2SP signed-note key ID for type 0x02: SHA-256(DER SubjectPublicKeyInfo)[:4]. */
export function keyIdOf(publicKeyPem: string): Uint8Array {
  return hash('sha256', spkiDer(publicKeyPem), 'buffer').subarray(0, 4);
}

function checkKeyName(name: string): void {
  // signed-note: key names are non-empty, without Unicode spaces or "+".
  if (name.length === 0 || /[\s+]/u.test(name) || hasControl(name)) {
    throw new CheckpointError(
      'CHECKPOINT_MALFORMED',
      `key name "${name}" is not a valid signed-note key name`,
    );
  }
}

/** Signs checkpoint text; `sign` returns a DER ECDSA P-256 signature over sha256(message). */
export async function signCheckpoint(
  c: Checkpoint,
  key: { name: string; publicKeyPem: string; sign(message: Uint8Array): Promise<Uint8Array> },
): Promise<SignedCheckpoint> {
  checkKeyName(key.name);
  const text = formatCheckpoint(c);
  const sig = await key.sign(new TextEncoder().encode(text));
  const blob = Buffer.concat([keyIdOf(key.publicKeyPem), sig]).toString('base64');
  const note = `${text}\n${EM_DASH} ${key.name} ${blob}\n`;
  return { ...c, note, text };
}

interface SignatureLine {
  name: string;
  keyId: Uint8Array;
  signature: Uint8Array;
}

/** Splits a signed note into its text and signature lines (C2SP signed-note "Format"). */
export function parseSignedNote(note: string): { text: string; signatures: SignatureLine[] } {
  if (typeof note !== 'string')
    throw new CheckpointError('CHECKPOINT_MALFORMED', 'a signed note must be text');
  if (Buffer.byteLength(note) > MAX_NOTE_BYTES)
    throw new CheckpointError('CHECKPOINT_MALFORMED', 'the note is too large');
  if (note.includes('\uFFFD'))
    throw new CheckpointError('CHECKPOINT_MALFORMED', 'the note is not valid UTF-8');
  if (hasControl(note, true)) {
    throw new CheckpointError(
      'CHECKPOINT_MALFORMED',
      'the note contains a control character other than newline',
    );
  }
  if (!note.endsWith('\n'))
    throw new CheckpointError('CHECKPOINT_MALFORMED', 'the note must end with a newline');
  // The signatures follow the last blank line; the text keeps its final newline.
  const split = note.lastIndexOf('\n\n');
  if (split < 0) throw new CheckpointError('CHECKPOINT_MALFORMED', 'the note has no signature block');
  const text = note.slice(0, split + 1);
  const lines = note.slice(split + 2, -1).split('\n');
  const signatures = lines.map((line): SignatureLine => {
    const m = /^\u2014 (\S+) (\S+)$/u.exec(line);
    if (m === null) throw new CheckpointError('CHECKPOINT_MALFORMED', 'a signature line is malformed');
    const name = m[1] as string;
    checkKeyName(name);
    const blob = decodeBase64Strict(m[2] as string, 'signature');
    if (blob.length < 5) throw new CheckpointError('CHECKPOINT_MALFORMED', 'a signature is too short');
    return { name, keyId: blob.subarray(0, 4), signature: blob.subarray(4) };
  });
  if (signatures.length === 0) throw new CheckpointError('CHECKPOINT_MALFORMED', 'the note has no signature');
  return { text, signatures };
}

/**
 * Verifies a signed checkpoint against a trusted key and returns its contents. Signatures from
 * other keys are ignored; a signature from the trusted key that fails rejects the whole note
 * (signed-note "Signatures").
 */
export function openCheckpoint(
  note: string,
  trusted: { name: string; publicKeyPem: string },
): SignedCheckpoint {
  try {
    const { text, signatures } = parseSignedNote(note);
    const keyId = keyIdOf(trusted.publicKeyPem);
    const mine = signatures.filter((s) => s.name === trusted.name && Buffer.from(s.keyId).equals(keyId));
    if (mine.length === 0) {
      throw new CheckpointError(
        'CHECKPOINT_UNSIGNED',
        `the checkpoint carries no signature by key "${trusted.name}"`,
      );
    }
    for (const s of mine) {
      let ok = false;
      try {
        ok = verify(
          'sha256',
          Buffer.from(text),
          { key: trusted.publicKeyPem, dsaEncoding: 'der' },
          s.signature,
        );
      } catch {
        ok = false;
      }
      if (!ok) {
        throw new CheckpointError(
          'CHECKPOINT_SIGNATURE_INVALID',
          `the checkpoint signature by "${trusted.name}" does not verify: the checkpoint was altered or forged`,
        );
      }
    }
    return { ...parseCheckpointText(text), note, text };
  } catch (e) {
    if (e instanceof CheckpointError) throw e;
    throw new CheckpointError('CHECKPOINT_MALFORMED', 'the checkpoint could not be read', { cause: e });
  }
}
