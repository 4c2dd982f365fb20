/**
 * The proxy in front of a real moto_server: forwarded S3 PutObject/GetObject (buffered and streamed
 * aws-chunked with a trailing checksum) and DynamoDB PutItem/GetItem round-trip byte for byte, and
 * S3's 403-instead-of-404 and SSE-KMS rules hold on moto's real answers.
 * Skipped, with a message, when moto_server is not on PATH.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { accessSync, constants } from 'node:fs';
import { createServer } from 'node:net';
import { delimiter, join } from 'node:path';
import { Readable } from 'node:stream';
import { CreateTableCommand, DynamoDBClient, GetItemCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { CreateKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import {
  CreateBucketCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startIamProxy } from './proxy.js';
import { ACCOUNT, allow, attempt, clientConfig, principal, REGION, world } from './test-helpers.js';
import type { IamProxy } from './types.js';

function onPath(command: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    try {
      accessSync(join(dir, command), constants.X_OK);
      return join(dir, command);
    } catch {
      // not here
    }
  }
  return undefined;
}

const motoServer = onPath('moto_server');
if (!motoServer)
  console.info(
    '[iam-proxy] moto round-trip skipped: moto_server is not on PATH (pip install "moto[server]")',
  );

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const a = srv.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

describe.skipIf(!motoServer)('through the proxy to moto_server', () => {
  let moto: ChildProcess | undefined;
  let proxy: IamProxy;
  let motoUrl: string;
  const ADMIN = 'AKIDADMIN';
  const BUCKET = `iam-proxy-${randomBytes(4).toString('hex')}`;
  const everything = principal('fn:everything', [allow('*', '*')]);
  const reader = principal('fn:reader', [allow('s3:GetObject', `arn:aws:s3:::${BUCKET}/*`)]);
  const lister = principal('fn:lister', [
    allow('s3:GetObject', `arn:aws:s3:::${BUCKET}/*`),
    allow('s3:ListBucket', `arn:aws:s3:::${BUCKET}`),
  ]);

  beforeAll(async () => {
    const port = await freePort();
    moto = spawn(motoServer as string, ['-H', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
    motoUrl = `http://127.0.0.1:${port}`;
    const until = Date.now() + 20_000;
    for (;;) {
      try {
        await fetch(`${motoUrl}/moto-api/`);
        break;
      } catch (e) {
        if (Date.now() > until) throw new Error(`moto_server did not answer on ${motoUrl}`, { cause: e });
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    proxy = await startIamProxy({
      upstream: motoUrl,
      world: world([everything, reader, lister]),
      adminAccessKeyIds: [ADMIN],
    });
    await new S3Client({ ...clientConfig(proxy.endpoint, ADMIN), forcePathStyle: true }).send(
      new CreateBucketCommand({ Bucket: BUCKET, CreateBucketConfiguration: { LocationConstraint: REGION } }),
    );
    await new DynamoDBClient(clientConfig(proxy.endpoint, ADMIN)).send(
      new CreateTableCommand({
        TableName: 'runs',
        AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }],
        KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
        BillingMode: 'PAY_PER_REQUEST',
      }),
    );
  }, 40_000);

  afterAll(async () => {
    await proxy?.close();
    if (moto?.pid !== undefined) {
      const exited = new Promise((r) => moto?.once('exit', r));
      process.kill(moto.pid, 'SIGTERM');
      await exited;
    }
  });

  const s3 = (key: string) => new S3Client({ ...clientConfig(proxy.endpoint, key), forcePathStyle: true });

  it('round-trips a buffered PutObject and GetObject byte for byte, checksums verified by the SDK', async () => {
    // Over 1 MiB: the SDK sends Expect: 100-continue.
    const body = randomBytes(1_500_000);
    await s3(everything.accessKeyId).send(
      new PutObjectCommand({
        Bucket: BUCKET,
        Key: 'a/b.bin',
        Body: body,
        ChecksumSHA256: createHash('sha256').update(body).digest('base64'),
      }),
    );
    const out = await s3(everything.accessKeyId).send(
      new GetObjectCommand({ Bucket: BUCKET, Key: 'a/b.bin', ChecksumMode: 'ENABLED' }),
    );
    expect(
      Buffer.from(
        await (out.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray(),
      ).equals(body),
    ).toBe(true);
    expect(proxy.denials()).toEqual([]);
  });

  it('round-trips a streamed (aws-chunked, trailing checksum) PutObject byte for byte', async () => {
    const body = randomBytes(200_000);
    await s3(everything.accessKeyId).send(
      new PutObjectCommand({
        Bucket: BUCKET,
        Key: 'stream.bin',
        Body: Readable.from([body.subarray(0, 70_000), body.subarray(70_000)]),
        ContentLength: body.length,
      }),
    );
    // Read straight from moto: what it stored is what the SDK sent, decoded by moto, not by the proxy.
    const direct = await new S3Client({ ...clientConfig(motoUrl, ADMIN), forcePathStyle: true }).send(
      new GetObjectCommand({ Bucket: BUCKET, Key: 'stream.bin' }),
    );
    expect(
      Buffer.from(
        await (direct.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray(),
      ).equals(body),
    ).toBe(true);
  });

  it('round-trips a DynamoDB PutItem and GetItem', async () => {
    const ddb = new DynamoDBClient(clientConfig(proxy.endpoint, everything.accessKeyId));
    const item = { pk: { S: 'run-1' }, data: { B: new Uint8Array([0, 1, 2, 255]) }, n: { N: '42' } };
    await ddb.send(new PutItemCommand({ TableName: 'runs', Item: item }));
    const out = await ddb.send(new GetItemCommand({ TableName: 'runs', Key: { pk: { S: 'run-1' } } }));
    expect(out.Item).toEqual(item);
  });

  it("turns moto's 404 for a missing key into 403 without s3:ListBucket, and keeps it with it", async () => {
    const denied = await attempt(
      s3(reader.accessKeyId).send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'nope' })),
    );
    expect((denied as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode).toBe(403);
    const notFound = await attempt(
      s3(lister.accessKeyId).send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'nope' })),
    );
    expect((notFound as { name?: string }).name).toBe('NotFound');
  });

  it('asks kms:Decrypt for GetObject of an object moto stored with SSE-KMS', async () => {
    const key = await new KMSClient(clientConfig(proxy.endpoint, ADMIN)).send(new CreateKeyCommand({}));
    const keyArn = key.KeyMetadata?.Arn as string;
    expect(keyArn).toContain(`:${ACCOUNT}:key/`);
    await s3(everything.accessKeyId).send(
      new PutObjectCommand({
        Bucket: BUCKET,
        Key: 'enc',
        Body: 'x',
        ServerSideEncryption: 'aws:kms',
        SSEKMSKeyId: keyArn,
      }),
    );
    proxy.calls.length = 0;
    const e = await attempt(
      s3(reader.accessKeyId).send(new GetObjectCommand({ Bucket: BUCKET, Key: 'enc' })),
    );
    expect((e as { name?: string }).name).toBe('AccessDenied');
    expect(proxy.calls.map((c) => `${c.action} ${c.resource} ${c.decision}`)).toEqual([
      `s3:GetObject arn:aws:s3:::${BUCKET}/enc Allowed`,
      `kms:Decrypt ${keyArn} ImplicitlyDenied`,
    ]);
  });
});
