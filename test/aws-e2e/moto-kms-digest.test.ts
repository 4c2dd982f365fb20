/**
 * The emulated AWS signs a KMS DIGEST message as AWS does (test/aws-e2e/harness/moto-patches):
 * veritrail sends any message over 4096 bytes to KMS as its SHA-256 digest, and moto 5.2 on its own
 * would hash that digest again, so every large statement signed on the emulated AWS would not verify.
 */
import { createHash, createPublicKey, verify } from 'node:crypto';
import { CreateKeyCommand, GetPublicKeyCommand, KMSClient, SignCommand } from '@aws-sdk/client-kms';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Moto, onPath, startMoto } from './harness/moto.js';

const motoServer = onPath('moto_server');

describe.skipIf(!motoServer)('moto_server as the harness starts it: KMS Sign', () => {
  let moto: Moto;
  let kms: KMSClient;
  let keyId: string;
  let publicKey: ReturnType<typeof createPublicKey>;
  beforeAll(async () => {
    moto = await startMoto(motoServer as string);
    kms = new KMSClient({
      endpoint: moto.endpoint,
      region: 'eu-west-1',
      credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
    });
    const key = await kms.send(new CreateKeyCommand({ KeySpec: 'ECC_NIST_P256', KeyUsage: 'SIGN_VERIFY' }));
    keyId = String(key.KeyMetadata?.KeyId);
    const pub = await kms.send(new GetPublicKeyCommand({ KeyId: keyId }));
    publicKey = createPublicKey({
      key: Buffer.from(pub.PublicKey as Uint8Array),
      format: 'der',
      type: 'spki',
    });
  }, 60_000);
  afterAll(async () => moto?.stop());

  const message = Buffer.alloc(5000, 'veritrail ');

  it('MessageType DIGEST: the signature is over the message the digest was taken of', async () => {
    const digest = createHash('sha256').update(message).digest();
    const out = await kms.send(
      new SignCommand({
        KeyId: keyId,
        Message: digest,
        MessageType: 'DIGEST',
        SigningAlgorithm: 'ECDSA_SHA_256',
      }),
    );
    const signature = Buffer.from(out.Signature as Uint8Array);
    expect(verify('sha256', message, publicKey, signature)).toBe(true);
    // Without the patch this is what moto signed: the digest hashed again.
    expect(verify('sha256', digest, publicKey, signature)).toBe(false);
  });

  it('MessageType RAW is unchanged', async () => {
    const out = await kms.send(
      new SignCommand({
        KeyId: keyId,
        Message: message.subarray(0, 4096),
        SigningAlgorithm: 'ECDSA_SHA_256',
      }),
    );
    expect(
      verify('sha256', message.subarray(0, 4096), publicKey, Buffer.from(out.Signature as Uint8Array)),
    ).toBe(true);
  });

  it('a DIGEST of the wrong length is refused, as KMS refuses it', async () => {
    await expect(
      kms.send(
        new SignCommand({
          KeyId: keyId,
          Message: Buffer.alloc(20),
          MessageType: 'DIGEST',
          SigningAlgorithm: 'ECDSA_SHA_256',
        }),
      ),
    ).rejects.toThrow(/invalid length/);
  });
});
