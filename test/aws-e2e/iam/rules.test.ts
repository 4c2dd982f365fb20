/**
 * The real-AWS authorization rules the proxy models, each with small policies: allowed, implicitly
 * denied, explicitly denied. Calls go through the proxy with real SDK clients; a fake upstream plays moto.
 */

import { DynamoDBClient, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { KMSClient, SignCommand } from '@aws-sdk/client-kms';
import { GetObjectCommand, HeadObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import {
  CreateTrainingJobCommand,
  type CreateTrainingJobCommandInput,
  SageMakerClient,
} from '@aws-sdk/client-sagemaker';
import { SendTaskSuccessCommand, SFNClient } from '@aws-sdk/client-sfn';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { arnPatternMatches } from './evaluate.js';
import { startIamProxy } from './proxy.js';
import { formatDenials } from './report.js';
import {
  ACCOUNT,
  allow,
  attempt,
  clientConfig,
  deny,
  doc,
  type FakeUpstream,
  fakeUpstream,
  principal,
  REGION,
  world,
} from './test-helpers.js';
import type { IamProxy, PolicyWorld, Principal } from './types.js';

let upstream: FakeUpstream;
let proxy: IamProxy;

beforeAll(async () => {
  upstream = await fakeUpstream();
  proxy = await startIamProxy({ upstream: upstream.url, world: world([]) });
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

const s3For = (p: Principal) =>
  new S3Client({ ...clientConfig(proxy.endpoint, p.accessKeyId), forcePathStyle: true });
const kmsFor = (p: Principal) => new KMSClient(clientConfig(proxy.endpoint, p.accessKeyId));
const decisions = () => proxy.calls.map((c) => `${c.action} ${c.decision}${c.implied ? ' implied' : ''}`);
const errorName = (e: unknown) => (e as { name?: string }).name;
const httpStatus = (e: unknown) =>
  (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;

const BUCKET = 'artifacts-bkt';
const objects = `arn:aws:s3:::${BUCKET}/*`;
const bucketArn = `arn:aws:s3:::${BUCKET}`;
const KEY = `arn:aws:kms:${REGION}:${ACCOUNT}:key/data-key`;
const root = { AWS: `arn:aws:iam::${ACCOUNT}:root` };

function use(w: PolicyWorld) {
  proxy.setWorld(w);
}

describe('S3 answers 403 instead of 404 for a missing key without s3:ListBucket', () => {
  const reader = principal('fn:reader', [allow('s3:GetObject', objects)]);
  const lister = principal('fn:lister', [allow('s3:GetObject', objects), allow('s3:ListBucket', bucketArn)]);
  const notFound = () => ({
    status: 404,
    headers: { 'content-type': 'application/xml' },
    body: '<Error><Code>NoSuchKey</Code></Error>',
  });

  it('answers HeadObject of a missing key with 403 and records the s3:ListBucket denial with s3:prefix', async () => {
    use(world([reader, lister]));
    upstream.answer = notFound;
    const e = await attempt(
      s3For(reader).send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'cas/sha256/ab' })),
    );
    expect(httpStatus(e)).toBe(403);
    expect(decisions()).toEqual(['s3:GetObject Allowed', 's3:ListBucket ImplicitlyDenied implied']);
    expect(proxy.calls[1]?.context['s3:prefix']).toBe('cas/sha256/ab');
  });

  it('answers GetObject of a missing key with 403 AccessDenied', async () => {
    use(world([reader]));
    upstream.answer = notFound;
    const e = await attempt(s3For(reader).send(new GetObjectCommand({ Bucket: BUCKET, Key: 'missing' })));
    expect(errorName(e)).toBe('AccessDenied');
  });

  it('passes the 404 through when the caller may list the bucket', async () => {
    use(world([lister]));
    upstream.answer = notFound;
    const e = await attempt(s3For(lister).send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'missing' })));
    expect(httpStatus(e)).toBe(404);
    expect(errorName(e)).toBe('NotFound');
    expect(proxy.denials()).toEqual([]);
  });

  it('keeps 404 NoSuchBucket for a missing bucket', async () => {
    use(world([reader]));
    upstream.answer = () => ({
      status: 404,
      headers: { 'content-type': 'application/xml' },
      body: '<Error><Code>NoSuchBucket</Code></Error>',
    });
    const e = await attempt(s3For(reader).send(new GetObjectCommand({ Bucket: BUCKET, Key: 'k' })));
    expect(errorName(e)).toBe('NoSuchBucket');
    expect(decisions()).toEqual(['s3:GetObject Allowed']);
  });

  it('does not ask for s3:ListBucket when the object exists', async () => {
    use(world([reader]));
    await s3For(reader).send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'there' }));
    expect(decisions()).toEqual(['s3:GetObject Allowed']);
  });
});

describe('S3 version, Object Lock and tagging actions', () => {
  it('needs s3:GetObjectVersion for GetObject with a VersionId', async () => {
    const p = principal('fn:plain', [allow('s3:GetObject', objects)]);
    use(world([p]));
    const e = await attempt(
      s3For(p).send(new GetObjectCommand({ Bucket: BUCKET, Key: 'k', VersionId: 'v1' })),
    );
    expect(errorName(e)).toBe('AccessDenied');
    expect(decisions()).toEqual(['s3:GetObjectVersion ImplicitlyDenied']);
    expect(upstream.seen).toHaveLength(0);
  });

  it('needs s3:PutObjectRetention for a PutObject with Object Lock headers', async () => {
    const put = {
      Bucket: BUCKET,
      Key: 'log',
      Body: 'x',
      ObjectLockMode: 'COMPLIANCE' as const,
      ObjectLockRetainUntilDate: new Date(Date.now() + 86_400_000),
    };
    const without = principal('fn:put', [allow('s3:PutObject', objects)]);
    const withRetention = principal('fn:put-retention', [
      allow(['s3:PutObject', 's3:PutObjectRetention'], objects),
    ]);
    use(world([without, withRetention]));
    expect(errorName(await attempt(s3For(without).send(new PutObjectCommand(put))))).toBe('AccessDenied');
    expect(decisions()).toEqual(['s3:PutObject Allowed', 's3:PutObjectRetention ImplicitlyDenied']);
    proxy.calls.length = 0;
    await s3For(withRetention).send(new PutObjectCommand(put));
    expect(decisions()).toEqual(['s3:PutObject Allowed', 's3:PutObjectRetention Allowed']);
  });

  it('needs s3:PutObjectTagging for a PutObject with tags', async () => {
    const p = principal('fn:put', [allow('s3:PutObject', objects)]);
    use(world([p]));
    await attempt(
      s3For(p).send(new PutObjectCommand({ Bucket: BUCKET, Key: 'k', Body: 'x', Tagging: 'a=b' })),
    );
    expect(decisions()).toEqual(['s3:PutObject Allowed', 's3:PutObjectTagging ImplicitlyDenied']);
  });
});

describe('same-account bucket policies', () => {
  const roleOnly = principal('fn:role-only', []);
  const grantedByBucket = (p: Principal) =>
    doc({ Effect: 'Allow', Principal: { AWS: p.roleArn }, Action: 's3:GetObject', Resource: objects });

  it('allows with an Allow in the bucket policy alone (naming the role; the caller is its session)', async () => {
    use(world([roleOnly], { bucketPolicies: { [BUCKET]: grantedByBucket(roleOnly) } }));
    await s3For(roleOnly).send(new GetObjectCommand({ Bucket: BUCKET, Key: 'k' }));
    expect(decisions()).toEqual(['s3:GetObject Allowed']);
  });

  it('denies with neither policy allowing', async () => {
    use(world([roleOnly]));
    expect(
      errorName(await attempt(s3For(roleOnly).send(new GetObjectCommand({ Bucket: BUCKET, Key: 'k' })))),
    ).toBe('AccessDenied');
  });

  it('evaluates aws:SecureTransport as true: a Deny on insecure transport does not apply', async () => {
    const p = principal('fn:reader', [allow('s3:GetObject', objects)]);
    const secure = doc({
      Effect: 'Deny',
      Principal: { AWS: '*' },
      Action: 's3:*',
      Resource: [bucketArn, objects],
      Condition: { Bool: { 'aws:SecureTransport': 'false' } },
    });
    use(world([p], { bucketPolicies: { [BUCKET]: secure } }));
    await s3For(p).send(new GetObjectCommand({ Bucket: BUCKET, Key: 'k' }));
    expect(decisions()).toEqual(['s3:GetObject Allowed']);
  });

  it('lets an explicit Deny in the identity policy win over a bucket-policy Allow', async () => {
    const p = principal('fn:denied', [deny('s3:GetObject', objects)]);
    use(world([p], { bucketPolicies: { [BUCKET]: grantedByBucket(p) } }));
    expect(errorName(await attempt(s3For(p).send(new GetObjectCommand({ Bucket: BUCKET, Key: 'k' }))))).toBe(
      'AccessDenied',
    );
    expect(proxy.calls[0]?.decision).toBe('ExplicitlyDenied');
    expect(proxy.calls[0]?.reason).toMatch(/explicit Deny in identity policy/);
  });

  it('lets an explicit Deny in the bucket policy win over an identity Allow, and names it', async () => {
    const p = principal('fn:reader', [allow('s3:GetObject', objects)]);
    const denyRole = doc({
      Sid: 'NoReaders',
      Effect: 'Deny',
      Principal: { AWS: '*' },
      Action: 's3:GetObject',
      Resource: objects,
      Condition: { ArnEquals: { 'aws:PrincipalArn': p.roleArn } },
    });
    use(world([p], { bucketPolicies: { [BUCKET]: denyRole } }));
    expect(errorName(await attempt(s3For(p).send(new GetObjectCommand({ Bucket: BUCKET, Key: 'k' }))))).toBe(
      'AccessDenied',
    );
    expect(proxy.calls[0]?.decision).toBe('ExplicitlyDenied');
    expect(proxy.calls[0]?.reason).toMatch(
      /explicit Deny in bucket policy of artifacts-bkt \(Sid NoReaders\)/,
    );
  });
});

describe('SSE-KMS through S3', () => {
  const viaS3 = {
    StringEquals: { 'kms:ViaService': `s3.${REGION}.amazonaws.com`, 'kms:CallerAccount': ACCOUNT },
  };
  const keyPolicy = doc({ Effect: 'Allow', Principal: root, Action: 'kms:*', Resource: '*' });

  it('implies kms:GenerateDataKey on the bucket default key for PutObject, by the same caller via S3', async () => {
    const writer = principal('fn:writer', [
      allow('s3:PutObject', objects),
      allow('kms:GenerateDataKey', KEY, viaS3),
    ]);
    use(world([writer], { bucketKmsKeys: { [BUCKET]: KEY }, keyPolicies: { [KEY]: keyPolicy } }));
    await s3For(writer).send(new PutObjectCommand({ Bucket: BUCKET, Key: 'k', Body: 'x' }));
    expect(decisions()).toEqual(['s3:PutObject Allowed', 'kms:GenerateDataKey Allowed implied']);
    expect(proxy.calls[1]?.context).toMatchObject({
      'kms:ViaService': `s3.${REGION}.amazonaws.com`,
      'kms:EncryptionContext:aws:s3:arn': `arn:aws:s3:::${BUCKET}/k`,
    });
  });

  it('denies a PutObject naming a KMS key the caller may not use, before moto sees it', async () => {
    const writer = principal('fn:writer', [allow('s3:PutObject', objects)]);
    use(world([writer], { keyPolicies: { [KEY]: keyPolicy }, keyIds: { 'alias/data': KEY } }));
    const e = await attempt(
      s3For(writer).send(
        new PutObjectCommand({
          Bucket: BUCKET,
          Key: 'k',
          Body: 'x',
          ServerSideEncryption: 'aws:kms',
          SSEKMSKeyId: 'alias/data',
        }),
      ),
    );
    expect(errorName(e)).toBe('AccessDenied');
    expect(decisions()).toEqual(['s3:PutObject Allowed', 'kms:GenerateDataKey ImplicitlyDenied implied']);
    expect(upstream.seen).toHaveLength(0);
  });

  it('implies kms:Decrypt for GetObject of an SSE-KMS object and answers 403 when denied', async () => {
    const reader = principal('fn:reader', [allow('s3:GetObject', objects)]);
    use(world([reader], { keyPolicies: { [KEY]: keyPolicy } }));
    upstream.answer = () => ({
      status: 200,
      headers: {
        'x-amz-server-side-encryption': 'aws:kms',
        'x-amz-server-side-encryption-aws-kms-key-id': KEY,
      },
      body: 'secret',
    });
    const e = await attempt(s3For(reader).send(new GetObjectCommand({ Bucket: BUCKET, Key: 'k' })));
    expect(errorName(e)).toBe('AccessDenied');
    expect(decisions()).toEqual(['s3:GetObject Allowed', 'kms:Decrypt ImplicitlyDenied implied']);
  });

  it('does not ask for kms:Decrypt on HeadObject (metadata only)', async () => {
    const reader = principal('fn:reader', [allow('s3:GetObject', objects)]);
    use(world([reader], { bucketKmsKeys: { [BUCKET]: KEY } }));
    upstream.answer = () => ({
      status: 200,
      headers: {
        'x-amz-server-side-encryption': 'aws:kms',
        'x-amz-server-side-encryption-aws-kms-key-id': KEY,
      },
    });
    await s3For(reader).send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'k' }));
    expect(decisions()).toEqual(['s3:GetObject Allowed']);
  });
});

describe('KMS: key policy and IAM', () => {
  const sign = (p: Principal) =>
    kmsFor(p).send(
      new SignCommand({
        KeyId: KEY,
        Message: new Uint8Array(32),
        MessageType: 'DIGEST',
        SigningAlgorithm: 'ECDSA_SHA_256',
      }),
    );
  const signer = principal('fn:sign', [allow(['kms:Sign', 'kms:GetPublicKey'], KEY)]);
  const other = principal('fn:other', []);

  it('denies an identity-policy grant when the key policy neither names the role nor delegates to the account', async () => {
    use(
      world([signer, other], {
        keyPolicies: {
          [KEY]: doc({ Effect: 'Allow', Principal: { AWS: other.roleArn }, Action: 'kms:*', Resource: '*' }),
        },
      }),
    );
    const e = await attempt(sign(signer));
    expect(errorName(e)).toBe('AccessDeniedException');
    expect(decisions()).toEqual(['kms:Sign ImplicitlyDenied']);
    expect(proxy.calls[0]?.reason).toMatch(/key policy/);
  });

  it('allows an identity-policy grant when the key policy delegates to the account root', async () => {
    use(
      world([signer], {
        keyPolicies: { [KEY]: doc({ Effect: 'Allow', Principal: root, Action: 'kms:*', Resource: '*' }) },
      }),
    );
    await sign(signer);
    expect(decisions()).toEqual(['kms:Sign Allowed']);
  });

  it('denies with root delegation but no identity grant', async () => {
    use(
      world([other], {
        keyPolicies: { [KEY]: doc({ Effect: 'Allow', Principal: root, Action: 'kms:*', Resource: '*' }) },
      }),
    );
    expect(errorName(await attempt(sign(other)))).toBe('AccessDeniedException');
  });

  it('allows a key policy naming the role ARN directly, with no identity grant (the caller is its session)', async () => {
    use(
      world([other], {
        keyPolicies: {
          [KEY]: doc({
            Effect: 'Allow',
            Principal: { AWS: other.roleArn },
            Action: 'kms:Sign',
            Resource: '*',
          }),
        },
      }),
    );
    await sign(other);
    expect(decisions()).toEqual(['kms:Sign Allowed']);
  });

  it('lets an explicit Deny in the key policy win', async () => {
    use(
      world([signer], {
        keyPolicies: {
          [KEY]: doc(
            { Effect: 'Allow', Principal: root, Action: 'kms:*', Resource: '*' },
            {
              Effect: 'Deny',
              Principal: { AWS: '*' },
              Action: 'kms:Sign',
              Resource: '*',
              Condition: { StringEquals: { 'kms:MessageType': 'DIGEST' } },
            },
          ),
        },
      }),
    );
    await attempt(sign(signer));
    expect(decisions()).toEqual(['kms:Sign ExplicitlyDenied']);
  });

  it('matches aws:PrincipalArn conditions against the role ARN of the session', async () => {
    const policy = doc({
      Effect: 'Allow',
      Principal: { AWS: '*' },
      Action: 'kms:Sign',
      Resource: '*',
      Condition: { ArnEquals: { 'aws:PrincipalArn': other.roleArn } },
    });
    use(world([other], { keyPolicies: { [KEY]: policy } }));
    await sign(other);
    expect(decisions()).toEqual(['kms:Sign Allowed']);
  });

  it('evaluates a key the world does not know with the default key policy (IAM decides)', async () => {
    use(world([signer]));
    await sign(signer);
    expect(decisions()).toEqual(['kms:Sign Allowed']);
  });
});

describe('SageMaker: condition keys, tag-on-create and PassRole', () => {
  const role = `arn:aws:iam::${ACCOUNT}:role/sagemaker-exec`;
  const jobs = `arn:aws:sagemaker:${REGION}:${ACCOUNT}:training-job/veritrail-*`;
  const job = (extra: Partial<CreateTrainingJobCommandInput> = {}): CreateTrainingJobCommandInput => ({
    TrainingJobName: 'veritrail-run-1',
    RoleArn: role,
    AlgorithmSpecification: { TrainingImage: 'img', TrainingInputMode: 'File' },
    OutputDataConfig: { S3OutputPath: 's3://b/o', KmsKeyId: KEY },
    ResourceConfig: {
      InstanceType: 'ml.m5.large',
      InstanceCount: 1,
      VolumeSizeInGB: 10,
      VolumeKmsKeyId: KEY,
    },
    StoppingCondition: { MaxRuntimeInSeconds: 3600 },
    EnableInterContainerTrafficEncryption: true,
    Tags: [{ Key: 'veritrail:run', Value: 'r1' }],
    ...extra,
  });
  const create = (p: Principal, input: CreateTrainingJobCommandInput) =>
    new SageMakerClient(clientConfig(proxy.endpoint, p.accessKeyId)).send(
      new CreateTrainingJobCommand(input),
    );
  const passRole = allow('iam:PassRole', role, {
    StringEquals: { 'iam:PassedToService': 'sagemaker.amazonaws.com' },
  });
  const encrypted = {
    Bool: { 'sagemaker:InterContainerTrafficEncryption': 'true' },
    ArnEquals: { 'sagemaker:VolumeKmsKeyArn': KEY, 'sagemaker:OutputKmsKeyArn': KEY },
  };
  const tagsOnCreate = allow('sagemaker:AddTags', jobs, {
    StringEquals: { 'sagemaker:TaggingAction': 'CreateTrainingJob' },
    'ForAllValues:StringLike': { 'aws:TagKeys': ['veritrail:*'] },
  });

  it('allows a create whose request matches the conditions, with AddTags on create and PassRole', async () => {
    const p = principal('fn:train', [
      allow('sagemaker:CreateTrainingJob', jobs, encrypted),
      tagsOnCreate,
      passRole,
    ]);
    use(world([p]));
    await attempt(create(p, job()));
    expect(decisions()).toEqual([
      'sagemaker:CreateTrainingJob Allowed',
      'sagemaker:AddTags Allowed implied',
      'iam:PassRole Allowed implied',
    ]);
  });

  it('denies AddTags granted in the same statement as CreateTrainingJob under create-only condition keys', async () => {
    // AddTags has no sagemaker:InterContainerTrafficEncryption key, so the Bool condition cannot match for it.
    const p = principal('fn:train', [
      allow(['sagemaker:CreateTrainingJob', 'sagemaker:AddTags'], jobs, encrypted),
      passRole,
    ]);
    use(world([p]));
    const e = await attempt(create(p, job()));
    expect(errorName(e)).toBe('AccessDeniedException');
    expect(decisions()).toEqual([
      'sagemaker:CreateTrainingJob Allowed',
      'sagemaker:AddTags ImplicitlyDenied implied',
      'iam:PassRole Allowed implied',
    ]);
  });

  it('fails ArnEquals on a key the request does not carry (no VolumeKmsKeyId)', async () => {
    const p = principal('fn:train', [
      allow('sagemaker:CreateTrainingJob', jobs, encrypted),
      tagsOnCreate,
      passRole,
    ]);
    use(world([p]));
    const input = job();
    input.ResourceConfig = { InstanceType: 'ml.g5.xlarge', InstanceCount: 1, VolumeSizeInGB: 10 };
    await attempt(create(p, input));
    expect(proxy.calls[0]?.context).not.toHaveProperty('sagemaker:VolumeKmsKeyArn');
    expect(decisions()[0]).toBe('sagemaker:CreateTrainingJob ImplicitlyDenied');
  });

  it('denies PassRole without a grant, and with one for another service', async () => {
    const noPass = principal('fn:nopass', [allow('sagemaker:CreateTrainingJob', jobs), tagsOnCreate]);
    const wrongService = principal('fn:wrong', [
      allow('sagemaker:CreateTrainingJob', jobs),
      tagsOnCreate,
      allow('iam:PassRole', role, { StringEquals: { 'iam:PassedToService': 'lambda.amazonaws.com' } }),
    ]);
    use(world([noPass, wrongService]));
    await attempt(create(noPass, job()));
    await attempt(create(wrongService, job()));
    expect(proxy.calls.filter((c) => c.action === 'iam:PassRole').map((c) => c.decision)).toEqual([
      'ImplicitlyDenied',
      'ImplicitlyDenied',
    ]);
  });
});

describe('Step Functions task-token calls', () => {
  const sm = `arn:aws:states:${REGION}:${ACCOUNT}:stateMachine:pipeline`;
  const send = (endpoint: string, p: Principal) =>
    new SFNClient(clientConfig(endpoint, p.accessKeyId)).send(
      new SendTaskSuccessCommand({ taskToken: 'token-1', output: '{}' }),
    );
  const onMachine = principal('fn:callback', [
    allow(['states:SendTaskSuccess', 'states:SendTaskFailure'], sm),
  ]);
  const onAll = principal('fn:callback-all', [allow('states:SendTaskSuccess', '*')]);

  it('allows a grant on "*" and, without knowing the token\'s state machine, nothing narrower', async () => {
    use(world([onMachine, onAll]));
    await send(proxy.endpoint, onAll);
    expect(errorName(await attempt(send(proxy.endpoint, onMachine)))).toBe('AccessDeniedException');
    expect(decisions()).toEqual([
      'states:SendTaskSuccess Allowed',
      'states:SendTaskSuccess ImplicitlyDenied',
    ]);
  });

  it('allows a grant on the state machine the token belongs to, and not on another one', async () => {
    const other = principal('fn:other-machine', [allow('states:SendTaskSuccess', `${sm}-other`)]);
    const scoped = await startIamProxy({
      upstream: upstream.url,
      world: world([onMachine, other]),
      stateMachineOfTaskToken: (t) => (t === 'token-1' ? sm : undefined),
    });
    try {
      await send(scoped.endpoint, onMachine);
      expect(errorName(await attempt(send(scoped.endpoint, other)))).toBe('AccessDeniedException');
      expect(scoped.calls.map((c) => [c.resource, c.decision])).toEqual([
        [sm, 'Allowed'],
        [sm, 'ImplicitlyDenied'],
      ]);
    } finally {
      await scoped.close();
    }
  });

  it('matches ARN patterns with * and ? only', () => {
    expect(arnPatternMatches('arn:aws:states:*:*:stateMachine:pipe?ine', sm)).toBe(true);
    expect(arnPatternMatches('arn:aws:states:eu-west-1:123456789012:stateMachine:pipeline.x', sm)).toBe(
      false,
    );
    expect(arnPatternMatches('arn:aws:states:eu-west-1:123456789012:stateMachine:Pipeline', sm)).toBe(false);
  });
});

describe('recording and answering', () => {
  it('records a denial but forwards the call when enforce is false', async () => {
    const quiet = await startIamProxy({
      upstream: upstream.url,
      world: world([principal('fn:none', [])]),
      enforce: false,
    });
    try {
      const ddb = new DynamoDBClient(clientConfig(quiet.endpoint, principal('fn:none', []).accessKeyId));
      await attempt(ddb.send(new PutItemCommand({ TableName: 'runs', Item: { pk: { S: 'a' } } })));
      expect(quiet.denials().map((c) => c.action)).toEqual(['dynamodb:PutItem']);
      expect(upstream.seen).toHaveLength(1);
    } finally {
      await quiet.close();
    }
  });

  it('answers a denied JSON call with AccessDeniedException naming the session, action and resource', async () => {
    const p = principal('fn:none', []);
    use(world([p]));
    const e = await attempt(
      new DynamoDBClient(clientConfig(proxy.endpoint, p.accessKeyId)).send(
        new PutItemCommand({ TableName: 'runs', Item: { pk: { S: 'a' } } }),
      ),
    );
    expect(errorName(e)).toBe('AccessDeniedException');
    expect((e as Error).message).toContain(
      `User: arn:aws:sts::${ACCOUNT}:assumed-role/fn-none-role/fn-none is not authorized to perform: dynamodb:PutItem on resource: arn:aws:dynamodb:${REGION}:${ACCOUNT}:table/runs`,
    );
  });

  it('denies a caller whose key no principal owns, and forwards admin keys unrecorded', async () => {
    const admin = await startIamProxy({
      upstream: upstream.url,
      world: world([]),
      adminAccessKeyIds: ['AKIDADMIN'],
    });
    try {
      await new DynamoDBClient(clientConfig(admin.endpoint, 'AKIDADMIN')).send(
        new PutItemCommand({ TableName: 'runs', Item: { pk: { S: 'a' } } }),
      );
      expect(admin.calls).toEqual([]);
      const e = await attempt(
        new DynamoDBClient(clientConfig(admin.endpoint, 'AKIDSTRANGER')).send(
          new PutItemCommand({ TableName: 'runs', Item: { pk: { S: 'a' } } }),
        ),
      );
      expect(errorName(e)).toBe('AccessDeniedException');
      expect(admin.denials()[0]?.principal).toBe('unknown:AKIDSTRANGER');
    } finally {
      await admin.close();
    }
  });

  it('runs hooks only for allowed calls, before moto', async () => {
    const p = principal('fn:ddb', [allow('dynamodb:PutItem', '*')]);
    const none = principal('fn:none', []);
    use(world([p, none]));
    const seenByHook: string[] = [];
    proxy.addHook((req) => {
      seenByHook.push(`${req.principal} ${req.operation}`);
      return { status: 200, headers: { 'content-type': 'application/x-amz-json-1.0' }, body: '{}' };
    });
    await new DynamoDBClient(clientConfig(proxy.endpoint, p.accessKeyId)).send(
      new PutItemCommand({ TableName: 'runs', Item: { pk: { S: 'a' } } }),
    );
    await attempt(
      new DynamoDBClient(clientConfig(proxy.endpoint, none.accessKeyId)).send(
        new PutItemCommand({ TableName: 'runs', Item: { pk: { S: 'a' } } }),
      ),
    );
    expect(seenByHook).toEqual(['fn:ddb PutItem']);
    expect(upstream.seen).toHaveLength(0);
  });
});

describe('formatDenials', () => {
  it('prints one line per denied decision with principal, operation, action, resource and reason', () => {
    const text = formatDenials([
      {
        principal: 'fn:a',
        service: 's3',
        operation: 'HeadObject',
        action: 's3:GetObject',
        resource: 'arn:aws:s3:::b/k',
        context: {},
        decision: 'Allowed',
        implied: false,
      },
      {
        principal: 'fn:a',
        service: 's3',
        operation: 'HeadObject',
        action: 's3:ListBucket',
        resource: 'arn:aws:s3:::b',
        context: {},
        decision: 'ImplicitlyDenied',
        implied: true,
        reason: 'no Allow in identity policy',
      },
    ]);
    expect(text).toBe(
      '1 denied call:\nfn:a  s3:HeadObject  denied s3:ListBucket on arn:aws:s3:::b (implied): no Allow in identity policy',
    );
    expect(formatDenials([])).toBe('no denied calls');
  });
});
