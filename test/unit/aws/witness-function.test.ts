/**
 * The Witness stack's function end to end (functions/witness.ts → src/aws/witness-runtime.ts): an
 * audit log asks it for cosignatures through function URL events (payload format 2.0) and gets
 * Lambda's responses back; its state is a DynamoDB table (dynalite), its key a KMS Ed25519 key and
 * its trusted log key a KMS P-256 key (KMS played by aws-sdk-client-mock with real keys, checking
 * the algorithm and message type KMS requires). A log that is rolled back or forked is refused;
 * the deploy-time custom resource gets the vkey the cosignatures verify under.
 */
import { createHash, createPublicKey, generateKeyPairSync, sign } from 'node:crypto';
import {
  GetPublicKeyCommand,
  type GetPublicKeyCommandInput,
  KMSClient,
  SignCommand,
  type SignCommandInput,
} from '@aws-sdk/client-kms';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ObjectAuditLog } from '../../../src/audit/log.js';
import { addCheckpointBody } from '../../../src/audit/witness/core.js';
import type { FunctionUrlResult } from '../../../src/audit/witness/function-url.js';
import type { WitnessClient } from '../../../src/audit/witness/http.js';
import { ensureWitnessTable } from '../../../src/aws/dynamo-witness-store.js';
import { composeWitness, witnessHandler } from '../../../src/aws/witness-runtime.js';
import { formatVkey, parseVkey, verifyCosignatures, type WitnessKey } from '../../../src/core/cosignature.js';
import { type LocalDynamo, startLocalDynamo } from '../../../src/local/dynamo.js';
import { event, MemoryObjectStore, testSigner } from '../../reliability/helpers.js';

const kmsMock = mockClient(KMSClient);
const ACCOUNT = '111122223333';
const WITNESS_KEY_ARN = `arn:aws:kms:eu-west-1:${ACCOUNT}:key/11111111-2222-3333-4444-555555555555`;
const LOG_KEY_ARN = `arn:aws:kms:eu-west-1:${ACCOUNT}:key/66666666-7777-8888-9999-000000000000`;
const TABLE = 'veritrail-witness-fn-test';
const NAME = 'veritrail.aws/test/witness';

/** The KMS keys: an Ed25519 witness key and the log's P-256 checkpoint key. */
const witnessKey = generateKeyPairSync('ed25519');
const logSigner = testSigner();
const logSpki = createPublicKey(logSigner.privateKey).export({ type: 'spki', format: 'der' });
const expectedWitnessKey: WitnessKey = {
  name: NAME,
  publicKey: new Uint8Array(witnessKey.publicKey.export({ type: 'spki', format: 'der' }).subarray(12)),
};

let dynamo: LocalDynamo;
let n = 0;
let origin: string;
let signs: SignCommandInput[];

function mockKms() {
  kmsMock.reset();
  signs = [];
  kmsMock.on(GetPublicKeyCommand).callsFake(getPublicKey);
  // KMS signs ED25519_SHA_512 over a RAW message as pure Ed25519; anything else is refused, as KMS does.
  kmsMock.on(SignCommand).callsFake(async (input: SignCommandInput) => {
    signs.push(input);
    if (
      input.KeyId !== WITNESS_KEY_ARN ||
      input.SigningAlgorithm !== 'ED25519_SHA_512' ||
      input.MessageType !== 'RAW'
    )
      throw Object.assign(new Error('InvalidKeyUsage'), { name: 'ValidationException' });
    return {
      KeyId: WITNESS_KEY_ARN,
      Signature: new Uint8Array(sign(null, input.Message as Uint8Array, witnessKey.privateKey)),
    };
  });
}

/** KMS GetPublicKey of the two keys. */
async function getPublicKey(input: GetPublicKeyCommandInput) {
  if (input.KeyId === WITNESS_KEY_ARN)
    return {
      KeyId: WITNESS_KEY_ARN,
      KeySpec: 'ECC_NIST_EDWARDS25519',
      KeyUsage: 'SIGN_VERIFY',
      SigningAlgorithms: ['ED25519_SHA_512', 'ED25519_PH_SHA_512'],
      PublicKey: new Uint8Array(witnessKey.publicKey.export({ type: 'spki', format: 'der' })),
    };
  if (input.KeyId === LOG_KEY_ARN)
    return {
      KeyId: LOG_KEY_ARN,
      KeySpec: 'ECC_NIST_P256',
      KeyUsage: 'SIGN_VERIFY',
      SigningAlgorithms: ['ECDSA_SHA_256'],
      PublicKey: new Uint8Array(logSpki),
    };
  throw Object.assign(new Error('not found'), { name: 'NotFoundException' });
}

const env = () => ({
  VERITRAIL_WITNESS_NAME: NAME,
  VERITRAIL_WITNESS_KEY_ARN: WITNESS_KEY_ARN,
  VERITRAIL_WITNESS_TABLE: TABLE,
  VERITRAIL_WITNESS_LOGS: JSON.stringify({ logs: [{ origin, keyArns: [LOG_KEY_ARN] }] }),
  AWS_REGION: 'eu-west-1',
});

type Handler = (event: unknown) => Promise<FunctionUrlResult | undefined>;

function handlerFor(vars: Record<string, string> = env()): Handler {
  return witnessHandler(() =>
    composeWitness(vars, { kms: new KMSClient({ region: 'eu-west-1' }), dynamodb: dynamo.client }),
  );
}

/** A function URL request as Lambda hands it to the function (payload format 2.0). */
function urlEvent(method: string, rawPath: string, body?: string, base64 = false) {
  return {
    version: '2.0',
    routeKey: '$default',
    rawPath,
    rawQueryString: '',
    headers: { 'content-type': 'text/plain;charset=UTF-8', host: 'abc.lambda-url.eu-west-1.on.aws' },
    requestContext: {
      accountId: 'anonymous',
      domainName: 'abc.lambda-url.eu-west-1.on.aws',
      http: { method, path: rawPath, protocol: 'HTTP/1.1', sourceIp: '203.0.113.7', userAgent: 'node' },
      requestId: `req-${++n}`,
      routeKey: '$default',
      stage: '$default',
      time: '01/Jan/2026:00:00:00 +0000',
      timeEpoch: 1767225600000,
    },
    ...(body === undefined
      ? {}
      : { body: base64 ? Buffer.from(body).toString('base64') : body, isBase64Encoded: base64 }),
  };
}

/** What the audit log talks to: the function, through its URL's event and response shapes. */
function throughFunctionUrl(handler: Handler, key: WitnessKey): WitnessClient {
  return {
    key,
    submit: async (body) => {
      const r = (await handler(urlEvent('POST', '/add-checkpoint', body))) as FunctionUrlResult;
      return { status: r.statusCode, body: r.body };
    },
  };
}

const openLog = (store: MemoryObjectStore, witness: WitnessClient) =>
  new ObjectAuditLog({
    store,
    signer: logSigner,
    origin,
    witnesses: [witness],
    now: () => new Date('2026-01-01T00:00:00Z'),
  });

beforeAll(async () => {
  dynamo = await startLocalDynamo(undefined);
  await ensureWitnessTable(dynamo.client, TABLE);
}, 60_000);
afterAll(async () => {
  await dynamo?.close();
  kmsMock.restore();
});
beforeEach(() => {
  origin = `veritrail.aws/audit-bucket-${process.pid}-${++n}`;
  mockKms();
});

describe('the witness function behind its URL', () => {
  it('cosigns each checkpoint of the log after a consistency check, with the KMS Ed25519 key', async () => {
    const handler = handlerFor();
    const store = new MemoryObjectStore();
    const log = openLog(store, throughFunctionUrl(handler, expectedWitnessKey));
    for (let i = 0; i < 10; i++) await log.append(event(i));
    expect((await log.checkpoint()).witnessed).toMatchObject([{ ok: true }]);
    for (let i = 10; i < 25; i++) await log.append(event(i));
    const cp = await log.checkpoint();
    expect(cp.witnessed).toMatchObject([{ ok: true }]);
    expect(verifyCosignatures(cp.note, [expectedWitnessKey])).toHaveLength(1);
    expect(signs.every((s) => s.MessageType === 'RAW' && s.SigningAlgorithm === 'ED25519_SHA_512')).toBe(
      true,
    );

    // GET /<sha256(origin)>/checkpoint: the latest cosigned checkpoint, for `verify --witness-url`.
    const hash = createHash('sha256').update(origin).digest('hex');
    const latest = (await handler(urlEvent('GET', `/${hash}/checkpoint`))) as FunctionUrlResult;
    expect(latest.statusCode).toBe(200);
    expect(latest.body).toBe(cp.note);
    const unknown = (await handler(urlEvent('GET', `/${'0'.repeat(64)}/checkpoint`))) as FunctionUrlResult;
    expect(unknown.statusCode).toBe(404);
  });

  it('refuses a rolled-back log (409) and a fork of what it cosigned (422)', async () => {
    const handler = handlerFor();
    const key = expectedWitnessKey;
    const honest = new MemoryObjectStore();
    const log = openLog(honest, throughFunctionUrl(handler, key));
    for (let i = 0; i < 10; i++) await log.append(event(i));
    await log.checkpoint();
    // The owner keeps a copy at size 10, then the log grows to 15 and is cosigned there.
    const saved = new MemoryObjectStore();
    for (const [id, bytes] of honest.objects.entries()) saved.objects.set(id, new Uint8Array(bytes));
    for (let i = 10; i < 15; i++) await log.append(event(i));
    expect((await log.checkpoint()).witnessed).toMatchObject([{ ok: true }]);

    // Rolled back to the copy: fewer entries than the witness has seen.
    const rolled = openLog(saved, throughFunctionUrl(handler, key));
    await rolled.append(event('after-rollback'));
    const r = await rolled.checkpoint();
    expect(r.size).toBe(11);
    expect(r.witnessed).toMatchObject([{ ok: false, status: 409 }]);

    // Forked: the copy grown to the cosigned size with other entries.
    for (let i = 0; i < 4; i++) await rolled.append(event(`fork-${i}`));
    const f = await rolled.checkpoint();
    expect(f.size).toBe(15);
    expect(f.witnessed).toMatchObject([{ ok: false, status: 422 }]);
    expect(verifyCosignatures(f.note, [key])).toEqual([]);
  });

  it('reads a base64 body, and answers 400, 403, 404 and 405 as tlog-witness and HTTP say', async () => {
    const handler = handlerFor();
    const store = new MemoryObjectStore();
    const log = new ObjectAuditLog({ store, signer: logSigner, origin });
    await log.append(event(1));
    const note = (await log.checkpoint()).note;
    const post = async (body: string, base64 = false) =>
      (await handler(urlEvent('POST', '/add-checkpoint', body, base64))) as FunctionUrlResult;
    const ok = await post(addCheckpointBody(0, [], note), true);
    expect(ok.statusCode).toBe(200);
    expect(ok.body).toMatch(new RegExp(`^\u2014 ${NAME} `));
    expect((await post('old x\n\nnope')).statusCode).toBe(400);
    expect((await post('x'.repeat(70 * 1024))).statusCode).toBe(400);
    const mallory = new ObjectAuditLog({ store: new MemoryObjectStore(), signer: testSigner(), origin });
    await mallory.append(event(1));
    expect((await post(addCheckpointBody(0, [], (await mallory.checkpoint()).note))).statusCode).toBe(403);
    const other = new ObjectAuditLog({
      store: new MemoryObjectStore(),
      signer: logSigner,
      origin: 'other.test/log',
    });
    await other.append(event(1));
    expect((await post(addCheckpointBody(0, [], (await other.checkpoint()).note))).statusCode).toBe(404);
    expect(((await handler(urlEvent('GET', '/add-checkpoint'))) as FunctionUrlResult).statusCode).toBe(405);
    expect(((await handler(urlEvent('GET', '/'))) as FunctionUrlResult).statusCode).toBe(404);
  });

  it('answers 500 without details when KMS refuses to sign, and logs the details', async () => {
    const handler = handlerFor();
    kmsMock.on(SignCommand).rejects(
      Object.assign(new Error('User is not authorized to perform kms:Sign'), {
        name: 'AccessDeniedException',
        $metadata: { httpStatusCode: 400 },
      }),
    );
    const log = new ObjectAuditLog({ store: new MemoryObjectStore(), signer: logSigner, origin });
    await log.append(event(1));
    const lines: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((chunk: string) => {
      lines.push(String(chunk));
      return true;
    }) as typeof process.stderr.write;
    let r: FunctionUrlResult;
    try {
      r = (await handler(
        urlEvent('POST', '/add-checkpoint', addCheckpointBody(0, [], (await log.checkpoint()).note)),
      )) as FunctionUrlResult;
    } finally {
      process.stderr.write = write;
    }
    expect(r.statusCode).toBe(500);
    expect(r.body).not.toContain('kms');
    expect(lines.join('')).toContain('ACCESS_DENIED');
  });

  it('does not start with a key that is not Ed25519: 503 until the configuration is fixed', async () => {
    const handler = handlerFor({ ...env(), VERITRAIL_WITNESS_KEY_ARN: LOG_KEY_ARN });
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = (() => true) as typeof process.stderr.write;
    try {
      const r = (await handler(urlEvent('POST', '/add-checkpoint', 'old 0\n\nx'))) as FunctionUrlResult;
      expect(r.statusCode).toBe(503);
    } finally {
      process.stderr.write = write;
    }
  });
});

describe('the custom resource that publishes the vkey at deploy time', () => {
  const responseUrl =
    'https://cloudformation-custom-resource-response-euwest1.s3-eu-west-1.amazonaws.com/arn%3A/req?X-Amz-Signature=abc';
  const request = (type: 'Create' | 'Update' | 'Delete', url = responseUrl) => ({
    RequestType: type,
    ServiceToken: 'arn:aws:lambda:eu-west-1:111122223333:function:witness',
    ResponseURL: url,
    StackId: 'arn:aws:cloudformation:eu-west-1:111122223333:stack/test-veritrail-Witness/guid',
    RequestId: `r-${++n}`,
    ResourceType: 'Custom::WitnessVkey',
    LogicalResourceId: 'WitnessVkey',
    ...(type === 'Create' ? {} : { PhysicalResourceId: 'previous' }),
    ResourceProperties: { ServiceToken: 'x', Name: NAME, KeyArn: WITNESS_KEY_ARN },
  });
  const capture = () => {
    const sent: { url: string; init: RequestInit }[] = [];
    const fetch = (async (url: string, init: RequestInit) => {
      sent.push({ url, init });
      return new Response('', { status: 200 });
    }) as unknown as typeof globalThis.fetch;
    return { sent, fetch };
  };
  const withFetch = (fetch: typeof globalThis.fetch, vars = env(), retryForMs = 0) =>
    witnessHandler(
      () => composeWitness(vars, { kms: new KMSClient({ region: 'eu-west-1' }), dynamodb: dynamo.client }),
      { fetch, env: {}, retryForMs },
    );

  it('answers Create with the vkey its cosignatures verify under, PUT to the presigned URL', async () => {
    const { sent, fetch } = capture();
    await withFetch(fetch)(request('Create'));
    expect(sent).toHaveLength(1);
    expect(sent[0]?.url).toBe(responseUrl);
    expect(sent[0]?.init.method).toBe('PUT');
    expect(sent[0]?.init.headers).toEqual({ 'content-type': '' });
    const body = JSON.parse(String(sent[0]?.init.body)) as {
      Status: string;
      Data: { Vkey: string };
      PhysicalResourceId: string;
    };
    expect(body.Status).toBe('SUCCESS');
    expect(body.Data.Vkey).toBe(formatVkey(expectedWitnessKey));
    expect(parseVkey(body.Data.Vkey)).toEqual(expectedWitnessKey);
    expect(body.PhysicalResourceId).toBe(body.Data.Vkey);
  });

  it('answers Delete without touching KMS, and Create FAILED with the reason when the key is wrong', async () => {
    const { sent, fetch } = capture();
    await withFetch(fetch)(request('Delete'));
    expect(JSON.parse(String(sent[0]?.init.body))).toMatchObject({
      Status: 'SUCCESS',
      PhysicalResourceId: 'previous',
    });
    expect(kmsMock.commandCalls(GetPublicKeyCommand)).toHaveLength(0);
    await withFetch(fetch, { ...env(), VERITRAIL_WITNESS_KEY_ARN: LOG_KEY_ARN })(request('Create'));
    const failed = JSON.parse(String(sent[1]?.init.body)) as { Status: string; Reason: string };
    expect(failed.Status).toBe('FAILED');
    expect(failed.Reason).toMatch(/ECC_NIST_EDWARDS25519/);
  });

  it('waits for its new grants (IAM applies them after a few seconds), then answers; FAILED if they never come', async () => {
    const denied = Object.assign(new Error('not authorized to perform kms:GetPublicKey'), {
      name: 'AccessDeniedException',
      $metadata: { httpStatusCode: 400 },
    });
    const { sent, fetch } = capture();
    const real = kmsMock.commandCalls(GetPublicKeyCommand).length;
    expect(real).toBe(0);
    // Denied once, then allowed: the grants arrived while it waited.
    kmsMock.on(GetPublicKeyCommand).rejectsOnce(denied).callsFake(getPublicKey);
    await withFetch(fetch, env(), 5_000)(request('Create'));
    expect(JSON.parse(String(sent[0]?.init.body))).toMatchObject({ Status: 'SUCCESS' });
    expect(kmsMock.commandCalls(GetPublicKeyCommand).length).toBeGreaterThan(2);
    // Denied for good: FAILED with the reason, once the wait is spent.
    kmsMock.on(GetPublicKeyCommand).rejects(denied);
    await withFetch(fetch, env(), 0)(request('Create'));
    const failed = JSON.parse(String(sent[1]?.init.body)) as { Status: string; Reason: string };
    expect(failed.Status).toBe('FAILED');
    expect(failed.Reason).toMatch(/access denied: kms:GetPublicKey/);
  });

  it('never sends to a URL that is not S3', async () => {
    const { sent, fetch } = capture();
    await expect(
      withFetch(fetch)(request('Create', 'https://attacker.example/collect')),
    ).rejects.toMatchObject({ code: 'USAGE' });
    await expect(
      withFetch(fetch)(request('Create', 'http://bucket.s3.amazonaws.com/x')),
    ).rejects.toMatchObject({ code: 'USAGE' });
    expect(sent).toEqual([]);
  });
});
