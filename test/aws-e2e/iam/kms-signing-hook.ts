/**
 * A proxy hook that answers KMS Sign, Verify and GetPublicKey for registered ECC_NIST_P256
 * SIGN_VERIFY keys with real P-256 keys, as KMS does. moto 5.2 hashes a MessageType DIGEST message
 * again before signing (see test/conformance/aws.conformance.test.ts), so its signatures over digests
 * do not verify; this hook signs the given digest itself. It runs after the IAM decision like any hook,
 * so the key policy and IAM are still evaluated for these calls.
 *
 * KMS semantics (https://docs.aws.amazon.com/kms/latest/APIReference/API_Sign.html):
 * - RAW: KMS hashes the message (≤ 4096 bytes) with SHA-256 and signs the hash;
 * - DIGEST: the message is the 32-byte SHA-256 digest, signed as is;
 * - the signature is DER (ANSI X9.62 ECDSA-Sig-Value), KeyId in the answer is the key ARN, and the
 *   SigningAlgorithm is echoed.
 */
import {
  createHash,
  generateKeyPairSync,
  type KeyObject,
  verify as nodeVerify,
  randomBytes,
} from 'node:crypto';
import { resolveKeyArn } from './authz.js';
import type { ApiRequest, HookResponse, PolicyWorld } from './types.js';

// ---------------------------------------------------------------- P-256 ECDSA over a given digest
// Node signs only after hashing the input itself; signing a digest as is needs the curve arithmetic.
// Parameters: SEC 2 v2 §2.4.2 (secp256r1) / FIPS 186-4 D.1.2.3; algorithm: SEC 1 v2 §4.1.3 and §4.1.4.

const P = 0xffffffff00000001000000000000000000000000ffffffffffffffffffffffffn;
const N = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;
const A = P - 3n;
const G: Point = {
  x: 0x6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296n,
  y: 0x4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5n,
};

type Point = { x: bigint; y: bigint } | null;

const mod = (a: bigint, m: bigint) => ((a % m) + m) % m;
function inv(a: bigint, m: bigint): bigint {
  let [r0, r1] = [mod(a, m), m];
  let [s0, s1] = [1n, 0n];
  while (r1 !== 0n) {
    const q = r0 / r1;
    [r0, r1] = [r1, r0 - q * r1];
    [s0, s1] = [s1, s0 - q * s1];
  }
  return mod(s0, m);
}
function add(p1: Point, p2: Point): Point {
  if (!p1) return p2;
  if (!p2) return p1;
  if (p1.x === p2.x && mod(p1.y + p2.y, P) === 0n) return null;
  const l =
    p1.x === p2.x && p1.y === p2.y
      ? mod((3n * p1.x * p1.x + A) * inv(2n * p1.y, P), P)
      : mod((p2.y - p1.y) * inv(p2.x - p1.x, P), P);
  const x = mod(l * l - p1.x - p2.x, P);
  return { x, y: mod(l * (p1.x - x) - p1.y, P) };
}
function mul(k: bigint, pt: Point): Point {
  let acc: Point = null;
  let addend = pt;
  for (let e = k; e > 0n; e >>= 1n) {
    if (e & 1n) acc = add(acc, addend);
    addend = add(addend, addend);
  }
  return acc;
}
const toBig = (b: Buffer) => BigInt(`0x${b.toString('hex') || '0'}`);
const b64url = (s: string) => Buffer.from(s, 'base64url');

function derInt(v: bigint): Buffer {
  let hex = v.toString(16);
  if (hex.length % 2) hex = `0${hex}`;
  let bytes = Buffer.from(hex, 'hex');
  if ((bytes[0] as number) & 0x80) bytes = Buffer.concat([Buffer.from([0]), bytes]);
  return Buffer.concat([Buffer.from([0x02, bytes.length]), bytes]);
}
function derSignature(r: bigint, s: bigint): Buffer {
  const body = Buffer.concat([derInt(r), derInt(s)]);
  return Buffer.concat([Buffer.from([0x30, body.length]), body]);
}
function parseDer(sig: Buffer): { r: bigint; s: bigint } | undefined {
  if (sig[0] !== 0x30 || sig[1] !== sig.length - 2) return undefined;
  let at = 2;
  const int = (): bigint | undefined => {
    if (sig[at] !== 0x02) return undefined;
    const len = sig[at + 1] as number;
    const v = toBig(sig.subarray(at + 2, at + 2 + len));
    at += 2 + len;
    return v;
  };
  const r = int();
  const s = int();
  return r !== undefined && s !== undefined && at === sig.length ? { r, s } : undefined;
}

/** ECDSA P-256 signature (DER) of a 32-byte digest, with a random nonce as KMS uses. */
export function signDigest(privateKey: KeyObject, digest: Buffer): Buffer {
  const d = toBig(b64url(privateKey.export({ format: 'jwk' }).d as string));
  const z = toBig(digest);
  for (;;) {
    const k = mod(toBig(randomBytes(40)), N - 1n) + 1n;
    const R = mul(k, G);
    if (!R) continue;
    const r = mod(R.x, N);
    const s = mod(inv(k, N) * (z + r * d), N);
    if (r !== 0n && s !== 0n) return derSignature(r, s);
  }
}

/** Verifies a DER ECDSA P-256 signature over a 32-byte digest. */
export function verifyDigest(publicKey: KeyObject, digest: Buffer, signature: Buffer): boolean {
  const sig = parseDer(signature);
  if (!sig || sig.r <= 0n || sig.r >= N || sig.s <= 0n || sig.s >= N) return false;
  const jwk = publicKey.export({ format: 'jwk' });
  const Q: Point = { x: toBig(b64url(jwk.x as string)), y: toBig(b64url(jwk.y as string)) };
  const w = inv(sig.s, N);
  const X = add(mul(mod(toBig(digest) * w, N), G), mul(mod(sig.r * w, N), Q));
  return X !== null && mod(X.x, N) === sig.r;
}

// ---------------------------------------------------------------- the hook

const ALGORITHM = 'ECDSA_SHA_256';

export interface KmsSigningHook {
  (req: ApiRequest): HookResponse | undefined;
  /** Makes the hook answer for this key (its ARN; ids and aliases resolve through the world's keyIds). */
  register(keyArn: string): void;
  /** The public key the hook signs with for a registered key. */
  publicKey(keyArn: string): KeyObject | undefined;
}

const json = (status: number, body: unknown): HookResponse => ({
  status,
  headers: { 'content-type': 'application/x-amz-json-1.1' },
  body: JSON.stringify(body),
});
const kmsError = (type: string, message: string) => json(400, { __type: type, message });

/** The hook; `world` (or a getter of the current one) resolves key ids and aliases to key ARNs. */
export function kmsSigningHook(world: PolicyWorld | (() => PolicyWorld)): KmsSigningHook {
  const keys = new Map<string, { privateKey: KeyObject; publicKey: KeyObject }>();
  const currentWorld = typeof world === 'function' ? world : () => world;

  const hook = ((req: ApiRequest): HookResponse | undefined => {
    if (req.service !== 'kms' || !['Sign', 'Verify', 'GetPublicKey'].includes(req.operation))
      return undefined;
    const input = req.input ?? {};
    const keyId = typeof input.KeyId === 'string' ? input.KeyId : undefined;
    if (!keyId) return undefined;
    const keyArn = resolveKeyArn(currentWorld(), keyId);
    const key = keys.get(keyArn);
    if (!key) return undefined;
    if (req.operation === 'GetPublicKey') {
      return json(200, {
        KeyId: keyArn,
        PublicKey: key.publicKey.export({ format: 'der', type: 'spki' }).toString('base64'),
        CustomerMasterKeySpec: 'ECC_NIST_P256',
        KeySpec: 'ECC_NIST_P256',
        KeyUsage: 'SIGN_VERIFY',
        SigningAlgorithms: [ALGORITHM],
      });
    }
    if (input.SigningAlgorithm !== ALGORITHM) {
      return kmsError(
        'InvalidKeyUsageException',
        `The signing algorithm ${String(input.SigningAlgorithm)} is not valid for ${keyArn}: use ${ALGORITHM}.`,
      );
    }
    const message = Buffer.from(typeof input.Message === 'string' ? input.Message : '', 'base64');
    const type = input.MessageType ?? 'RAW';
    if (type === 'RAW' && message.length > 4096)
      return kmsError(
        'ValidationException',
        'Message must be at most 4096 bytes for MessageType RAW; send its digest with MessageType DIGEST.',
      );
    if (type === 'DIGEST' && message.length !== 32)
      return kmsError('ValidationException', `Digest is invalid length for algorithm ${ALGORITHM}.`);
    if (type !== 'RAW' && type !== 'DIGEST')
      return kmsError('ValidationException', `MessageType ${String(type)} is not RAW or DIGEST.`);
    const digest = type === 'RAW' ? createHash('sha256').update(message).digest() : message;
    if (req.operation === 'Sign') {
      return json(200, {
        KeyId: keyArn,
        Signature: signDigest(key.privateKey, digest).toString('base64'),
        SigningAlgorithm: ALGORITHM,
      });
    }
    const signature = Buffer.from(typeof input.Signature === 'string' ? input.Signature : '', 'base64');
    const valid =
      type === 'RAW'
        ? nodeVerify('sha256', message, key.publicKey, signature)
        : verifyDigest(key.publicKey, digest, signature);
    if (!valid)
      return kmsError('KMSInvalidSignatureException', 'The signature is not valid for this message and key.');
    return json(200, { KeyId: keyArn, SignatureValid: true, SigningAlgorithm: ALGORITHM });
  }) as KmsSigningHook;

  hook.register = (keyArn: string) => {
    if (keys.has(keyArn)) return;
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    keys.set(keyArn, { privateKey, publicKey });
  };
  hook.publicKey = (keyArn: string) => keys.get(keyArn)?.publicKey;
  return hook;
}
