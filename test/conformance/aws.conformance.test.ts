/**
 * Optional conformance suite: the AWS adapters against a real AWS-compatible endpoint.
 *
 * - AWS_ENDPOINT_URL set: runs against it, with whatever credentials and region the standard
 *   chain provides (use an account or emulator you can throw away: buckets with Object Lock
 *   cannot be emptied until retention ends).
 * - Otherwise, when `moto_server` is on PATH: starts it on a free 127.0.0.1 port, with dummy
 *   credentials set in this test process only, and stops it afterwards.
 * - Otherwise: skipped, with a note saying why.
 *
 * Cases an emulator does not implement faithfully are skipped one by one with a note (probed,
 * not assumed): moto 5.2 does not check x-amz-checksum-sha256 on PutObject, and for KMS Sign with
 * MessageType DIGEST it hashes the digest again.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { CreateKeyCommand } from '@aws-sdk/client-kms';
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  HeadObjectCommand,
  PutBucketVersioningCommand,
  PutObjectCommand,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { type AwsClients, createAwsClients } from '../../src/aws/clients.js';
import { DynamoRunStore, ensureRunTable } from '../../src/aws/dynamo-run-store.js';
import { KMS_RAW_MESSAGE_LIMIT, KmsSigner } from '../../src/aws/kms-signer.js';
import { S3ObjectStore } from '../../src/aws/s3-object-store.js';
import { isVeritrailError } from '../../src/core/errors.js';
import { RunExistsError } from '../../src/core/run.js';
import { freePort, onPath } from '../aws-e2e/harness/moto.js';

const externalEndpoint = process.env.AWS_ENDPOINT_URL || undefined;
const motoServer = externalEndpoint ? undefined : onPath('moto_server');
const available = Boolean(externalEndpoint || motoServer);
if (!available) {
  console.info(
    '[conformance] skipped: AWS_ENDPOINT_URL is not set and moto_server is not on PATH (pip install "moto[server]" to run it)',
  );
}

async function waitForHttp(url: string, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    try {
      await fetch(url);
      return;
    } catch (e) {
      if (Date.now() > until) throw new Error(`no answer from ${url} within ${timeoutMs} ms`, { cause: e });
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (e) {
    return isVeritrailError(e) ? e.code : `not a VeritrailError: ${String(e)}`;
  }
}

async function readAll(r: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of r) chunks.push(Buffer.from(c as Uint8Array));
  return Buffer.concat(chunks);
}

function note(message: string): void {
  console.info(`[conformance] ${message}`);
}

describe.skipIf(!available)('AWS adapters against an AWS-compatible endpoint', () => {
  let moto: ChildProcess | undefined;
  let clients: AwsClients;
  const suffix = randomUUID().slice(0, 8);
  const buckets = {
    landing: `vt-conf-landing-${suffix}`,
    artifacts: `vt-conf-artifacts-${suffix}`,
    audit: `vt-conf-audit-${suffix}`,
  };

  beforeAll(async () => {
    if (!externalEndpoint && motoServer) {
      const port = await freePort();
      moto = spawn(motoServer, ['-H', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
      const endpoint = `http://127.0.0.1:${port}`;
      // Dummy credentials for the emulator, in this test process only.
      vi.stubEnv('AWS_ENDPOINT_URL', endpoint);
      vi.stubEnv('AWS_ACCESS_KEY_ID', 'testing');
      vi.stubEnv('AWS_SECRET_ACCESS_KEY', 'testing');
      vi.stubEnv('AWS_SESSION_TOKEN', '');
      vi.stubEnv('AWS_PROFILE', '');
      vi.stubEnv('AWS_REGION', 'us-east-1');
      await waitForHttp(`${endpoint}/moto-api/`, 20_000);
      note(`started moto_server on ${endpoint}`);
    } else {
      note(`using AWS_ENDPOINT_URL=${externalEndpoint}`);
    }
    clients = createAwsClients(process.env, { maxAttempts: 2 });
    // Fixtures the adapters never create themselves (the stack does): buckets, keys, the table.
    for (const bucket of Object.values(buckets)) {
      await clients.s3.send(
        new CreateBucketCommand({ Bucket: bucket, ObjectLockEnabledForBucket: bucket === buckets.audit }),
      );
      await clients.s3.send(
        new PutBucketVersioningCommand({ Bucket: bucket, VersioningConfiguration: { Status: 'Enabled' } }),
      );
    }
  }, 40_000);

  afterAll(async () => {
    if (clients) for (const c of Object.values(clients)) c.destroy();
    if (moto?.pid !== undefined) {
      const exited = new Promise((r) => moto?.once('exit', r));
      process.kill(moto.pid, 'SIGTERM');
      await exited;
    }
    vi.unstubAllEnvs();
  });

  describe('S3ObjectStore', () => {
    const store = () => new S3ObjectStore(clients.s3, { buckets });

    it('writes a WORM object once: COMPLIANCE lock with the retain-until date, then OBJECT_EXISTS', async () => {
      const until = new Date(Date.now() + 86_400_000);
      until.setUTCMilliseconds(0);
      const info = await store().put('audit', 'log/0000', new TextEncoder().encode('first'), {
        ifAbsent: true,
        retainUntil: until,
      });
      expect(info.versionId).toBeTruthy();
      expect(
        await codeOf(
          store().put('audit', 'log/0000', new TextEncoder().encode('second'), { ifAbsent: true }),
        ),
      ).toBe('OBJECT_EXISTS');
      expect((await readAll(await store().open('audit', 'log/0000'))).toString()).toBe('first');
      // The lock as S3 reports it on the version (x-amz-object-lock-* headers).
      const head = await clients.s3.send(
        new HeadObjectCommand({ Bucket: buckets.audit, Key: 'log/0000', VersionId: info.versionId }),
      );
      expect(head.ObjectLockMode).toBe('COMPLIANCE');
      expect(head.ObjectLockRetainUntilDate?.getTime()).toBe(until.getTime());
    });

    it('refuses to delete the locked version (the endpoint enforces Object Lock)', async (ctx) => {
      const info = await store().put('audit', 'log/locked', new TextEncoder().encode('x'), {
        retainUntil: new Date(Date.now() + 86_400_000),
      });
      try {
        await clients.s3.send(
          new DeleteObjectCommand({ Bucket: buckets.audit, Key: 'log/locked', VersionId: info.versionId }),
        );
      } catch (e) {
        expect((e as Error).name).toMatch(/AccessDenied/);
        return;
      }
      note('skipped: this endpoint deleted a COMPLIANCE-locked version; it does not enforce Object Lock');
      ctx.skip();
    });

    it('lets exactly one of several concurrent create-only writers win', async () => {
      const results = await Promise.allSettled(
        Array.from({ length: 5 }, (_, i) =>
          store().put('audit', 'race/0', new TextEncoder().encode(`w${i}`), { ifAbsent: true }),
        ),
      );
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      for (const r of results)
        if (r.status === 'rejected') expect(isVeritrailError(r.reason, 'OBJECT_EXISTS')).toBe(true);
    });

    it('streams with a trailing SHA-256 checksum, reads back by version, heads and lists in order', async () => {
      const parts = Array.from({ length: 50 }, (_, i) => Buffer.from(`row-${i};`));
      const whole = Buffer.concat(parts);
      const v1 = await store().put('landing', 'd/b.csv', Readable.from(parts), { size: whole.length });
      await store().put('landing', 'd/b.csv', new TextEncoder().encode('newer'));
      await store().put('landing', 'd/a.csv', new TextEncoder().encode('a'));
      expect(await readAll(await store().open('landing', 'd/b.csv', { versionId: v1.versionId }))).toEqual(
        whole,
      );
      expect(await store().head('landing', 'd/b.csv')).toMatchObject({ size: 5 });
      expect(await store().head('landing', 'd/none')).toBeUndefined();
      expect(await codeOf(store().open('landing', 'd/none'))).toBe('OBJECT_NOT_FOUND');
      const keys: string[] = [];
      for await (const o of store().list('landing', 'd/')) keys.push(o.key);
      expect(keys).toEqual(['d/a.csv', 'd/b.csv']);
    });

    it('has bytes that do not match their checksum refused (DIGEST_MISMATCH)', async (ctx) => {
      // Probe with the raw client: does the endpoint check x-amz-checksum-sha256 at all?
      const wrong = createHash('sha256').update('not the body').digest('base64');
      try {
        await clients.s3.send(
          new PutObjectCommand({
            Bucket: buckets.artifacts,
            Key: 'probe',
            Body: Buffer.from('body'),
            ChecksumAlgorithm: 'SHA256',
            ChecksumSHA256: wrong,
          }),
        );
      } catch (e) {
        expect((e as Error).name).toMatch(/BadDigest|InvalidRequest|XAmzContentSHA256Mismatch/);
        return;
      }
      note(
        'skipped: this endpoint accepts a PutObject whose x-amz-checksum-sha256 does not match (moto does)',
      );
      ctx.skip();
    });
  });

  describe('KmsSigner', () => {
    let keyArn: string;
    let work: string;
    beforeAll(async () => {
      const out = await clients.kms.send(
        new CreateKeyCommand({ KeySpec: 'ECC_NIST_P256', KeyUsage: 'SIGN_VERIFY' }),
      );
      keyArn = out.KeyMetadata?.Arn ?? '';
      work = await mkdtemp(join(tmpdir(), 'vt-conf-kms-'));
    });
    afterAll(async () => {
      if (work) await rm(work, { recursive: true, force: true });
    });

    async function opensslVerifies(pem: string, message: Uint8Array, signature: Uint8Array): Promise<string> {
      const id = randomUUID();
      const [pub, msg, sig] = ['pem', 'msg', 'sig'].map((ext) => join(work, `${id}.${ext}`)) as [
        string,
        string,
        string,
      ];
      await writeFile(pub, pem);
      await writeFile(msg, message);
      await writeFile(sig, signature);
      return execFileSync('openssl', ['dgst', '-sha256', '-verify', pub, '-signature', sig, msg], {
        encoding: 'utf8',
      }).trim();
    }

    it('signs a RAW message and openssl verifies it with the exported PEM', async (ctx) => {
      if (!onPath('openssl')) {
        note('skipped: openssl is not on PATH');
        ctx.skip();
      }
      const signer = new KmsSigner(clients.kms, keyArn);
      const message = new TextEncoder().encode('DSSEv1 28 application/vnd.in-toto+json 2 {}');
      const signature = await signer.sign(message);
      expect(await opensslVerifies(await signer.publicKeyPem(), message, signature)).toBe('Verified OK');
    });

    it('signs a message over 4096 bytes (MessageType DIGEST) and openssl verifies it', async (ctx) => {
      const signer = new KmsSigner(clients.kms, keyArn);
      const message = new Uint8Array(KMS_RAW_MESSAGE_LIMIT + 100).fill(0x7a);
      let signature: Uint8Array;
      try {
        signature = await signer.sign(message);
      } catch (e) {
        if (isVeritrailError(e, 'SIGNATURE_INVALID') && !externalEndpoint) {
          note('skipped: moto signs MessageType DIGEST by hashing the digest again, unlike KMS');
          ctx.skip();
        }
        throw e;
      }
      expect(await opensslVerifies(await signer.publicKeyPem(), message, signature)).toBe('Verified OK');
    });
  });

  describe('DynamoRunStore', () => {
    const table = `vt-conf-runs-${suffix}`;
    const store = () => new DynamoRunStore(clients.dynamodb, table);
    beforeAll(async () => {
      await ensureRunTable(clients.dynamodb, table);
    }, 20_000);

    it('creates once, moves through legal transitions only, records steps and lists by pipeline', async () => {
      const now = new Date().toISOString();
      const run = {
        runId: `run-${suffix}`,
        pipeline: 'credit-scoring',
        pipelineDigest: `sha256:${'0'.repeat(64)}` as const,
        trigger: 'cli',
        idempotencyKey: `key-${suffix}`,
        dataset: { uri: `s3://${buckets.landing}/d/a.csv`, versionId: 'v1' },
        createdAt: now,
      };
      expect((await store().create(run)).status).toBe('PENDING');
      expect(await codeOf(store().create(run))).toBe('RUN_EXISTS');
      // The refusal itself carries the recorded run (ReturnValuesOnConditionCheckFailure): no read.
      const sent: string[] = [];
      const counting = {
        send: (command: { constructor: { name: string } }) => {
          sent.push(command.constructor.name);
          return clients.dynamodb.send(command as never);
        },
      } as unknown as typeof clients.dynamodb;
      const refusal = await new DynamoRunStore(counting, table).create(run).catch((e: unknown) => e);
      expect(refusal).toBeInstanceOf(RunExistsError);
      expect((refusal as RunExistsError).existing).toMatchObject({ runId: run.runId, status: 'PENDING' });
      expect(sent).toEqual(['PutItemCommand']);
      await store().transition(run.runId, 'RUNNING');
      await store().recordStep(
        run.runId,
        { name: 'HashDataset', status: 'SUCCEEDED', startedAt: now, endedAt: now },
        {
          rawDigest: `sha256:${'1'.repeat(64)}`,
        },
      );
      const done = await store().transition(run.runId, 'SUCCEEDED');
      expect(done.status).toBe('SUCCEEDED');
      expect(await codeOf(store().transition(run.runId, 'FAILED'))).toBe('RUN_TRANSITION_ILLEGAL');
      const got = await store().get(run.runId);
      expect(got?.steps.map((s) => s.name)).toEqual(['HashDataset']);
      expect(got?.facts).toMatchObject({ rawDigest: `sha256:${'1'.repeat(64)}` });
      expect((await store().list({ pipeline: 'credit-scoring' })).map((r) => r.runId)).toContain(run.runId);
    });
  });
});
