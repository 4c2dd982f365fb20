import { Readable } from 'node:stream';
import {
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectVersionsCommand,
  NotFound,
  S3Client,
} from '@aws-sdk/client-s3';
import { sdkStreamMixin } from '@smithy/util-stream';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { ObjectAuditLog } from '../../../src/audit/log.js';
import { createAwsClients } from '../../../src/aws/clients.js';
import { actorFrom, createAwsRuntime, REQUIRED_ENV, readAwsConfig } from '../../../src/aws/runtime.js';
import { parseS3Uri, S3DatasetSource } from '../../../src/aws/s3-dataset-source.js';
import { auditOrigin } from '../../../src/core/deployment.js';
import { awsError, codeOf, errorOf, readAll } from './helpers.js';

const ENV: Record<string, string> = {
  VERITRAIL_TABLE: 'veritrail-dev-runs',
  VERITRAIL_LANDING_BUCKET: 'acme-landing',
  VERITRAIL_ARTIFACTS_BUCKET: 'acme-artifacts',
  VERITRAIL_AUDIT_BUCKET: 'acme-audit',
  VERITRAIL_DATA_KEY_ARN: 'arn:aws:kms:eu-west-1:111122223333:key/data',
  VERITRAIL_SIGNING_KEY_ARN: 'arn:aws:kms:eu-west-1:111122223333:key/sign',
  VERITRAIL_CHECKPOINT_KEY_ARN: 'arn:aws:kms:eu-west-1:111122223333:key/checkpoint',
  VERITRAIL_SAGEMAKER_ROLE_ARN: 'arn:aws:iam::111122223333:role/sm',
  VERITRAIL_STATE_MACHINE_ARN: 'arn:aws:states:eu-west-1:111122223333:stateMachine:veritrail',
};

describe('readAwsConfig', () => {
  it('reads every variable and defaults the audit retention to 2557 days', () => {
    const c = readAwsConfig(ENV);
    expect(c.buckets).toEqual({ landing: 'acme-landing', artifacts: 'acme-artifacts', audit: 'acme-audit' });
    expect(c.auditRetentionDays).toBe(2557);
    expect(readAwsConfig({ ...ENV, VERITRAIL_AUDIT_RETENTION_DAYS: '30' }).auditRetentionDays).toBe(30);
  });

  for (const name of REQUIRED_ENV) {
    it(`names ${name} when it is missing`, async () => {
      const env: Record<string, string | undefined> = { ...ENV, [name]: undefined };
      const e = await errorOf(Promise.resolve().then(() => readAwsConfig(env)));
      expect(e).toMatchObject({ code: 'USAGE', details: { missing: [name] } });
      expect((e as Error).message).toContain(name);
    });
  }

  it('refuses a retention that is not a whole number of days, and an ARN that is not one', () => {
    expect(() => readAwsConfig({ ...ENV, VERITRAIL_AUDIT_RETENTION_DAYS: '7y' })).toThrow(
      /VERITRAIL_AUDIT_RETENTION_DAYS/,
    );
    expect(() => readAwsConfig({ ...ENV, VERITRAIL_SIGNING_KEY_ARN: 'alias/sign' })).toThrow(
      /VERITRAIL_SIGNING_KEY_ARN/,
    );
  });
});

describe('actorFrom', () => {
  it('builds the Lambda function ARN on Lambda and says "aws" elsewhere', () => {
    const c = readAwsConfig(ENV);
    expect(actorFrom({ AWS_LAMBDA_FUNCTION_NAME: 'veritrail-dev-train', AWS_REGION: 'eu-west-1' }, c)).toBe(
      'arn:aws:lambda:eu-west-1:111122223333:function:veritrail-dev-train',
    );
    expect(actorFrom({}, c)).toBe('aws');
  });
});

describe('createAwsRuntime', () => {
  it('wires every port over injected clients, in aws mode', async () => {
    const clients = createAwsClients({});
    const rt = await createAwsRuntime(
      { ...ENV, AWS_LAMBDA_FUNCTION_NAME: 'fn', AWS_REGION: 'eu-west-1' },
      { clients },
    );
    expect(rt.mode).toBe('aws');
    expect(rt.signer.keyId).toBe(ENV.VERITRAIL_SIGNING_KEY_ARN);
    expect(rt.checkpointSigner.keyId).toBe(ENV.VERITRAIL_CHECKPOINT_KEY_ARN);
    expect(rt.actor).toBe('arn:aws:lambda:eu-west-1:111122223333:function:fn');
    expect(rt.clients).toBe(clients);
    expect(rt.audit).toBeInstanceOf(ObjectAuditLog);
    expect(auditOrigin(rt.config)).toBe('veritrail.aws/acme-audit');
    for (const c of Object.values(clients)) c.destroy();
  });

  it('fails before building anything when configuration is missing', async () => {
    expect(await codeOf(createAwsRuntime({}))).toBe('USAGE');
  });
});

const s3Mock = mockClient(S3Client);
const source = () => new S3DatasetSource(new S3Client({ region: 'eu-west-1' }));

describe('S3DatasetSource', () => {
  beforeEach(() => s3Mock.reset());

  it('parses s3 URIs with a version', () => {
    expect(parseS3Uri('s3://acme-landing/credit/2026/train.csv?versionId=abc')).toEqual({
      bucket: 'acme-landing',
      key: 'credit/2026/train.csv',
      versionId: 'abc',
    });
    expect(() => parseS3Uri('https://acme/x')).toThrow(/S3 URI/);
  });

  it('pins a single object by the VersionId its HEAD reports', async () => {
    s3Mock
      .on(HeadObjectCommand, { Bucket: 'acme-landing', Key: 'credit/train.csv' })
      .resolves({ ContentLength: 10, VersionId: 'v7' });
    expect(await source().list('s3://acme-landing/credit/train.csv')).toEqual([
      { uri: 's3://acme-landing/credit/train.csv', path: 'train.csv', size: 10, versionId: 'v7' },
    ]);
  });

  it('lists a prefix with every current version pinned, sorted by path, skipping old versions and folder markers', async () => {
    s3Mock
      .on(ListObjectVersionsCommand, { Bucket: 'acme-landing', Prefix: 'credit/' })
      .resolves({
        Versions: [
          { Key: 'credit/', Size: 0, VersionId: 'f', IsLatest: true },
          { Key: 'credit/b.csv', Size: 2, VersionId: 'b2', IsLatest: true },
          { Key: 'credit/b.csv', Size: 1, VersionId: 'b1', IsLatest: false },
        ],
        IsTruncated: true,
        NextKeyMarker: 'credit/b.csv',
        NextVersionIdMarker: 'b1',
      })
      .on(ListObjectVersionsCommand, {
        Bucket: 'acme-landing',
        Prefix: 'credit/',
        KeyMarker: 'credit/b.csv',
        VersionIdMarker: 'b1',
      })
      .resolves({
        Versions: [{ Key: 'credit/a/x.csv', Size: 3, VersionId: 'x1', IsLatest: true }],
        IsTruncated: false,
      });
    expect(await source().list('s3://acme-landing/credit/')).toEqual([
      { uri: 's3://acme-landing/credit/a/x.csv', path: 'a/x.csv', size: 3, versionId: 'x1' },
      { uri: 's3://acme-landing/credit/b.csv', path: 'b.csv', size: 2, versionId: 'b2' },
    ]);
  });

  it('reports an empty prefix as DATASET_EMPTY and a missing version as DATASET_MISSING', async () => {
    s3Mock.on(ListObjectVersionsCommand).resolves({ Versions: [] });
    expect(await codeOf(source().list('s3://acme-landing/nothing/'))).toBe('DATASET_EMPTY');
    s3Mock.on(HeadObjectCommand).rejects(new NotFound({ message: 'nf', $metadata: { httpStatusCode: 404 } }));
    expect(await codeOf(source().list('s3://acme-landing/k.csv?versionId=gone'))).toBe('DATASET_MISSING');
  });

  it('refuses keys that are path tricks', async () => {
    s3Mock.on(ListObjectVersionsCommand).resolves({
      Versions: [{ Key: 'credit/../etc/passwd', Size: 1, VersionId: 'v', IsLatest: true }],
    });
    expect(await codeOf(source().list('s3://acme-landing/credit/'))).toBe('PATH_REJECTED');
  });

  it('opens exactly the pinned version', async () => {
    s3Mock
      .on(GetObjectCommand)
      .resolves({ Body: sdkStreamMixin(Readable.from([Buffer.from('a,b\n1,2\n')])) });
    const r = await source().open({
      uri: 's3://acme-landing/credit/b.csv',
      path: 'b.csv',
      size: 8,
      versionId: 'b2',
    });
    expect((await readAll(r)).toString()).toBe('a,b\n1,2\n');
    expect(s3Mock.commandCalls(GetObjectCommand)[0]?.args[0].input).toEqual({
      Bucket: 'acme-landing',
      Key: 'credit/b.csv',
      VersionId: 'b2',
      ChecksumMode: 'ENABLED',
    });
  });

  it('reports a vanished version as DATASET_MISSING and access problems with the action', async () => {
    s3Mock.on(GetObjectCommand).rejects(awsError('NoSuchVersion', 404));
    expect(await codeOf(source().open({ uri: 's3://b/k', path: 'k', size: 1, versionId: 'v' }))).toBe(
      'DATASET_MISSING',
    );
    s3Mock.on(GetObjectCommand).rejects(awsError('AccessDenied', 403));
    const e = await errorOf(source().open({ uri: 's3://b/k', path: 'k', size: 1, versionId: 'v' }));
    expect((e as Error).message).toContain('s3:GetObject');
  });
});
