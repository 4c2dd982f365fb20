import { Readable } from 'node:stream';
import { GetPublicKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import { HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { type HttpRequest, HttpResponse } from '@smithy/protocol-http';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  createAwsClients,
  DEFAULT_MAX_ATTEMPTS,
  DEFAULT_RETRY_MODE,
  retryConfig,
} from '../../../src/aws/clients.js';
import { isTransientAwsError, translateAwsError } from '../../../src/aws/errors.js';
import { KmsSigner } from '../../../src/aws/kms-signer.js';
import { awsError, codeOf } from './helpers.js';

/**
 * A request handler standing in for the network: the real SDK middleware stack (endpoint
 * resolution, signing, retry strategy, deserialization) runs in front of it, which a client mock
 * would skip.
 */
function fakeNetwork(responses: { status: number; headers?: Record<string, string>; body?: string }[]) {
  const requests: HttpRequest[] = [];
  const handler = {
    metadata: { handlerProtocol: 'http/1.1' },
    async handle(request: HttpRequest) {
      requests.push(request);
      const r = responses[Math.min(requests.length - 1, responses.length - 1)] ?? { status: 500 };
      return {
        response: new HttpResponse({
          statusCode: r.status,
          headers: { 'x-amzn-requestid': `req-${requests.length}`, ...(r.headers ?? {}) },
          body: Readable.from([Buffer.from(r.body ?? '')]),
        }),
      };
    },
    updateHttpClientConfig() {},
    httpHandlerConfigs: () => ({}),
  };
  return { handler, requests };
}

/** A real P-256 SubjectPublicKeyInfo (DER, base64) for a successful GetPublicKey body. */
const SPKI_B64 =
  'MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEYP7UuiVanTHJYet0xjVtaMBJuJI7Yfps5mliLmDyn7Z5A/4QCLi8maQa6elWKLxk8vGyDC1+n1F3o8KU1EYimQ==';
const KEY_ARN = 'arn:aws:kms:eu-west-1:111122223333:key/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0';

beforeEach(() => {
  // Dummy credentials and region for this test process only: the SDK chain reads them from here.
  vi.stubEnv('AWS_ACCESS_KEY_ID', 'AKIDEXAMPLE');
  vi.stubEnv('AWS_SECRET_ACCESS_KEY', 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY');
  vi.stubEnv('AWS_SESSION_TOKEN', '');
  vi.stubEnv('AWS_REGION', 'eu-west-1');
  vi.stubEnv('AWS_PROFILE', '');
  vi.stubEnv('AWS_ENDPOINT_URL', '');
  vi.stubEnv('AWS_ENDPOINT_URL_S3', '');
  vi.stubEnv('AWS_ENDPOINT_URL_KMS', '');
});
afterEach(() => {
  vi.unstubAllEnvs();
});

describe('retryConfig', () => {
  it('defaults to adaptive retries with 5 attempts', () => {
    expect(retryConfig({})).toEqual({ maxAttempts: DEFAULT_MAX_ATTEMPTS, retryMode: DEFAULT_RETRY_MODE });
    expect(DEFAULT_RETRY_MODE).toBe('adaptive');
  });

  it('leaves AWS_MAX_ATTEMPTS and AWS_RETRY_MODE to the SDK chain when they are set', () => {
    expect(retryConfig({ AWS_MAX_ATTEMPTS: '9', AWS_RETRY_MODE: 'standard' })).toEqual({});
  });

  it('lets explicit options win and refuses nonsense', () => {
    expect(retryConfig({ AWS_MAX_ATTEMPTS: '9' }, { maxAttempts: 2, retryMode: 'standard' })).toEqual({
      maxAttempts: 2,
      retryMode: 'standard',
    });
    expect(() => retryConfig({}, { maxAttempts: 0 })).toThrow(/positive integer/);
  });
});

describe('createAwsClients', () => {
  it('passes no credentials, region or endpoint of its own', async () => {
    const clients = createAwsClients({});
    expect(await clients.s3.config.maxAttempts()).toBe(DEFAULT_MAX_ATTEMPTS);
    expect((await clients.kms.config.retryStrategy()).constructor.name).toBe('AdaptiveRetryStrategy');
    expect(clients.s3.config.endpoint).toBeUndefined();
    // Region comes from AWS_REGION through the SDK chain.
    expect(await clients.sfn.config.region()).toBe('eu-west-1');
    for (const c of Object.values(clients)) c.destroy();
  });
});

describe('the standard SDK chain for endpoints (AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_<SERVICE>)', () => {
  it('sends requests to AWS_ENDPOINT_URL, and a service-specific variable wins for its service', async () => {
    vi.stubEnv('AWS_ENDPOINT_URL', 'http://127.0.0.1:4566');
    vi.stubEnv('AWS_ENDPOINT_URL_KMS', 'http://127.0.0.1:4599');
    const s3net = fakeNetwork([{ status: 200, headers: { 'content-length': '3' } }]);
    const kmsnet = fakeNetwork([
      {
        status: 200,
        body: JSON.stringify({ KeyId: KEY_ARN, PublicKey: SPKI_B64, KeySpec: 'ECC_NIST_P256' }),
      },
    ]);
    const s3 = new S3Client({ requestHandler: s3net.handler });
    const kms = new KMSClient({ requestHandler: kmsnet.handler });
    await s3.send(new HeadObjectCommand({ Bucket: 'acme-audit', Key: 'k' }));
    await kms.send(new GetPublicKeyCommand({ KeyId: KEY_ARN }));
    expect(s3net.requests[0]).toMatchObject({ hostname: '127.0.0.1', port: 4566 });
    // An IP endpoint gets path-style addressing: the bucket is in the path, not the host.
    expect(s3net.requests[0]?.path).toBe('/acme-audit/k');
    expect(kmsnet.requests[0]).toMatchObject({ hostname: '127.0.0.1', port: 4599 });
  });
});

describe('retries by the SDK retry strategy', () => {
  it('retries throttling with backoff and then succeeds', async () => {
    const net = fakeNetwork([
      {
        status: 400,
        headers: { 'x-amzn-errortype': 'ThrottlingException' },
        body: JSON.stringify({ __type: 'ThrottlingException', message: 'Rate exceeded' }),
      },
      {
        status: 200,
        body: JSON.stringify({ KeyId: KEY_ARN, PublicKey: SPKI_B64, KeySpec: 'ECC_NIST_P256' }),
      },
    ]);
    const kms = new KMSClient({ requestHandler: net.handler, maxAttempts: 3, retryMode: 'standard' });
    const pem = await new KmsSigner(kms, KEY_ARN).publicKeyPem();
    expect(pem).toMatch(/BEGIN PUBLIC KEY/);
    expect(net.requests).toHaveLength(2);
  });

  it('gives up after maxAttempts on 5xx and reports TRANSIENT', async () => {
    const net = fakeNetwork([
      {
        status: 500,
        headers: { 'x-amzn-errortype': 'KMSInternalException' },
        body: JSON.stringify({ __type: 'KMSInternalException', message: 'internal' }),
      },
    ]);
    const kms = new KMSClient({ requestHandler: net.handler, maxAttempts: 2, retryMode: 'standard' });
    expect(await codeOf(new KmsSigner(kms, KEY_ARN).publicKeyPem())).toBe('TRANSIENT');
    expect(net.requests).toHaveLength(2);
  });

  it('does not retry a client error such as access denied', async () => {
    const net = fakeNetwork([
      {
        status: 400,
        headers: { 'x-amzn-errortype': 'AccessDeniedException' },
        body: JSON.stringify({ __type: 'AccessDeniedException', message: 'not authorized' }),
      },
    ]);
    const kms = new KMSClient({ requestHandler: net.handler, maxAttempts: 3, retryMode: 'standard' });
    expect(await codeOf(new KmsSigner(kms, KEY_ARN).publicKeyPem())).toBe('ACCESS_DENIED');
    expect(net.requests).toHaveLength(1);
  });
});

describe('translateAwsError', () => {
  const ctx = { action: 's3:PutObject', resource: 's3://b/k' };

  it.each([
    ['PreconditionFailed', 412, 'OBJECT_EXISTS'],
    ['NoSuchKey', 404, 'OBJECT_NOT_FOUND'],
    ['NoSuchVersion', 404, 'OBJECT_NOT_FOUND'],
    ['BadDigest', 400, 'DIGEST_MISMATCH'],
    ['XAmzContentSHA256Mismatch', 400, 'DIGEST_MISMATCH'],
    ['SlowDown', 503, 'TRANSIENT'],
    ['ThrottlingException', 400, 'TRANSIENT'],
    ['ProvisionedThroughputExceededException', 400, 'TRANSIENT'],
    ['ServiceUnavailable', 503, 'TRANSIENT'],
    ['SomethingNew', 502, 'TRANSIENT'],
    ['KMSInvalidSignatureException', 400, 'SIGNATURE_INVALID'],
    ['AccessDenied', 403, 'ACCESS_DENIED'],
    ['ExpiredToken', 400, 'ACCESS_DENIED'],
    ['ValidationException', 400, 'INTERNAL'],
  ])('maps %s (%i) to %s and keeps the cause', (name, status, code) => {
    const e = awsError(name, status);
    const t = translateAwsError(e, ctx);
    expect(t.code).toBe(code);
    expect(t.name).toBe('VeritrailError');
    expect(t.cause).toBe(e);
    expect(t.details).toMatchObject({
      action: 's3:PutObject',
      resource: 's3://b/k',
      awsError: name,
      requestId: 'req-1',
    });
  });

  it('treats a network failure (no response) as transient', () => {
    const e = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' });
    expect(isTransientAwsError(e)).toBe(true);
    expect(translateAwsError(e, ctx).code).toBe('TRANSIENT');
  });

  it('explains a missing credential chain', () => {
    const e = Object.assign(new Error('Could not load credentials from any providers'), {
      name: 'CredentialsProviderError',
    });
    expect(translateAwsError(e, ctx).message).toMatch(/standard chain/);
  });

  it('passes a domain error through unchanged', async () => {
    const inner = translateAwsError(awsError('NoSuchKey', 404), ctx);
    expect(translateAwsError(inner, { action: 'x', resource: 'y' })).toBe(inner);
  });
});
