/**
 * Creates on moto_server what the templates create, in the order CloudFormation would (KMS keys
 * first: their ids come from the emulator and everything else refers to them), each resource with
 * its properties resolved (resolve.ts): KMS keys with their spec, usage and key policy, and aliases;
 * S3 buckets with versioning, Object Lock and its default retention, default SSE-KMS and the bucket
 * policy; the DynamoDB table with its keys, GSIs and SSE; SSM parameters; SQS queues. IAM roles,
 * Lambda functions, the state machine, rules and log groups are not created on moto: the harness
 * plays them (lambda-host.ts, state-machine.ts, events.ts), and the IAM replay proxy evaluates the
 * roles' policies. Every resource comes back as a ResolvedResource.
 */
import { CreateTableCommand, type CreateTableCommandInput, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  CreateAliasCommand,
  CreateKeyCommand,
  type KeySpec,
  type KeyUsageType,
  KMSClient,
} from '@aws-sdk/client-kms';
import {
  CreateBucketCommand,
  PutBucketEncryptionCommand,
  PutBucketPolicyCommand,
  PutBucketVersioningCommand,
  PutObjectLockConfigurationCommand,
  S3Client,
  type ServerSideEncryptionRule,
} from '@aws-sdk/client-s3';
import { PutParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { type ResolvedResource, Resolver } from './resolve.js';
import type { SynthesizedApp } from './templates.js';

export interface AdminClients {
  kms: KMSClient;
  s3: S3Client;
  dynamodb: DynamoDBClient;
  ssm: SSMClient;
  /** No SQS client is installed: CreateQueue goes to moto's JSON protocol with fetch. */
  sqs: (target: string, input: Record<string, unknown>) => Promise<Record<string, unknown>>;
}

export function adminClients(endpoint: string, region: string): AdminClients {
  const config = {
    endpoint,
    region,
    credentials: { accessKeyId: 'AKIAADMINISTRATOR000', secretAccessKey: 'admin-secret' },
    forcePathStyle: true,
  };
  return {
    kms: new KMSClient(config),
    s3: new S3Client(config),
    dynamodb: new DynamoDBClient(config),
    ssm: new SSMClient(config),
    sqs: async (target, input) => {
      const res = await fetch(endpoint, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-amz-json-1.0',
          'x-amz-target': `AmazonSQS.${target}`,
          authorization: `AWS4-HMAC-SHA256 Credential=${config.credentials.accessKeyId}/20260101/${region}/sqs/aws4_request, SignedHeaders=host, Signature=0`,
        },
        body: JSON.stringify(input),
      });
      const text = await res.text();
      if (!res.ok) throw new Error(`moto SQS ${target}: ${res.status} ${text}`);
      return JSON.parse(text) as Record<string, unknown>;
    },
  };
}

type Props = Record<string, unknown>;

export async function provision(
  app: SynthesizedApp,
  clients: AdminClients,
  options: { putBucketPolicies?: boolean } = {},
): Promise<{ resolver: Resolver; resources: ResolvedResource[] }> {
  const resolver = new Resolver(app);
  const resources: ResolvedResource[] = [];
  const each = (type: string) =>
    [...app.stacks].flatMap(([stack, t]) =>
      Object.entries(t.Resources)
        .filter(([id, r]) => r.Type === type && resolver.exists(stack, id))
        .map(([id, r]) => ({ stack, id, raw: r.Properties ?? {} })),
    );
  const record = (stack: string, logicalId: string, type: string, props: Props) => {
    const p = resolver.physicalOf(stack, logicalId);
    resources.push({
      stack,
      logicalId,
      type,
      physicalId: p.ref,
      ...(p.attrs.Arn ? { arn: p.attrs.Arn } : {}),
      properties: props,
    });
  };

  // 1. KMS keys, then aliases.
  for (const { stack, id, raw } of each('AWS::KMS::Key')) {
    const props = resolver.resolve(stack, raw) as Props;
    const created = await clients.kms.send(
      new CreateKeyCommand({
        ...(props.Description ? { Description: String(props.Description) } : {}),
        KeySpec: (props.KeySpec as KeySpec | undefined) ?? 'SYMMETRIC_DEFAULT',
        KeyUsage: (props.KeyUsage as KeyUsageType | undefined) ?? 'ENCRYPT_DECRYPT',
        Policy: JSON.stringify(props.KeyPolicy),
        Tags: ((props.Tags as { Key: string; Value: string }[] | undefined) ?? []).map((t) => ({
          TagKey: t.Key,
          TagValue: t.Value,
        })),
      }),
    );
    const meta = created.KeyMetadata;
    if (!meta?.KeyId || !meta.Arn) throw new Error(`moto CreateKey for ${stack}/${id} returned no key id`);
    resolver.setPhysical(stack, id, { ref: meta.KeyId, attrs: { Arn: meta.Arn, KeyId: meta.KeyId } });
    record(stack, id, 'AWS::KMS::Key', props);
  }
  for (const { stack, id, raw } of each('AWS::KMS::Alias')) {
    const props = resolver.resolve(stack, raw) as Props;
    await clients.kms.send(
      new CreateAliasCommand({ AliasName: String(props.AliasName), TargetKeyId: String(props.TargetKeyId) }),
    );
    resolver.setPhysical(stack, id, { ref: String(props.AliasName), attrs: {} });
    record(stack, id, 'AWS::KMS::Alias', props);
  }

  // 2. Buckets (with Object Lock at creation, as CloudFormation does), then bucket policies.
  for (const { stack, id, raw } of each('AWS::S3::Bucket')) {
    const props = resolver.resolve(stack, raw) as Props;
    const Bucket = resolver.physicalOf(stack, id).ref;
    await clients.s3.send(
      new CreateBucketCommand({
        Bucket,
        ...(app.region === 'us-east-1'
          ? {}
          : { CreateBucketConfiguration: { LocationConstraint: app.region as never } }),
        ...(props.ObjectLockEnabled ? { ObjectLockEnabledForBucket: true } : {}),
      }),
    );
    const versioning = (props.VersioningConfiguration as { Status?: string } | undefined)?.Status;
    if (versioning)
      await clients.s3.send(
        new PutBucketVersioningCommand({
          Bucket,
          VersioningConfiguration: { Status: versioning as 'Enabled' },
        }),
      );
    const lock = props.ObjectLockConfiguration as Props | undefined;
    if (lock)
      await clients.s3.send(
        new PutObjectLockConfigurationCommand({ Bucket, ObjectLockConfiguration: lock as never }),
      );
    // CloudFormation's ServerSideEncryptionByDefault is the API's ApplyServerSideEncryptionByDefault.
    const enc = (
      props.BucketEncryption as
        | {
            ServerSideEncryptionConfiguration?: {
              ServerSideEncryptionByDefault?: unknown;
              BucketKeyEnabled?: boolean;
            }[];
          }
        | undefined
    )?.ServerSideEncryptionConfiguration;
    if (enc) {
      const Rules = enc.map(
        (r): ServerSideEncryptionRule => ({
          ApplyServerSideEncryptionByDefault: r.ServerSideEncryptionByDefault as never,
          ...(r.BucketKeyEnabled !== undefined ? { BucketKeyEnabled: r.BucketKeyEnabled } : {}),
        }),
      );
      await clients.s3.send(
        new PutBucketEncryptionCommand({ Bucket, ServerSideEncryptionConfiguration: { Rules } }),
      );
    }
    record(stack, id, 'AWS::S3::Bucket', props);
  }
  for (const { stack, id, raw } of each('AWS::S3::BucketPolicy')) {
    const props = resolver.resolve(stack, raw) as Props;
    // Recorded for the IAM proxy, which evaluates it (with aws:SecureTransport true, as the SDK
    // talks HTTPS to S3). Not put on moto: moto 5 applies bucket policies itself and would deny every
    // call on its plain-HTTP endpoint under the templates' "deny unless SecureTransport" statement.
    if (options.putBucketPolicies)
      await clients.s3.send(
        new PutBucketPolicyCommand({
          Bucket: String(props.Bucket),
          Policy: JSON.stringify(props.PolicyDocument),
        }),
      );
    record(stack, id, 'AWS::S3::BucketPolicy', props);
  }

  // 3. Tables.
  for (const { stack, id, raw } of each('AWS::DynamoDB::Table')) {
    const props = resolver.resolve(stack, raw) as Props;
    const sse = props.SSESpecification as
      | { SSEEnabled?: boolean; SSEType?: string; KMSMasterKeyId?: string }
      | undefined;
    const input: CreateTableCommandInput = {
      TableName: resolver.physicalOf(stack, id).ref,
      AttributeDefinitions: props.AttributeDefinitions as never,
      KeySchema: props.KeySchema as never,
      BillingMode: (props.BillingMode as 'PAY_PER_REQUEST' | undefined) ?? 'PROVISIONED',
      ...(props.GlobalSecondaryIndexes
        ? { GlobalSecondaryIndexes: props.GlobalSecondaryIndexes as never }
        : {}),
      ...(props.ProvisionedThroughput ? { ProvisionedThroughput: props.ProvisionedThroughput as never } : {}),
      ...(sse?.SSEEnabled
        ? {
            SSESpecification: {
              Enabled: true,
              SSEType: (sse.SSEType ?? 'KMS') as 'KMS',
              ...(sse.KMSMasterKeyId ? { KMSMasterKeyId: sse.KMSMasterKeyId } : {}),
            },
          }
        : {}),
    };
    await clients.dynamodb.send(new CreateTableCommand(input));
    record(stack, id, 'AWS::DynamoDB::Table', props);
  }

  // 4. Parameters and queues.
  for (const { stack, id, raw } of each('AWS::SSM::Parameter')) {
    const props = resolver.resolve(stack, raw) as Props;
    const Name = resolver.physicalOf(stack, id).ref;
    await clients.ssm.send(
      new PutParameterCommand({
        Name,
        Value: String(props.Value),
        Type: (props.Type as 'String') ?? 'String',
        Overwrite: true,
      }),
    );
    resolver.setPhysical(stack, id, {
      ref: Name,
      attrs: { Type: String(props.Type ?? 'String'), Value: String(props.Value) },
    });
    record(stack, id, 'AWS::SSM::Parameter', props);
  }
  for (const { stack, id, raw } of each('AWS::SQS::Queue')) {
    const props = resolver.resolve(stack, raw) as Props;
    const p = resolver.physicalOf(stack, id);
    const attrs: Record<string, string> = {};
    for (const k of ['MessageRetentionPeriod', 'VisibilityTimeout', 'SqsManagedSseEnabled', 'KmsMasterKeyId'])
      if (props[k] !== undefined) attrs[k] = String(props[k]);
    const q = await clients.sqs('CreateQueue', { QueueName: p.attrs.QueueName, Attributes: attrs });
    if (typeof q.QueueUrl === 'string')
      resolver.setPhysical(stack, id, { ref: q.QueueUrl, attrs: { ...p.attrs, QueueUrl: q.QueueUrl } });
    record(stack, id, 'AWS::SQS::Queue', props);
  }

  // 5. Everything the harness plays instead of moto: resolved, recorded, not created.
  for (const type of [
    'AWS::IAM::Role',
    'AWS::IAM::Policy',
    'AWS::Lambda::Function',
    'AWS::StepFunctions::StateMachine',
    'AWS::Events::Rule',
    'AWS::SQS::QueuePolicy',
    'AWS::Lambda::Permission',
  ]) {
    for (const { stack, id, raw } of each(type))
      record(stack, id, type, resolver.resolve(stack, raw) as Props);
  }
  return { resolver, resources };
}
