import canonicalize from 'canonicalize';
import { type Digest, sha256Hex } from './digest.js';

/** RFC 8785 (JSON Canonicalization Scheme) text of a JSON value. */
export function canonicalJson(value: unknown): string {
  const text = canonicalize(value);
  if (text === undefined) throw new TypeError('value has no JSON representation');
  return text;
}

/** RFC 8785 canonical bytes (UTF-8). */
export function canonicalBytes(value: unknown): Uint8Array {
  return new TextEncoder().encode(canonicalJson(value));
}

/** sha256 of the RFC 8785 canonical form. */
export function canonicalDigest(value: unknown): Digest {
  return `sha256:${sha256Hex(canonicalJson(value))}`;
}
