import { createHash, createPublicKey, generateKeyPairSync, sign, verify } from 'node:crypto';
import {
  DisabledException,
  GetPublicKeyCommand,
  KMSClient,
  KMSInvalidStateException,
  SignCommand,
  type SignCommandInput,
} from '@aws-sdk/client-kms';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { KMS_RAW_MESSAGE_LIMIT, KmsSigner } from '../../../src/aws/kms-signer.js';
import { awsError, codeOf, errorOf } from './helpers.js';

const kmsMock = mockClient(KMSClient);
const KEY_ARN = 'arn:aws:kms:eu-west-1:111122223333:key/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0';

/** A real P-256 key standing in for the KMS key: the mock signs with it as KMS would. */
const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const spkiDer = publicKey.export({ type: 'spki', format: 'der' });

/**
 * Messages the test is about to sign, by their sha256: node:crypto has no pre-hashed ECDSA sign,
 * so for MessageType DIGEST the mock finds the message whose SHA-256 KMS was given and signs it,
 * which is the same ECDSA-over-sha256(message) KMS computes. An unknown digest fails the test.
 */
const messagesByDigest = new Map<string, Buffer>();
function expectMessage(message: Uint8Array): void {
  messagesByDigest.set(createHash('sha256').update(message).digest('hex'), Buffer.from(message));
}

/** Behaves like KMS Sign: RAW → ECDSA over sha256(message); DIGEST → ECDSA over the given digest. DER output. */
function kmsSign(input: SignCommandInput): {
  Signature: Uint8Array;
  KeyId: string;
  SigningAlgorithm: 'ECDSA_SHA_256';
} {
  const given = Buffer.from(input.Message ?? new Uint8Array());
  let message: Buffer = given;
  if (input.MessageType === 'DIGEST') {
    const m = messagesByDigest.get(given.toString('hex'));
    if (!m) throw new Error('mock KMS: DIGEST is not the sha256 of any expected message');
    message = m;
  }
  const signature = sign('sha256', message, { key: privateKey, dsaEncoding: 'der' });
  return { Signature: new Uint8Array(signature), KeyId: KEY_ARN, SigningAlgorithm: 'ECDSA_SHA_256' };
}

function mockKms() {
  kmsMock.on(GetPublicKeyCommand).resolves({
    KeyId: KEY_ARN,
    PublicKey: new Uint8Array(spkiDer),
    KeySpec: 'ECC_NIST_P256',
    KeyUsage: 'SIGN_VERIFY',
    SigningAlgorithms: ['ECDSA_SHA_256'],
  });
  kmsMock.on(SignCommand).callsFake(async (input: SignCommandInput) => kmsSign(input));
}

const signer = () => new KmsSigner(new KMSClient({ region: 'eu-west-1' }), KEY_ARN);

beforeEach(() => {
  kmsMock.reset();
});

describe('KmsSigner', () => {
  it('has the key ARN as its key id', () => {
    expect(signer().keyId).toBe(KEY_ARN);
  });

  describe('when a message fits the 4096-byte RAW limit', () => {
    it('sends MessageType RAW with the message and returns a DER signature that node:crypto verifies against the PEM', async () => {
      mockKms();
      const s = signer();
      const message = new TextEncoder().encode('DSSEv1 28 application/vnd.in-toto+json 2 {}');
      const signature = await s.sign(message);
      expect(kmsMock.commandCalls(SignCommand)[0]?.args[0].input).toEqual({
        KeyId: KEY_ARN,
        Message: message,
        MessageType: 'RAW',
        SigningAlgorithm: 'ECDSA_SHA_256',
      });
      const pem = await s.publicKeyPem();
      expect(pem).toMatch(/^-----BEGIN PUBLIC KEY-----\n/);
      expect(verify('sha256', message, createPublicKey(pem), signature)).toBe(true);
      // DER: SEQUENCE tag first.
      expect(signature[0]).toBe(0x30);
    });

    it('uses RAW at exactly 4096 bytes', async () => {
      mockKms();
      await signer().sign(new Uint8Array(KMS_RAW_MESSAGE_LIMIT).fill(7));
      expect(kmsMock.commandCalls(SignCommand)[0]?.args[0].input.MessageType).toBe('RAW');
    });
  });

  describe('when a message is longer than 4096 bytes', () => {
    it('sends MessageType DIGEST with sha256(message), and the signature verifies over the message itself', async () => {
      mockKms();
      const s = signer();
      const message = new Uint8Array(KMS_RAW_MESSAGE_LIMIT + 1).fill(0x61);
      expectMessage(message);
      const signature = await s.sign(message);
      const input = kmsMock.commandCalls(SignCommand)[0]?.args[0].input;
      expect(input?.MessageType).toBe('DIGEST');
      expect(Buffer.from(input?.Message ?? new Uint8Array()).toString('hex')).toBe(
        createHash('sha256').update(message).digest('hex'),
      );
      expect(input?.SigningAlgorithm).toBe('ECDSA_SHA_256');
      expect(verify('sha256', message, createPublicKey(await s.publicKeyPem()), signature)).toBe(true);
    });
  });

  describe('the public key', () => {
    it('converts the DER SubjectPublicKeyInfo to PEM once and caches it', async () => {
      mockKms();
      const s = signer();
      const pem1 = await s.publicKeyPem();
      const pem2 = await s.publicKeyPem();
      await s.sign(new Uint8Array([1]));
      expect(pem1).toBe(pem2);
      expect(pem1).toBe(publicKey.export({ type: 'spki', format: 'pem' }).toString());
      expect(kmsMock.commandCalls(GetPublicKeyCommand)).toHaveLength(1);
      expect(kmsMock.commandCalls(GetPublicKeyCommand)[0]?.args[0].input).toEqual({ KeyId: KEY_ARN });
    });

    it('does not cache a failure', async () => {
      kmsMock.on(GetPublicKeyCommand).rejectsOnce(awsError('ThrottlingException', 400));
      const s = signer();
      expect(await codeOf(s.publicKeyPem())).toBe('TRANSIENT');
      mockKms();
      await expect(s.publicKeyPem()).resolves.toMatch(/BEGIN PUBLIC KEY/);
    });

    it('refuses a key of another spec', async () => {
      kmsMock.on(GetPublicKeyCommand).resolves({ PublicKey: new Uint8Array(spkiDer), KeySpec: 'RSA_2048' });
      expect(await codeOf(signer().publicKeyPem())).toBe('INTERNAL');
    });

    it('refuses a P-384 key even when the endpoint omits KeySpec', async () => {
      const other = generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey;
      kmsMock
        .on(GetPublicKeyCommand)
        .resolves({ PublicKey: new Uint8Array(other.export({ type: 'spki', format: 'der' })) });
      const e = await errorOf(signer().publicKeyPem());
      expect(e).toMatchObject({ code: 'INTERNAL' });
      expect((e as Error).message).toMatch(/ECC_NIST_P256/);
    });
  });

  describe('when KMS returns a signature that does not verify (a different key behind the ARN)', () => {
    it('fails with SIGNATURE_INVALID', async () => {
      mockKms();
      const stranger = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
      kmsMock.on(SignCommand).callsFake(async (input: SignCommandInput) => ({
        Signature: new Uint8Array(sign('sha256', Buffer.from(input.Message ?? new Uint8Array()), stranger)),
      }));
      expect(await codeOf(signer().sign(new Uint8Array([1, 2, 3])))).toBe('SIGNATURE_INVALID');
    });
  });

  describe('when KMS fails', () => {
    it.each([
      ['disabled key', new DisabledException({ message: 'disabled', $metadata: {} }), 'INTERNAL', /disabled/],
      [
        'key pending deletion',
        new KMSInvalidStateException({ message: 'pending deletion', $metadata: {} }),
        'INTERNAL',
        /pending deletion/,
      ],
      ['access denied', awsError('AccessDeniedException', 400), 'ACCESS_DENIED', /kms:Sign on arn:aws:kms/],
      ['throttling', awsError('ThrottlingException', 400), 'TRANSIENT', /throttled/],
      ['internal error', awsError('KMSInternalException', 500), 'TRANSIENT', /retry later/],
      ['invalid key usage', awsError('InvalidKeyUsageException', 400), 'INTERNAL', /SIGN_VERIFY/],
    ])('maps %s to %s with a message that says what to check', async (_what, error, code, message) => {
      mockKms();
      kmsMock.on(SignCommand).rejects(error);
      const e = await errorOf(signer().sign(new Uint8Array([1])));
      expect(e).toMatchObject({ code });
      expect((e as Error).message).toMatch(message);
      expect((e as Error).cause).toBe(error);
    });

    it('names the configuring variable when it was given', async () => {
      mockKms();
      kmsMock.on(SignCommand).rejects(awsError('NotFoundException', 400));
      const s = new KmsSigner(new KMSClient({ region: 'eu-west-1' }), KEY_ARN, {
        configuredBy: 'VERITRAIL_SIGNING_KEY_ARN',
      });
      const e = await errorOf(s.sign(new Uint8Array([1])));
      expect((e as Error).message).toContain('VERITRAIL_SIGNING_KEY_ARN');
    });
  });
});
