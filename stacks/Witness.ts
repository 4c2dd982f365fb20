import { Aws, type CfnResource, RemovalPolicy, type Stack } from 'aws-cdk-lib';
import * as cloudformation from 'aws-cdk-lib/aws-cloudformation';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Function as SstFunction, type StackContext, use } from 'sst/constructs';
import {
  auditOrigin,
  KMS_WITNESS_KEY_SPEC,
  KMS_WITNESS_SIGNING_ALGORITHM,
  WITNESS_TABLE_KEY,
} from '../src/core/deployment.js';
import type { FunctionName } from './access.js';
import { NODEJS_BUNDLING } from './bundling.js';
import { publish, removeUnusedSstHandler } from './common.js';
import { suppressWitnessFindings } from './compliance.js';
import { adminStatement, cloudWatchLogsStatement, Keys } from './Keys.js';
import { Storage } from './Storage.js';
import {
  defaultWitnessName,
  LOG_RETENTION_DAYS,
  WITNESS_RESERVED_CONCURRENCY,
  witnessSettings,
} from './settings.js';

/**
 * The functions that checkpoint the audit log, and so ask the witnesses (src/steps/finish.ts
 * `checkpoint`): Finish and RecordFailure at the end of every run, and the reconciler, which closes
 * runs through the same code (src/aws/reconcile.ts → failRun). They get VERITRAIL_WITNESSES.
 */
export const WITNESSED_FUNCTIONS = [
  'finish',
  'record-failure',
  'reconcile',
] as const satisfies readonly FunctionName[];

/** What the witness cosigns: one log, by origin, with the keys it trusts for it. */
function witnessedLog(): {
  logs: { origin: string; keyArns?: string[]; publicKeys?: string[] }[];
  logKeyArns: string[];
} {
  const settings = witnessSettings();
  if (settings.mode === 'only' && settings.log) {
    return { logs: [{ origin: settings.log.origin, publicKeys: settings.log.publicKeys }], logKeyArns: [] };
  }
  // This app's log: the origin its functions sign (src/core/deployment.ts auditOrigin) and its
  // checkpoint key, read with kms:GetPublicKey at cold start.
  const { checkpointKeyArn } = use(Keys);
  const { audit } = use(Storage);
  return {
    logs: [{ origin: auditOrigin({ buckets: { audit: audit.bucketName } }), keyArns: [checkpointKeyArn] }],
    logKeyArns: [checkpointKeyArn],
  };
}

/**
 * A c2sp.org/tlog-witness witness of the audit log, as a stack of its own (docs/audit-log.md, "A
 * witness on AWS"): one function behind a function URL (auth NONE: the protocol authenticates the
 * log by its checkpoint signature), its own Ed25519 signing key in KMS (ECC_NIST_EDWARDS25519, never
 * exportable, Sign only by the witness's role with ED25519_SHA_512), its state in its own DynamoDB
 * table (conditional writes), its own storage key, its own log group. With VERITRAIL_WITNESS=stack it
 * witnesses this app's log; with `only` it is the whole app, deployed in another account.
 * At deploy time a custom resource served by the function reads its public key and returns the
 * vkey, published with the URL (outputs, SSM) and handed to the checkpointing functions.
 */
export function Witness({ stack }: StackContext) {
  const settings = witnessSettings();
  const name = settings.name ?? defaultWitnessName(stack.stage);
  const { logs: witnessed, logKeyArns } = witnessedLog();

  const role = new iam.Role(stack, 'WitnessRole', {
    assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
    description: `veritrail ${stack.stage}: the audit log's witness (own role, least privilege; docs/deploy.md)`,
  });

  // The witness's storage key: its table and its log group, nothing of the pipeline's.
  const storageKey = new kms.CfnKey(stack, 'WitnessStorageKey', {
    description: 'veritrail witness: its table and its logs',
    keySpec: 'SYMMETRIC_DEFAULT',
    keyUsage: 'ENCRYPT_DECRYPT',
    enableKeyRotation: true,
    enabled: true,
    keyPolicy: new iam.PolicyDocument({
      statements: [
        adminStatement(),
        new iam.PolicyStatement({
          sid: 'UseByTheWitness',
          principals: [new iam.ArnPrincipal(role.roleArn)],
          actions: ['kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey', 'kms:DescribeKey'],
          resources: ['*'],
        }),
        new iam.PolicyStatement({
          // DynamoDB creates its own grants when CloudFormation creates the table with this key; an
          // operator reads the witness's state through DynamoDB only, when IAM lets them.
          sid: 'ThroughDynamoDbOnly',
          principals: [new iam.AccountRootPrincipal()],
          actions: ['kms:CreateGrant', 'kms:Decrypt', 'kms:DescribeKey'],
          resources: ['*'],
          conditions: {
            StringEquals: {
              'kms:CallerAccount': Aws.ACCOUNT_ID,
              'kms:ViaService': `dynamodb.${Aws.REGION}.amazonaws.com`,
            },
          },
        }),
        cloudWatchLogsStatement(),
      ],
    }),
  });

  // The witness's signing key: Ed25519 (cosignature/v1), in KMS, so the private key never exists
  // outside it. Only the witness's role may Sign, and only as pure Ed25519.
  const signingKey = new kms.CfnKey(stack, 'WitnessSigningKey', {
    description: `veritrail witness ${name}: Ed25519 cosignatures (c2sp.org/tlog-cosignature)`,
    keySpec: KMS_WITNESS_KEY_SPEC,
    keyUsage: 'SIGN_VERIFY',
    enabled: true,
    keyPolicy: new iam.PolicyDocument({
      statements: [
        adminStatement(),
        new iam.PolicyStatement({
          sid: 'SignOnlyByTheWitness',
          principals: [new iam.ArnPrincipal(role.roleArn)],
          actions: ['kms:Sign'],
          resources: ['*'],
          conditions: { StringEquals: { 'kms:SigningAlgorithm': KMS_WITNESS_SIGNING_ALGORITHM } },
        }),
        new iam.PolicyStatement({
          sid: 'VerifyThroughIam',
          principals: [new iam.AccountRootPrincipal()],
          actions: ['kms:GetPublicKey', 'kms:Verify', 'kms:DescribeKey'],
          resources: ['*'],
        }),
      ],
    }),
  });
  for (const [id, key] of [
    ['witness', signingKey],
    ['witness-storage', storageKey],
  ] as const) {
    // Retained: old cosignatures stay checkable, the retained table readable.
    key.applyRemovalPolicy(RemovalPolicy.RETAIN);
    new kms.CfnAlias(stack, `Alias-${id}`, {
      aliasName: `alias/veritrail/${stack.stage}/${id}`,
      targetKeyId: key.attrKeyId,
    });
  }
  const storageKeyRef = kms.Key.fromKeyArn(stack, 'WitnessStorageKeyRef', storageKey.attrArn);

  const table = new dynamodb.Table(stack, 'WitnessState', {
    partitionKey: { name: WITNESS_TABLE_KEY, type: dynamodb.AttributeType.STRING },
    billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
    pointInTimeRecovery: true,
    encryption: dynamodb.TableEncryption.CUSTOMER_MANAGED,
    encryptionKey: storageKeyRef,
    deletionProtection: true,
    removalPolicy: RemovalPolicy.RETAIN,
  });

  const logGroup = new logs.LogGroup(stack, 'Logs-witness', {
    retention: LOG_RETENTION_DAYS as logs.RetentionDays,
    encryptionKey: storageKeyRef,
  });
  const fn = new SstFunction(stack, 'witness', {
    handler: 'functions/witness.handler',
    runtime: 'nodejs22.x',
    architecture: 'arm_64',
    tracing: 'active',
    memorySize: 256,
    // A request: a GetItem, a Sign and a conditional PutItem (two GetPublicKey calls at a cold
    // start); the deploy-time vkey waits up to 20 s for its new grants (src/aws/witness-vkey.ts).
    timeout: 30,
    reservedConcurrentExecutions: WITNESS_RESERVED_CONCURRENCY,
    role,
    environment: {
      VERITRAIL_WITNESS_NAME: name,
      VERITRAIL_WITNESS_KEY_ARN: signingKey.attrArn,
      VERITRAIL_WITNESS_TABLE: table.tableName,
      VERITRAIL_WITNESS_LOGS: stack.toJsonString({ logs: witnessed }),
    },
    nodejs: NODEJS_BUNDLING,
  });
  const cfn = fn.node.defaultChild as lambda.CfnFunction;
  // LoggingConfig (JSON logs, own log group), as the Pipeline stack's functions.
  cfn.addPropertyOverride('LoggingConfig', {
    LogFormat: 'JSON',
    ApplicationLogLevel: 'INFO',
    SystemLogLevel: 'INFO',
    LogGroup: logGroup.logGroupName,
  });
  // The role is already a dependency through the Role property (cfn-lint W3005): DependsOn keeps
  // only the X-Ray policy that active tracing adds to it.
  const tracingPolicy = role.node.tryFindChild('DefaultPolicy')?.node.defaultChild as CfnResource | undefined;
  if (tracingPolicy) cfn.addOverride('DependsOn', [tracingPolicy.logicalId]);
  const grants = new iam.Policy(stack, 'Grants-witness', {
    roles: [role],
    statements: [
      new iam.PolicyStatement({
        sid: 'OwnLogGroup',
        actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
        resources: [logGroup.logGroupArn],
      }),
      new iam.PolicyStatement({
        // GetItem (consistent) and the conditional PutItem of src/aws/dynamo-witness-store.ts.
        sid: 'WitnessState',
        actions: ['dynamodb:GetItem', 'dynamodb:PutItem'],
        resources: [table.tableArn],
      }),
      new iam.PolicyStatement({
        sid: 'StorageKey',
        actions: ['kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey'],
        resources: [storageKey.attrArn],
      }),
      new iam.PolicyStatement({
        sid: 'Cosign',
        actions: ['kms:Sign', 'kms:GetPublicKey'],
        resources: [signingKey.attrArn],
      }),
      ...(logKeyArns.length > 0
        ? [
            new iam.PolicyStatement({
              // The trusted log key, read once per cold start; the checkpoint key's policy delegates
              // GetPublicKey to IAM in the account (stacks/Keys.ts).
              sid: 'ReadTheLogKey',
              actions: ['kms:GetPublicKey'],
              resources: logKeyArns,
            }),
          ]
        : []),
    ],
  });

  // Public, as tlog-witness intends: "there is no authentication of requests beyond the validation
  // of the signature on the checkpoint" (c2sp.org/tlog-witness). CDK adds the two resource-policy
  // statements a NONE function URL needs (lambda:InvokeFunctionUrl, and lambda:InvokeFunction only
  // when invoked through the URL), and nothing else may invoke the function.
  const url = fn.addFunctionUrl({ authType: lambda.FunctionUrlAuthType.NONE });

  // The vkey, computed by the function from its key at deploy time (src/aws/witness-vkey.ts).
  const vkey = new cloudformation.CfnCustomResource(stack, 'WitnessVkey', {
    serviceToken: fn.functionArn,
    serviceTimeout: 120,
  });
  // A change of name or key is a new vkey: the properties make CloudFormation ask again.
  vkey.addPropertyOverride('Name', name);
  vkey.addPropertyOverride('KeyArn', signingKey.attrArn);
  vkey.node.addDependency(grants);
  vkey.node.addDependency(logGroup);
  const vkeyValue = vkey.getAtt('Vkey').toString();

  publish(stack, stack.stage, 'witness-url', url.url, 'Function URL of the audit log witness (tlog-witness)');
  publish(stack, stack.stage, 'witness-vkey', vkeyValue, 'Verifier key of the audit log witness');
  publish(
    stack,
    stack.stage,
    'witness-key-arn',
    signingKey.attrArn,
    'KMS Ed25519 key of the audit log witness',
  );

  suppressWitnessFindings({ fn, grants, role, table });
  removeUnusedSstHandler(stack);
  return { url: url.url, vkey: vkeyValue, name };
}

/**
 * VERITRAIL_WITNESSES of each Pipeline function: for the functions that checkpoint, the Witness
 * stack's witness (VERITRAIL_WITNESS=stack) and the external ones (VERITRAIL_EXTERNAL_WITNESSES);
 * nothing for the others, or when no witness is configured.
 */
export function witnessEnvironment(stack: Stack): (name: FunctionName) => Record<string, string> {
  const settings = witnessSettings();
  const witnesses: { vkey: string; url: string }[] = [];
  if (settings.mode === 'stack') {
    const own = use(Witness);
    witnesses.push({ vkey: own.vkey, url: own.url });
  }
  witnesses.push(...settings.external);
  if (witnesses.length === 0) return () => ({});
  const value = stack.toJsonString({ witnesses });
  const witnessed = new Set<FunctionName>(WITNESSED_FUNCTIONS);
  return (name): Record<string, string> => (witnessed.has(name) ? { VERITRAIL_WITNESSES: value } : {});
}
