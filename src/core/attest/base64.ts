import { Buffer } from 'node:buffer';
import { AttestationError } from './errors.js';

const B64_RE = /^[A-Za-z0-9+/_-]*={0,2}$/;

/**
 * Strict base64 decoding for attacker-supplied text. DSSE (envelope.md, protocol.md) says
 * verifiers MUST accept both the standard and the URL-safe alphabet; Node's decoder would also
 * silently skip any other character, so the text is checked first and must re-encode to itself
 * (no stray bits in the last character, no misplaced padding).
 */
export function decodeBase64(text: unknown, what: string): Uint8Array {
  if (typeof text !== 'string' || !B64_RE.test(text)) {
    throw new AttestationError('BUNDLE_MALFORMED', `${what} is not base64 text`);
  }
  const std = text.replace(/-/g, '+').replace(/_/g, '/').replace(/=+$/, '');
  const padding = text.length - text.replace(/=+$/, '').length;
  if (
    std.length % 4 === 1 ||
    (padding > 0 && (text.length % 4 !== 0 || padding !== (4 - (std.length % 4)) % 4))
  ) {
    throw new AttestationError('BUNDLE_MALFORMED', `${what} has an impossible base64 length or padding`);
  }
  const bytes = Buffer.from(std, 'base64');
  if (bytes.toString('base64').replace(/=+$/, '') !== std) {
    throw new AttestationError('BUNDLE_MALFORMED', `${what} is not canonical base64`);
  }
  return new Uint8Array(bytes);
}

/** Standard base64 with padding: what the protobuf JSON mapping emits for `bytes`. */
export function encodeBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('base64');
}
