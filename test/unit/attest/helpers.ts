import { generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import type { Digest } from '../../../src/core/digest.js';
import { digestOf } from '../../../src/core/digest.js';
import type { Signer } from '../../../src/ports.js';

/** A P-256 signer over a fresh node:crypto key, with the Signer port's contract (DER over sha256). */
export function localSigner(keyId = 'test-key'): Signer & { privateKey: KeyObject; pem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  return {
    keyId,
    privateKey,
    pem,
    publicKeyPem: async () => pem,
    sign: async (message) => new Uint8Array(sign('sha256', message, { key: privateKey, dsaEncoding: 'der' })),
  };
}

export const d = (label: string): Digest => digestOf(label);

/** A JSON deep copy that tests may mutate. */
export function clone<T>(v: T): T {
  return JSON.parse(JSON.stringify(v)) as T;
}
