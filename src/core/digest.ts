import { createHash, timingSafeEqual } from 'node:crypto';
import { VeritrailError } from './errors.js';
import { CONTENT_PREFIX } from './layout.js';

/** A content digest in its text form: `sha256:<64 lowercase hex>`. */
export type Digest = `sha256:${string}`;

const DIGEST_RE = /^sha256:[0-9a-f]{64}$/;
const HEX_RE = /^[0-9a-f]{64}$/;

export function isDigest(s: unknown): s is Digest {
  return typeof s === 'string' && DIGEST_RE.test(s);
}

export function digestFromHex(hex: string): Digest {
  if (!HEX_RE.test(hex)) throw new VeritrailError('INTERNAL', `not a sha256 hex string: ${hex}`);
  return `sha256:${hex}`;
}

export function hexOf(d: Digest): string {
  return d.slice('sha256:'.length);
}

export function sha256(data: Uint8Array | string): Uint8Array {
  return new Uint8Array(createHash('sha256').update(data).digest());
}

export function sha256Hex(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

export function digestOf(data: Uint8Array | string): Digest {
  return `sha256:${sha256Hex(data)}`;
}

/** Content-addressed object key for a digest: `sha256/<hex>`. */
export function casKey(d: Digest): string {
  return `${CONTENT_PREFIX}${hexOf(d)}`;
}

/** Constant-time equality of two byte strings (digests, roots): no early exit an attacker could time. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  return timingSafeEqual(a, b);
}

/** Constant-time equality of two text digests. */
export function digestsEqual(a: string, b: string): boolean {
  const ab = new TextEncoder().encode(a);
  const bb = new TextEncoder().encode(b);
  return bytesEqual(ab, bb);
}
