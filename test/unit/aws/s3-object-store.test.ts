import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import {
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  NoSuchKey,
  NotFound,
  PutObjectCommand,
  type PutObjectCommandInput,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { sdkStreamMixin } from '@smithy/util-stream';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { S3ObjectStore } from '../../../src/aws/s3-object-store.js';
import { awsError, bytes, codeOf, errorOf, readAll } from './helpers.js';

const s3Mock = mockClient(S3Client);
const BUCKETS = { landing: 'acme-landing', artifacts: 'acme-artifacts', audit: 'acme-audit' } as const;
const KEY_ARN = 'arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab';

function store(kmsKeyId?: string) {
  return new S3ObjectStore(new S3Client({ region: 'eu-west-1' }), {
    buckets: BUCKETS,
    ...(kmsKeyId ? { kmsKeyId } : {}),
  });
}

function s3Exception(name: string, status: number): S3ServiceException {
  return new S3ServiceException({
    name,
    $fault: status >= 500 ? 'server' : 'client',
    $metadata: { httpStatusCode: status },
    message: name,
  });
}

function putInputs(): PutObjectCommandInput[] {
  return s3Mock.commandCalls(PutObjectCommand).map((c) => c.args[0].input);
}

beforeEach(() => s3Mock.reset());
afterEach(() => s3Mock.reset());

describe('S3ObjectStore.put', () => {
  describe('when putting bytes to the audit bucket with ifAbsent and retainUntil', () => {
    it('sends exactly a create-only, COMPLIANCE-locked, SHA-256-checked, SSE-KMS PutObject', async () => {
      s3Mock.on(PutObjectCommand).resolves({ VersionId: 'v1' });
      const until = new Date('2033-11-26T00:00:00.000Z');
      const body = bytes('{"seq":0}');
      const info = await store(KEY_ARN).put('audit', 'log/entries/0000000000', body, {
        ifAbsent: true,
        retainUntil: until,
        contentType: 'application/json',
      });
      expect(info).toEqual({ bucket: 'audit', key: 'log/entries/0000000000', size: 9, versionId: 'v1' });
      expect(putInputs()).toEqual([
        {
          Bucket: 'acme-audit',
          Key: 'log/entries/0000000000',
          Body: body,
          ContentLength: 9,
          ContentType: 'application/json',
          ChecksumAlgorithm: 'SHA256',
          // sha256('{"seq":0}') in base64, as S3 expects it in x-amz-checksum-sha256.
          ChecksumSHA256: createHash('sha256').update('{"seq":0}').digest('base64'),
          IfNoneMatch: '*',
          ObjectLockMode: 'COMPLIANCE',
          ObjectLockRetainUntilDate: until,
          ServerSideEncryption: 'aws:kms',
          SSEKMSKeyId: KEY_ARN,
        },
      ]);
    });

    it('computes the checksum of the published SHA-256 test vector "abc"', async () => {
      s3Mock.on(PutObjectCommand).resolves({});
      await store().put('artifacts', 'k', bytes('abc'));
      // FIPS 180-2 example: sha256("abc") = ba7816bf 8f01cfea 414140de 5dae2223 b00361a3 96177a9c b410ff61 f20015ad
      const hex = 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad';
      expect(putInputs()[0]?.ChecksumSHA256).toBe(Buffer.from(hex, 'hex').toString('base64'));
    });
  });

  describe('when putting a plain object', () => {
    it('sets no condition, no lock and no encryption override', async () => {
      s3Mock.on(PutObjectCommand).resolves({});
      await store().put('artifacts', 'sha256/abc', bytes('x'));
      const input = putInputs()[0];
      expect(input).toBeDefined();
      expect(input).not.toHaveProperty('IfNoneMatch');
      expect(input).not.toHaveProperty('ObjectLockMode');
      expect(input).not.toHaveProperty('ObjectLockRetainUntilDate');
      expect(input).not.toHaveProperty('ServerSideEncryption');
      expect(input).not.toHaveProperty('BypassGovernanceRetention');
    });

    it('makes a retained put create-only even without ifAbsent', async () => {
      s3Mock.on(PutObjectCommand).resolves({});
      await store().put('audit', 'k', bytes('x'), { retainUntil: new Date('2030-01-01T00:00:00Z') });
      expect(putInputs()[0]).toMatchObject({ IfNoneMatch: '*', ObjectLockMode: 'COMPLIANCE' });
    });
  });

  describe('when the key already exists and the put is create-only', () => {
    it('fails with OBJECT_EXISTS and keeps the SDK error as cause', async () => {
      const sdkError = s3Exception('PreconditionFailed', 412);
      s3Mock.on(PutObjectCommand).rejects(sdkError);
      const e = await errorOf(store().put('audit', 'seq/0', bytes('x'), { ifAbsent: true }));
      expect(e).toMatchObject({ code: 'OBJECT_EXISTS', name: 'VeritrailError' });
      expect((e as Error).cause).toBe(sdkError);
    });
  });

  describe('when S3 rejects the bytes against the checksum', () => {
    it('fails with DIGEST_MISMATCH', async () => {
      s3Mock.on(PutObjectCommand).rejects(s3Exception('BadDigest', 400));
      expect(await codeOf(store().put('artifacts', 'k', bytes('x')))).toBe('DIGEST_MISMATCH');
    });
  });

  describe('when the bucket lacks Object Lock', () => {
    it('fails with a message that says to check the bucket', async () => {
      s3Mock.on(PutObjectCommand).rejects(s3Exception('InvalidRequest', 400));
      const e = await errorOf(store().put('audit', 'k', bytes('x'), { retainUntil: new Date() }));
      expect(e).toMatchObject({ code: 'INTERNAL' });
      expect((e as Error).message).toMatch(/Object Lock/);
    });
  });

  describe('when access is denied', () => {
    it('names the action and the resource', async () => {
      s3Mock.on(PutObjectCommand).rejects(s3Exception('AccessDenied', 403));
      const e = await errorOf(store().put('audit', 'log/1', bytes('x')));
      expect(e).toMatchObject({
        code: 'ACCESS_DENIED',
        details: { action: 's3:PutObject', resource: 's3://acme-audit/log/1', awsError: 'AccessDenied' },
      });
      expect((e as Error).message).toContain('s3:PutObject');
      expect((e as Error).message).toContain('s3://acme-audit/log/1');
    });
  });

  describe('when S3 is throttling or failing', () => {
    for (const [name, status] of [
      ['SlowDown', 503],
      ['InternalError', 500],
      ['ConditionalRequestConflict', 409],
    ] as const) {
      it(`maps ${name} to TRANSIENT`, async () => {
        s3Mock.on(PutObjectCommand).rejects(s3Exception(name, status));
        expect(await codeOf(store().put('audit', 'k', bytes('x'), { ifAbsent: true }))).toBe('TRANSIENT');
      });
    }
  });

  describe('when putting a stream', () => {
    it('requires its size', async () => {
      expect(await codeOf(store().put('landing', 'big.bin', Readable.from([Buffer.from('x')])))).toBe(
        'USAGE',
      );
      expect(s3Mock.calls()).toHaveLength(0);
    });

    it('sends the length and lets the SDK add the trailing SHA-256, then checks what S3 stored', async () => {
      const parts = ['chunk-1;', 'chunk-2;', 'chunk-3'];
      const whole = parts.join('');
      const checksum = createHash('sha256').update(whole).digest('base64');
      let received = '';
      s3Mock.on(PutObjectCommand).callsFake(async (input: PutObjectCommandInput) => {
        received = (await readAll(input.Body as Readable)).toString();
        return { VersionId: 'v9', ChecksumSHA256: checksum };
      });
      const info = await store().put('landing', 'big.bin', Readable.from(parts.map((p) => Buffer.from(p))), {
        size: whole.length,
      });
      expect(received).toBe(whole);
      expect(info).toEqual({ bucket: 'landing', key: 'big.bin', size: whole.length, versionId: 'v9' });
      expect(putInputs()[0]).toMatchObject({ ContentLength: whole.length, ChecksumAlgorithm: 'SHA256' });
      expect(putInputs()[0]).not.toHaveProperty('ChecksumSHA256');
    });

    it('fails with DIGEST_MISMATCH when S3 reports a different checksum', async () => {
      s3Mock.on(PutObjectCommand).callsFake(async (input: PutObjectCommandInput) => {
        await readAll(input.Body as Readable);
        return { ChecksumSHA256: createHash('sha256').update('other').digest('base64') };
      });
      expect(
        await codeOf(store().put('landing', 'k', Readable.from([Buffer.from('abc')]), { size: 3 })),
      ).toBe('DIGEST_MISMATCH');
    });

    it('fails with DIGEST_MISMATCH when the stream is not the declared size', async () => {
      s3Mock.on(PutObjectCommand).callsFake(async (input: PutObjectCommandInput) => {
        await readAll(input.Body as Readable);
        return {};
      });
      expect(
        await codeOf(store().put('landing', 'k', Readable.from([Buffer.from('abcd')]), { size: 3 })),
      ).toBe('DIGEST_MISMATCH');
    });

    it("rethrows the source stream's own error", async () => {
      s3Mock.on(PutObjectCommand).callsFake(async (input: PutObjectCommandInput) => {
        await readAll(input.Body as Readable);
        return {};
      });
      const failing = new Readable({
        read() {
          this.push(Buffer.from('partial'));
          this.destroy(new Error('network down'));
        },
      });
      await expect(store().put('landing', 'k', failing, { size: 100 })).rejects.toThrow('network down');
    });
  });
});

describe('S3ObjectStore.open', () => {
  it('pins the VersionId, asks S3 to validate its checksum, and streams the body', async () => {
    s3Mock.on(GetObjectCommand).resolves({ Body: sdkStreamMixin(Readable.from([Buffer.from('hello')])) });
    const r = await store().open('landing', 'data/train.csv', { versionId: '3HL4kqtJlcpXroDTDmJ' });
    expect(r).toBeInstanceOf(Readable);
    expect((await readAll(r)).toString()).toBe('hello');
    expect(s3Mock.commandCalls(GetObjectCommand)[0]?.args[0].input).toEqual({
      Bucket: 'acme-landing',
      Key: 'data/train.csv',
      VersionId: '3HL4kqtJlcpXroDTDmJ',
      ChecksumMode: 'ENABLED',
    });
  });

  it('reads from a byte offset with a Range and no whole-object checksum', async () => {
    s3Mock.on(GetObjectCommand).resolves({ Body: sdkStreamMixin(Readable.from([Buffer.from('lo')])) });
    const r = await store().open('artifacts', 'sha256/abc', { start: 3 });
    expect((await readAll(r)).toString()).toBe('lo');
    expect(s3Mock.commandCalls(GetObjectCommand)[0]?.args[0].input).toEqual({
      Bucket: 'acme-artifacts',
      Key: 'sha256/abc',
      Range: 'bytes=3-',
    });
  });

  it('reads nothing when the offset is at or past the end (416 InvalidRange)', async () => {
    s3Mock.on(GetObjectCommand).rejects(s3Exception('InvalidRange', 416));
    expect(await readAll(await store().open('artifacts', 'sha256/abc', { start: 5 }))).toHaveLength(0);
    // Without an offset a 416 is no range of ours: it is reported.
    expect(await codeOf(store().open('artifacts', 'sha256/abc'))).not.toBeUndefined();
  });

  it('fails with OBJECT_NOT_FOUND on NoSuchKey and NoSuchVersion', async () => {
    s3Mock
      .on(GetObjectCommand)
      .rejects(new NoSuchKey({ message: 'The specified key does not exist.', $metadata: {} }));
    expect(await codeOf(store().open('audit', 'nope'))).toBe('OBJECT_NOT_FOUND');
    s3Mock.on(GetObjectCommand).rejects(s3Exception('NoSuchVersion', 404));
    expect(await codeOf(store().open('audit', 'k', { versionId: 'gone' }))).toBe('OBJECT_NOT_FOUND');
  });
});

describe('S3ObjectStore.head', () => {
  it('returns size and version', async () => {
    s3Mock
      .on(HeadObjectCommand, { Bucket: 'acme-artifacts', Key: 'k' })
      .resolves({ ContentLength: 42, VersionId: 'v' });
    expect(await store().head('artifacts', 'k')).toEqual({
      bucket: 'artifacts',
      key: 'k',
      size: 42,
      versionId: 'v',
    });
  });

  it('returns undefined on the bare 404 of a HEAD', async () => {
    s3Mock
      .on(HeadObjectCommand)
      .rejects(new NotFound({ message: 'Not Found', $metadata: { httpStatusCode: 404 } }));
    expect(await store().head('artifacts', 'missing')).toBeUndefined();
  });

  it('translates other errors', async () => {
    s3Mock.on(HeadObjectCommand).rejects(awsError('AccessDenied', 403));
    expect(await codeOf(store().head('artifacts', 'k'))).toBe('ACCESS_DENIED');
  });
});

describe('S3ObjectStore.list', () => {
  it('follows continuation tokens and yields keys in the order S3 returns (UTF-8 binary)', async () => {
    s3Mock
      .on(ListObjectsV2Command, { Bucket: 'acme-audit', Prefix: 'a/' })
      .resolves({
        Contents: [
          { Key: 'a/b/a', Size: 1 },
          { Key: 'a/b/z', Size: 2 },
        ],
        IsTruncated: true,
        NextContinuationToken: 't1',
      })
      .on(ListObjectsV2Command, { Bucket: 'acme-audit', Prefix: 'a/', ContinuationToken: 't1' })
      .resolves({ Contents: [{ Key: 'a/c', Size: 3 }], IsTruncated: false });
    const out = [];
    for await (const o of store().list('audit', 'a/')) out.push(o);
    expect(out).toEqual([
      { bucket: 'audit', key: 'a/b/a', size: 1 },
      { bucket: 'audit', key: 'a/b/z', size: 2 },
      { bucket: 'audit', key: 'a/c', size: 3 },
    ]);
  });

  it('translates a listing failure', async () => {
    s3Mock.on(ListObjectsV2Command).rejects(s3Exception('NoSuchBucket', 404));
    const iterate = async () => {
      for await (const _ of store().list('audit', '')) {
        // drain
      }
    };
    expect(await codeOf(iterate())).toBe('INTERNAL');
  });
});

describe('when a key tries a path trick', () => {
  for (const bad of ['../x', 'a/../../x', '/etc/passwd', 'a//b', 'a/', '', 'a\0b', 'a/./b', '.', 'a\\b']) {
    it(`rejects ${JSON.stringify(bad)} with PATH_REJECTED before any request`, async () => {
      expect(await codeOf(store().put('artifacts', bad, bytes('x')))).toBe('PATH_REJECTED');
      expect(await codeOf(store().open('artifacts', bad))).toBe('PATH_REJECTED');
      expect(await codeOf(store().head('artifacts', bad))).toBe('PATH_REJECTED');
      expect(s3Mock.calls()).toHaveLength(0);
    });
  }
  it('rejects an unknown bucket', async () => {
    expect(await codeOf(store().put('secrets' as 'audit', 'k', bytes('x')))).toBe('PATH_REJECTED');
  });
});

describe('what the adapter can never do', () => {
  it('imports no command that deletes, changes retention or lock configuration, or bypasses governance', async () => {
    const source = await readFile(new URL('../../../src/aws/s3-object-store.ts', import.meta.url), 'utf8');
    const imported = /import\s*\{([^}]*)\}\s*from\s*'@aws-sdk\/client-s3'/.exec(source)?.[1] ?? '';
    const names = imported
      .split(',')
      .map((s) => s.replace(/\btype\b/, '').trim())
      .filter(Boolean);
    expect(names.sort()).toEqual([
      'GetObjectCommand',
      'GetObjectCommandOutput',
      'HeadObjectCommand',
      'PutObjectCommand',
      'PutObjectCommandInput',
      'PutObjectCommandOutput',
      'S3Client',
      'paginateListObjectsV2',
    ]);
    expect(source).not.toMatch(/BypassGovernanceRetention\s*:/);
  });

  it('sends only Put, Get, Head and List commands across every operation', async () => {
    s3Mock.on(PutObjectCommand).resolves({});
    s3Mock.on(GetObjectCommand).resolves({ Body: sdkStreamMixin(Readable.from([Buffer.from('x')])) });
    s3Mock.on(HeadObjectCommand).resolves({ ContentLength: 1 });
    s3Mock.on(ListObjectsV2Command).resolves({ Contents: [] });
    const st = store(KEY_ARN);
    await st.put('audit', 'k', bytes('x'), { ifAbsent: true, retainUntil: new Date('2031-01-01T00:00:00Z') });
    await readAll(await st.open('audit', 'k'));
    await st.head('audit', 'k');
    for await (const _ of st.list('audit', '')) {
      // drain
    }
    const sent = s3Mock.calls().map((c) => (c.args[0] as object).constructor.name);
    expect(new Set(sent)).toEqual(
      new Set(['PutObjectCommand', 'GetObjectCommand', 'HeadObjectCommand', 'ListObjectsV2Command']),
    );
    for (const c of s3Mock.calls()) {
      expect((c.args[0] as { input: object }).input).not.toHaveProperty('BypassGovernanceRetention');
    }
  });
});
