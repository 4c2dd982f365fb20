/**
 * The KMS signing hook signs as KMS does (RAW: sha256(message); DIGEST: the digest as given), behind
 * the IAM decision, and the project's own KmsSigner accepts its signatures in both shapes.
 */
import { createHash, generateKeyPairSync, sign, verify } from 'node:crypto';
import { GetPublicKeyCommand, KMSClient, SignCommand, VerifyCommand } from '@aws-sdk/client-kms';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KMS_RAW_MESSAGE_LIMIT, KmsSigner } from '../../../src/aws/kms-signer.js';
import { kmsSigningHook, signDigest, verifyDigest } from './kms-signing-hook.js';
import { startIamProxy } from './proxy.js';
import {
  ACCOUNT,
  allow,
  attempt,
  clientConfig,
  type FakeUpstream,
  fakeUpstream,
  principal,
  REGION,
  world,
} from './test-helpers.js';
import type { IamProxy } from './types.js';

describe('P-256 ECDSA over a digest', () => {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const message = Buffer.from('in-toto statement');
  const digest = createHash('sha256').update(message).digest();

  it('signs a digest so that node:crypto verifies it as a signature over the message', () => {
    for (let i = 0; i < 5; i++)
      expect(verify('sha256', message, publicKey, signDigest(privateKey, digest))).toBe(true);
  });

  it('verifies node:crypto signatures and rejects altered ones', () => {
    const sig = sign('sha256', message, privateKey);
    expect(verifyDigest(publicKey, digest, sig)).toBe(true);
    const other = Buffer.from(digest);
    other[0] = (other[0] as number) ^ 1;
    expect(verifyDigest(publicKey, other, sig)).toBe(false);
    expect(verifyDigest(publicKey, digest, Buffer.from([0x30, 0x00]))).toBe(false);
  });
});

describe('the hook behind the proxy', () => {
  const KEY = `arn:aws:kms:${REGION}:${ACCOUNT}:key/sign-key`;
  const signer = principal('fn:sign', [allow(['kms:Sign', 'kms:GetPublicKey', 'kms:Verify'], KEY)]);
  const stranger = principal('fn:stranger', []);
  const w = world([signer, stranger], { keyIds: { 'alias/veritrail-sign': KEY } });
  let upstream: FakeUpstream;
  let proxy: IamProxy;
  const hook = kmsSigningHook(w);

  beforeAll(async () => {
    upstream = await fakeUpstream();
    proxy = await startIamProxy({ upstream: upstream.url, world: w });
    hook.register(KEY);
    proxy.addHook(hook);
  });
  afterAll(async () => {
    await proxy.close();
    await upstream.close();
  });

  it('gives KmsSigner verifiable signatures for RAW and DIGEST messages; moto is never asked', async () => {
    const kms = new KMSClient(clientConfig(proxy.endpoint, signer.accessKeyId));
    const s = new KmsSigner(kms, 'alias/veritrail-sign');
    const pem = await s.publicKeyPem();
    for (const message of [Buffer.from('small'), Buffer.alloc(KMS_RAW_MESSAGE_LIMIT + 1, 7)]) {
      const signature = await s.sign(message);
      expect(verify('sha256', message, pem, signature)).toBe(true);
    }
    expect(upstream.seen).toHaveLength(0);
  });

  it('answers Sign with the key ARN and the algorithm, and Verify with SignatureValid', async () => {
    const kms = new KMSClient(clientConfig(proxy.endpoint, signer.accessKeyId));
    const digest = createHash('sha256').update('m').digest();
    const out = await kms.send(
      new SignCommand({
        KeyId: 'alias/veritrail-sign',
        Message: digest,
        MessageType: 'DIGEST',
        SigningAlgorithm: 'ECDSA_SHA_256',
      }),
    );
    expect(out.KeyId).toBe(KEY);
    expect(out.SigningAlgorithm).toBe('ECDSA_SHA_256');
    const ok = await kms.send(
      new VerifyCommand({
        KeyId: KEY,
        Message: digest,
        MessageType: 'DIGEST',
        Signature: out.Signature,
        SigningAlgorithm: 'ECDSA_SHA_256',
      }),
    );
    expect(ok.SignatureValid).toBe(true);
    const bad = await attempt(
      kms.send(
        new VerifyCommand({
          KeyId: KEY,
          Message: Buffer.alloc(32),
          MessageType: 'DIGEST',
          Signature: out.Signature,
          SigningAlgorithm: 'ECDSA_SHA_256',
        }),
      ),
    );
    expect((bad as Error).name).toBe('KMSInvalidSignatureException');
    const pub = await kms.send(new GetPublicKeyCommand({ KeyId: KEY }));
    expect(pub.KeySpec).toBe('ECC_NIST_P256');
  });

  it('refuses a DIGEST that is not 32 bytes, as KMS does', async () => {
    const kms = new KMSClient(clientConfig(proxy.endpoint, signer.accessKeyId));
    const e = await attempt(
      kms.send(
        new SignCommand({
          KeyId: KEY,
          Message: Buffer.alloc(31),
          MessageType: 'DIGEST',
          SigningAlgorithm: 'ECDSA_SHA_256',
        }),
      ),
    );
    expect((e as Error).name).toBe('ValidationException');
  });

  it('keeps the IAM decision: a caller without kms:Sign is denied before the hook', async () => {
    const kms = new KMSClient(clientConfig(proxy.endpoint, stranger.accessKeyId));
    const e = await attempt(
      kms.send(
        new SignCommand({
          KeyId: KEY,
          Message: Buffer.from('m'),
          MessageType: 'RAW',
          SigningAlgorithm: 'ECDSA_SHA_256',
        }),
      ),
    );
    expect((e as Error).name).toBe('AccessDeniedException');
  });

  it('leaves keys it was not given to moto', async () => {
    const kms = new KMSClient(clientConfig(proxy.endpoint, signer.accessKeyId));
    upstream.seen.length = 0;
    proxy.setWorld(world([principal('fn:sign', [allow('kms:Sign', '*')])]));
    try {
      await attempt(
        kms.send(
          new SignCommand({
            KeyId: `arn:aws:kms:${REGION}:${ACCOUNT}:key/other`,
            Message: Buffer.from('m'),
            MessageType: 'RAW',
            SigningAlgorithm: 'ECDSA_SHA_256',
          }),
        ),
      );
    } finally {
      proxy.setWorld(w);
    }
    expect(upstream.seen).toHaveLength(1);
  });
});
