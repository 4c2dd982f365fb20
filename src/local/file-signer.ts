import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign } from 'node:crypto';
import { chmod, mkdir, open, readFile, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { VeritrailError } from '../core/errors.js';
import type { Signer } from '../ports.js';

/**
 * The embedded signer: a P-256 key in a PKCS#8 PEM file with mode 0600, created on first use.
 * Signatures are ECDSA-SHA256 in ASN.1 DER, byte-compatible with what KMS returns for
 * ECDSA_SHA_256, so verification code and openssl treat both the same.
 */
export async function openFileSigner(path: string): Promise<Signer> {
  let pem: string;
  try {
    pem = await readFile(path, 'utf8');
    const mode = (await stat(path)).mode & 0o777;
    if ((mode & 0o077) !== 0) {
      throw new VeritrailError(
        'SIGNATURE_INVALID',
        `private key ${path} is readable by others (mode ${mode.toString(8)}); run: chmod 600 ${path}`,
      );
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    pem = await createKeyFile(path);
  }
  const privateKey = createPrivateKey(pem);
  if (privateKey.asymmetricKeyType !== 'ec' || privateKey.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new VeritrailError('SIGNATURE_INVALID', `${path} is not a P-256 private key`);
  }
  const publicPem = createPublicKey(privateKey).export({ type: 'spki', format: 'pem' }).toString();
  const spki = createPublicKey(privateKey).export({ type: 'spki', format: 'der' });
  // The hint is the SPKI fingerprint, so a verifier can tell which public key to use.
  const keyId = `sha256:${createHash('sha256').update(spki).digest('hex')}`;
  return {
    keyId,
    publicKeyPem: async () => publicPem,
    sign: async (message) => new Uint8Array(sign('sha256', message, { key: privateKey, dsaEncoding: 'der' })),
  };
}

async function createKeyFile(path: string): Promise<string> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  // 'wx': never overwrite a key another process created first; read theirs instead.
  try {
    const fh = await open(path, 'wx', 0o600);
    try {
      await fh.writeFile(pem);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await chmod(path, 0o600);
    return pem;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return readFile(path, 'utf8');
    throw e;
  }
}
