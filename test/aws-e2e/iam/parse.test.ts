/**
 * The proxy names the operation, action, resource and context of real AWS SDK v3 requests (clients
 * with fake credentials pointed at the proxy, a fake upstream behind it), and forwards them unchanged.
 */
import { request as httpRequest } from 'node:http';
import {
  DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  TransactWriteItemsCommand,
} from '@aws-sdk/client-dynamodb';
import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { GetPublicKeyCommand, KMSClient, SignCommand } from '@aws-sdk/client-kms';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  ListObjectVersionsCommand,
  PutObjectCommand,
  PutObjectRetentionCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import {
  CreateModelPackageCommand,
  CreateTrainingJobCommand,
  DescribeTrainingJobCommand,
  SageMakerClient,
} from '@aws-sdk/client-sagemaker';
import { SendTaskSuccessCommand, SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { GetParametersByPathCommand, SSMClient } from '@aws-sdk/client-ssm';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { credentialScope, decodeAwsChunked, parseRequest } from './parse.js';
import { startIamProxy } from './proxy.js';
import {
  ACCOUNT,
  allow,
  attempt,
  clientConfig,
  type FakeUpstream,
  fakeUpstream,
  loopbackAgent,
  principal,
  REGION,
  world,
} from './test-helpers.js';
import type { IamProxy } from './types.js';

const caller = principal('fn:everything', [allow('*', '*')]);
let upstream: FakeUpstream;
let proxy: IamProxy;

beforeAll(async () => {
  upstream = await fakeUpstream();
  proxy = await startIamProxy({ upstream: upstream.url, world: world([caller]) });
});
afterAll(async () => {
  await proxy.close();
  await upstream.close();
});
afterEach(() => {
  proxy.calls.length = 0;
  upstream.seen.length = 0;
  upstream.answer = () => ({ status: 200, body: '{}' });
});

const cfg = () => clientConfig(proxy.endpoint, caller.accessKeyId);
const last = () => proxy.calls.map(({ operation, action, resource }) => ({ operation, action, resource }));

describe('S3 requests', () => {
  for (const forcePathStyle of [true, false]) {
    describe(forcePathStyle ? 'path-style' : 'virtual-hosted-style', () => {
      const s3 = () =>
        new S3Client({
          ...cfg(),
          // Virtual-hosted style needs a host name: bucket.localhost resolves to the proxy.
          ...(forcePathStyle
            ? {}
            : {
                endpoint: proxy.endpoint.replace('127.0.0.1', 'localhost'),
                requestHandler: { httpAgent: loopbackAgent() },
              }),
          forcePathStyle,
        });

      it('names GetObject, GetObject with a version, HeadObject, PutObject, DeleteObject', async () => {
        const client = s3();
        await attempt(client.send(new GetObjectCommand({ Bucket: 'data-bkt', Key: 'runs/a b/c.json' })));
        await attempt(client.send(new GetObjectCommand({ Bucket: 'data-bkt', Key: 'k', VersionId: 'v1' })));
        await attempt(client.send(new HeadObjectCommand({ Bucket: 'data-bkt', Key: 'k' })));
        await attempt(client.send(new PutObjectCommand({ Bucket: 'data-bkt', Key: 'k', Body: 'hello' })));
        await attempt(
          client.send(new DeleteObjectCommand({ Bucket: 'data-bkt', Key: 'k', VersionId: 'v2' })),
        );
        expect(last()).toEqual([
          {
            operation: 'GetObject',
            action: 's3:GetObject',
            resource: 'arn:aws:s3:::data-bkt/runs/a b/c.json',
          },
          { operation: 'GetObject', action: 's3:GetObjectVersion', resource: 'arn:aws:s3:::data-bkt/k' },
          { operation: 'HeadObject', action: 's3:GetObject', resource: 'arn:aws:s3:::data-bkt/k' },
          { operation: 'PutObject', action: 's3:PutObject', resource: 'arn:aws:s3:::data-bkt/k' },
          {
            operation: 'DeleteObject',
            action: 's3:DeleteObjectVersion',
            resource: 'arn:aws:s3:::data-bkt/k',
          },
        ]);
        if (!forcePathStyle) expect(upstream.seen[0]?.headers.host).toMatch(/^data-bkt\.localhost:/);
      });

      it('names ListObjectsV2 with its s3:prefix and ListObjectVersions', async () => {
        const client = s3();
        await attempt(client.send(new ListObjectsV2Command({ Bucket: 'data-bkt', Prefix: 'runs/' })));
        await attempt(client.send(new ListObjectVersionsCommand({ Bucket: 'data-bkt', Prefix: 'raw/' })));
        expect(last()).toEqual([
          { operation: 'ListObjectsV2', action: 's3:ListBucket', resource: 'arn:aws:s3:::data-bkt' },
          {
            operation: 'ListObjectVersions',
            action: 's3:ListBucketVersions',
            resource: 'arn:aws:s3:::data-bkt',
          },
        ]);
        expect(proxy.calls[0]?.context['s3:prefix']).toBe('runs/');
        expect(proxy.calls[1]?.context['s3:prefix']).toBe('raw/');
      });

      it('names PutObjectRetention with its mode and date from the XML body', async () => {
        const until = new Date(Date.now() + 3 * 86_400_000);
        await attempt(
          s3().send(
            new PutObjectRetentionCommand({
              Bucket: 'audit-bkt',
              Key: 'k',
              Retention: { Mode: 'COMPLIANCE', RetainUntilDate: until },
            }),
          ),
        );
        expect(last()).toEqual([
          {
            operation: 'PutObjectRetention',
            action: 's3:PutObjectRetention',
            resource: 'arn:aws:s3:::audit-bkt/k',
          },
        ]);
        expect(proxy.calls[0]?.context['s3:object-lock-mode']).toBe('COMPLIANCE');
        expect(proxy.calls[0]?.context['s3:object-lock-remaining-retention-days']).toBe('3');
      });
    });
  }

  it('adds s3:PutObjectRetention and s3:PutObjectTagging for a PutObject with Object Lock and tagging headers', async () => {
    const s3 = new S3Client({ ...cfg(), forcePathStyle: true });
    await attempt(
      s3.send(
        new PutObjectCommand({
          Bucket: 'audit-bkt',
          Key: 'log/1',
          Body: 'x',
          ObjectLockMode: 'COMPLIANCE',
          ObjectLockRetainUntilDate: new Date(Date.now() + 86_400_000),
          Tagging: 'pipeline=credit&stage=audit',
        }),
      ),
    );
    expect(proxy.calls.map((c) => c.action)).toEqual([
      's3:PutObject',
      's3:PutObjectTagging',
      's3:PutObjectRetention',
    ]);
    expect(proxy.calls[0]?.context['s3:object-lock-mode']).toBe('COMPLIANCE');
    expect(proxy.calls[1]?.context['s3:RequestObjectTag/pipeline']).toBe('credit');
    expect(proxy.calls[1]?.context['s3:RequestObjectTagKeys']).toEqual(['pipeline', 'stage']);
  });

  it('forwards a streamed (aws-chunked) PutObject body byte for byte', async () => {
    const s3 = new S3Client({ ...cfg(), forcePathStyle: true });
    const { Readable } = await import('node:stream');
    const payload = Buffer.from('a'.repeat(70_000));
    await attempt(
      s3.send(
        new PutObjectCommand({
          Bucket: 'b',
          Key: 'big',
          Body: Readable.from([payload]),
          ContentLength: payload.length,
        }),
      ),
    );
    const seen = upstream.seen[0];
    expect(seen?.headers['content-encoding']).toContain('aws-chunked');
    expect(decodeAwsChunked(seen?.body ?? Buffer.alloc(0)).equals(payload)).toBe(true);
  });
});

describe('JSON-protocol requests', () => {
  it('names DynamoDB PutItem, GetItem, Query on an index, TransactWriteItems per item', async () => {
    const ddb = new DynamoDBClient(cfg());
    await attempt(ddb.send(new PutItemCommand({ TableName: 'runs', Item: { pk: { S: 'a' } } })));
    await attempt(ddb.send(new GetItemCommand({ TableName: 'runs', Key: { pk: { S: 'a' } } })));
    await attempt(
      ddb.send(
        new QueryCommand({
          TableName: 'runs',
          IndexName: 'byStatus',
          KeyConditionExpression: 's = :s',
          ExpressionAttributeValues: { ':s': { S: 'x' } },
        }),
      ),
    );
    await attempt(
      ddb.send(
        new TransactWriteItemsCommand({
          TransactItems: [
            {
              ConditionCheck: {
                TableName: 'runs',
                Key: { pk: { S: 'a' } },
                ConditionExpression: 'attribute_exists(pk)',
              },
            },
            { Put: { TableName: 'log', Item: { pk: { S: 'b' } } } },
          ],
        }),
      ),
    );
    const table = (t: string) => `arn:aws:dynamodb:${REGION}:${ACCOUNT}:table/${t}`;
    expect(last()).toEqual([
      { operation: 'PutItem', action: 'dynamodb:PutItem', resource: table('runs') },
      { operation: 'GetItem', action: 'dynamodb:GetItem', resource: table('runs') },
      { operation: 'Query', action: 'dynamodb:Query', resource: `${table('runs')}/index/byStatus` },
      { operation: 'TransactWriteItems', action: 'dynamodb:ConditionCheckItem', resource: table('runs') },
      { operation: 'TransactWriteItems', action: 'dynamodb:PutItem', resource: table('log') },
    ]);
  });

  it('names KMS Sign and GetPublicKey on the key ARN an alias resolves to, with the signing context', async () => {
    const keyArn = `arn:aws:kms:${REGION}:${ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab`;
    proxy.setWorld(world([caller], { keyIds: { 'alias/veritrail-sign': keyArn } }));
    try {
      const kms = new KMSClient(cfg());
      await attempt(
        kms.send(
          new SignCommand({
            KeyId: 'alias/veritrail-sign',
            Message: new Uint8Array(32),
            MessageType: 'DIGEST',
            SigningAlgorithm: 'ECDSA_SHA_256',
          }),
        ),
      );
      await attempt(kms.send(new GetPublicKeyCommand({ KeyId: keyArn })));
    } finally {
      proxy.setWorld(world([caller]));
    }
    expect(last()).toEqual([
      { operation: 'Sign', action: 'kms:Sign', resource: keyArn },
      { operation: 'GetPublicKey', action: 'kms:GetPublicKey', resource: keyArn },
    ]);
    expect(proxy.calls[0]?.context).toMatchObject({
      'kms:MessageType': 'DIGEST',
      'kms:SigningAlgorithm': 'ECDSA_SHA_256',
      'kms:RequestAlias': 'alias/veritrail-sign',
      'kms:CallerAccount': ACCOUNT,
    });
  });

  it('names Step Functions StartExecution on the state machine and SendTaskSuccess on "*"', async () => {
    const sfn = new SFNClient(cfg());
    const sm = `arn:aws:states:${REGION}:${ACCOUNT}:stateMachine:pipeline`;
    await attempt(sfn.send(new StartExecutionCommand({ stateMachineArn: sm, input: '{}' })));
    await attempt(sfn.send(new SendTaskSuccessCommand({ taskToken: 't', output: '{}' })));
    expect(last()).toEqual([
      { operation: 'StartExecution', action: 'states:StartExecution', resource: sm },
      { operation: 'SendTaskSuccess', action: 'states:SendTaskSuccess', resource: '*' },
    ]);
  });

  it('names EventBridge PutEvents on the default bus with events:source and events:detail-type', async () => {
    const eb = new EventBridgeClient(cfg());
    await attempt(
      eb.send(
        new PutEventsCommand({
          Entries: [{ Source: 'veritrail', DetailType: 'OpenLineage RunEvent', Detail: '{}' }],
        }),
      ),
    );
    expect(last()).toEqual([
      {
        operation: 'PutEvents',
        action: 'events:PutEvents',
        resource: `arn:aws:events:${REGION}:${ACCOUNT}:event-bus/default`,
      },
    ]);
    expect(proxy.calls[0]?.context).toEqual({
      'events:source': 'veritrail',
      'events:detail-type': 'OpenLineage RunEvent',
    });
  });

  it('names SageMaker CreateTrainingJob with its condition keys, AddTags on create and PassRole', async () => {
    const sm = new SageMakerClient(cfg());
    const key = `arn:aws:kms:${REGION}:${ACCOUNT}:key/data`;
    const role = `arn:aws:iam::${ACCOUNT}:role/sagemaker-exec`;
    await attempt(
      sm.send(
        new CreateTrainingJobCommand({
          TrainingJobName: 'Veritrail-Run-1',
          RoleArn: role,
          AlgorithmSpecification: { TrainingImage: 'img', TrainingInputMode: 'File' },
          OutputDataConfig: { S3OutputPath: 's3://b/o', KmsKeyId: key },
          ResourceConfig: { InstanceType: 'ml.m5.large', InstanceCount: 1, VolumeSizeInGB: 10 },
          StoppingCondition: { MaxRuntimeInSeconds: 3600 },
          EnableInterContainerTrafficEncryption: true,
          Tags: [{ Key: 'veritrail:run', Value: 'r1' }],
        }),
      ),
    );
    await attempt(sm.send(new DescribeTrainingJobCommand({ TrainingJobName: 'Veritrail-Run-1' })));
    const job = `arn:aws:sagemaker:${REGION}:${ACCOUNT}:training-job/veritrail-run-1`;
    expect(last()).toEqual([
      { operation: 'CreateTrainingJob', action: 'sagemaker:CreateTrainingJob', resource: job },
      { operation: 'CreateTrainingJob', action: 'sagemaker:AddTags', resource: job },
      { operation: 'CreateTrainingJob', action: 'iam:PassRole', resource: role },
      { operation: 'DescribeTrainingJob', action: 'sagemaker:DescribeTrainingJob', resource: job },
    ]);
    const create = proxy.calls[0]?.context ?? {};
    expect(create).toMatchObject({
      'sagemaker:OutputKmsKeyArn': key,
      'sagemaker:InstanceTypes': ['ml.m5.large'],
      'sagemaker:InterContainerTrafficEncryption': 'true',
      'sagemaker:MaxRuntimeInSeconds': '3600',
      'aws:TagKeys': ['veritrail:run'],
      'aws:RequestTag/veritrail:run': 'r1',
    });
    // Absent from the request, absent from the context.
    expect(create).not.toHaveProperty('sagemaker:VolumeKmsKeyArn');
    expect(create).not.toHaveProperty('sagemaker:NetworkIsolation');
    expect(proxy.calls[1]?.implied).toBe(true);
    expect(proxy.calls[2]?.context).toMatchObject({ 'iam:PassedToService': 'sagemaker.amazonaws.com' });
  });

  it('names model package versions per group and Lambda Invoke', async () => {
    const sm = new SageMakerClient(cfg());
    await attempt(
      sm.send(
        new CreateModelPackageCommand({ ModelPackageGroupName: 'Credit', ModelApprovalStatus: 'Approved' }),
      ),
    );
    await attempt(sm.send(new CreateModelPackageCommand({ ModelPackageGroupName: 'credit' })));
    await attempt(
      new LambdaClient(cfg()).send(
        new InvokeCommand({ FunctionName: 'veritrail-start', Payload: Buffer.from('{}') }),
      ),
    );
    const pkg = (n: number) => `arn:aws:sagemaker:${REGION}:${ACCOUNT}:model-package/credit/${n}`;
    expect(last()).toEqual([
      { operation: 'CreateModelPackage', action: 'sagemaker:CreateModelPackage', resource: pkg(1) },
      { operation: 'CreateModelPackage', action: 'sagemaker:CreateModelPackage', resource: pkg(2) },
      {
        operation: 'Invoke',
        action: 'lambda:InvokeFunction',
        resource: `arn:aws:lambda:${REGION}:${ACCOUNT}:function:veritrail-start`,
      },
    ]);
    expect(proxy.calls[0]?.context).toEqual({ 'sagemaker:ModelApprovalStatus': 'Approved' });
  });

  it('names SSM GetParametersByPath on the path parameter ARN', async () => {
    const ssm = new SSMClient(cfg());
    await attempt(ssm.send(new GetParametersByPathCommand({ Path: '/veritrail/prod/', Recursive: true })));
    expect(last()).toEqual([
      {
        operation: 'GetParametersByPath',
        action: 'ssm:GetParametersByPath',
        resource: `arn:aws:ssm:${REGION}:${ACCOUNT}:parameter/veritrail/prod/`,
      },
    ]);
  });
});

describe('the wire', () => {
  it('reads the caller from a presigned URL', () => {
    const q = { 'X-Amz-Credential': 'AKIDX/20260101/eu-west-1/s3/aws4_request' };
    expect(credentialScope({}, q)).toEqual({
      accessKeyId: 'AKIDX',
      region: 'eu-west-1',
      service: 's3',
      authType: 'REST-QUERY-STRING',
    });
    const parsed = parseRequest(
      'GET',
      `/b/k?X-Amz-Credential=${encodeURIComponent(q['X-Amz-Credential'])}`,
      { host: '127.0.0.1:1' },
      Buffer.alloc(0),
    );
    expect(parsed).toMatchObject({
      service: 's3',
      operation: 'GetObject',
      bucket: 'b',
      key: 'k',
      accessKeyId: 'AKIDX',
      authType: 'REST-QUERY-STRING',
    });
  });

  it('forwards path, query, header names, order and duplicates, and body unchanged', async () => {
    const body = Buffer.from([0, 1, 2, 255, 13, 10, 65]);
    const rawHeaders = [
      'Host',
      'example',
      'X-Amz-Target',
      'DynamoDB_20120810.ListTables',
      'Authorization',
      `AWS4-HMAC-SHA256 Credential=${caller.accessKeyId}/20260101/${REGION}/dynamodb/aws4_request, SignedHeaders=host, Signature=00`,
      'x-custom',
      'one',
      'X-Custom',
      'two',
      'Content-Length',
      String(body.length),
    ];
    const path = '/odd%2Fpath?b=2&a=1&flag';
    let answer = '';
    await new Promise<void>((resolve, reject) => {
      const url = new URL(proxy.endpoint);
      const req = httpRequest(
        { hostname: url.hostname, port: url.port, method: 'POST', path, headers: rawHeaders, setHost: false },
        (res) => {
          const parts: Buffer[] = [];
          res.on('data', (c: Buffer) => parts.push(c));
          res.on('end', () => {
            answer = `${res.statusCode} ${Buffer.concat(parts).toString()}`;
            resolve();
          });
        },
      );
      req.on('error', reject);
      req.end(body);
    });
    expect(answer).toBe('200 {}');
    const seen = upstream.seen[0];
    expect(seen?.url).toBe(path);
    // Node adds the hop-by-hop Connection header of its own connection to moto; nothing else changes.
    expect(seen?.rawHeaders.slice(0, rawHeaders.length)).toEqual(rawHeaders);
    expect(seen?.rawHeaders.slice(rawHeaders.length, rawHeaders.length + 1)).toEqual(['Connection']);
    expect(seen?.body.equals(body)).toBe(true);
  });

  it('does not misname a subresource it does not know (?cors, ?website) as a list or a read', () => {
    const auth = {
      authorization: `AWS4-HMAC-SHA256 Credential=${caller.accessKeyId}/20260101/${REGION}/s3/aws4_request`,
    };
    expect(parseRequest('GET', '/b?cors', auth, Buffer.alloc(0)).operation).toBe('UnknownBucketGET?cors');
    expect(parseRequest('PUT', '/b?website', auth, Buffer.alloc(0)).operation).toBe(
      'UnknownBucketPUT?website',
    );
    expect(parseRequest('GET', '/b/k?torrent', auth, Buffer.alloc(0)).operation).toBe(
      'UnknownObjectGET?torrent',
    );
    expect(
      parseRequest('GET', '/b/k?x-id=GetObject&response-content-type=a', auth, Buffer.alloc(0)).operation,
    ).toBe('GetObject');
    expect(
      parseRequest('GET', '/b?list-type=2&prefix=a&continuation-token=t', auth, Buffer.alloc(0)).operation,
    ).toBe('ListObjectsV2');
  });

  it('denies and reports an operation it does not model instead of letting it through', async () => {
    const parsed = parseRequest(
      'PATCH',
      '/b/k',
      {
        authorization: `AWS4-HMAC-SHA256 Credential=${caller.accessKeyId}/20260101/${REGION}/s3/aws4_request`,
      },
      Buffer.alloc(0),
    );
    expect(parsed.operation).toBe('UnknownPATCH');
    const res = await fetch(`${proxy.endpoint}/b/k`, {
      method: 'PATCH',
      headers: {
        authorization: `AWS4-HMAC-SHA256 Credential=${caller.accessKeyId}/20260101/${REGION}/s3/aws4_request, Signature=0`,
      },
    });
    expect(res.status).toBe(403);
    expect(proxy.denials()[0]?.reason).toMatch(/does not model s3 UnknownPATCH/);
    expect(upstream.seen).toHaveLength(0);
  });
});
