import { Aws, RemovalPolicy, type Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import { type StackContext, use } from 'sst/constructs';
import { ACCESS, FUNCTION_NAMES, type FunctionName, signers, usesDataKey } from './access.js';
import { dataAccessTrailArn, publish, removeUnusedSstHandler } from './common.js';
import { Identity } from './Identity.js';

/**
 * Key administration without key use: the account may manage the key (so CloudFormation and
 * administrators can update it and KMS accepts the policy), but this statement grants neither Sign
 * nor Decrypt. Listed one by one: no `kms:*`, no `kms:Get*` (KMS Developer Guide, "Allows key
 * administrators to administer the KMS key").
 */
export const ADMIN_ACTIONS = [
  'kms:DescribeKey',
  'kms:GetKeyPolicy',
  'kms:PutKeyPolicy',
  'kms:GetKeyRotationStatus',
  'kms:EnableKeyRotation',
  'kms:DisableKeyRotation',
  'kms:EnableKey',
  'kms:DisableKey',
  'kms:UpdateKeyDescription',
  'kms:ListResourceTags',
  'kms:TagResource',
  'kms:UntagResource',
  'kms:CreateAlias',
  'kms:UpdateAlias',
  'kms:DeleteAlias',
  'kms:ListGrants',
  'kms:RevokeGrant',
  'kms:ScheduleKeyDeletion',
  'kms:CancelKeyDeletion',
];

export function adminStatement(): iam.PolicyStatement {
  return new iam.PolicyStatement({
    sid: 'KeyAdministrationByTheAccount',
    principals: [new iam.AccountRootPrincipal()],
    actions: ADMIN_ACTIONS,
    // In a key policy "*" means "this key" (KMS Developer Guide, "Key policies").
    resources: ['*'],
  });
}

/** Encrypted log groups of this account (CloudWatch Logs User Guide, "Encrypt log data in CloudWatch Logs using KMS"). */
export function cloudWatchLogsStatement(): iam.PolicyStatement {
  return new iam.PolicyStatement({
    sid: 'CloudWatchLogsOfThisAccount',
    principals: [new iam.ServicePrincipal(`logs.${Aws.REGION}.amazonaws.com`)],
    actions: [
      'kms:Encrypt',
      'kms:Decrypt',
      'kms:ReEncryptFrom',
      'kms:ReEncryptTo',
      'kms:GenerateDataKey',
      'kms:GenerateDataKeyWithoutPlaintext',
      'kms:DescribeKey',
    ],
    resources: ['*'],
    conditions: {
      ArnLike: {
        'kms:EncryptionContext:aws:logs:arn': `arn:${Aws.PARTITION}:logs:${Aws.REGION}:${Aws.ACCOUNT_ID}:log-group:*`,
      },
    },
  });
}

function roleArns(roles: readonly iam.IRole[]): iam.IPrincipal[] {
  return roles.map((role) => new iam.ArnPrincipal(role.roleArn));
}

/**
 * A P-256 signing key (ECDSA_SHA_256, DER signatures; docs/design.md "Ports"). Only the named roles
 * may Sign; GetPublicKey/Verify are delegated to IAM in the account, so a verifier (CLI, auditor
 * role) needs an IAM grant and no key policy change, and the public key is public anyway.
 */
function signingKey(stack: Stack, id: string, purpose: string, signerRoles: iam.IRole[]): kms.CfnKey {
  const policy = new iam.PolicyDocument({
    statements: [
      adminStatement(),
      new iam.PolicyStatement({
        sid: 'SignOnlyBySigningRoles',
        principals: roleArns(signerRoles),
        actions: ['kms:Sign'],
        resources: ['*'],
        conditions: { StringEquals: { 'kms:SigningAlgorithm': 'ECDSA_SHA_256' } },
      }),
      new iam.PolicyStatement({
        sid: 'VerifyThroughIam',
        principals: [new iam.AccountRootPrincipal()],
        actions: ['kms:GetPublicKey', 'kms:Verify', 'kms:DescribeKey'],
        resources: ['*'],
      }),
    ],
  });
  const key = new kms.CfnKey(stack, id, {
    description: `veritrail ${purpose}`,
    keySpec: 'ECC_NIST_P256',
    keyUsage: 'SIGN_VERIFY',
    enabled: true,
    keyPolicy: policy,
  });
  return key;
}

export function Keys({ stack, app }: StackContext) {
  const { functionRoles, sagemakerRoles } = use(Identity);
  const rolesOf = (names: FunctionName[]) => names.map((n) => functionRoles[n]);

  const attestationKey = signingKey(
    stack,
    'AttestationKey',
    'attestation signing key (DSSE / Sigstore bundles)',
    rolesOf(signers('attestation')),
  );
  const checkpointKey = signingKey(
    stack,
    'CheckpointKey',
    'audit log checkpoint signing key (C2SP checkpoints)',
    rolesOf(signers('checkpoint')),
  );

  const dataUsers = rolesOf(FUNCTION_NAMES.filter((n) => usesDataKey(ACCESS[n])));
  const trainers = [...sagemakerRoles.values()];
  const dataKeyPolicy = new iam.PolicyDocument({
    statements: [
      adminStatement(),
      new iam.PolicyStatement({
        sid: 'DataUseByFunctionRoles',
        principals: roleArns([...dataUsers, ...trainers]),
        actions: ['kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey', 'kms:DescribeKey'],
        resources: ['*'],
      }),
      new iam.PolicyStatement({
        // SageMaker attaches the key to training volumes and output through grants for AWS resources.
        sid: 'TrainingVolumeGrants',
        principals: roleArns([...trainers, functionRoles.train, functionRoles.evaluate]),
        actions: ['kms:CreateGrant'],
        resources: ['*'],
        conditions: { Bool: { 'kms:GrantIsForAWSResource': 'true' } },
      }),
      new iam.PolicyStatement({
        // Operators and auditors read runs and artifacts through DynamoDB and S3 only, when IAM lets them.
        sid: 'ReadThroughStorageServicesOnly',
        principals: [new iam.AccountRootPrincipal()],
        actions: ['kms:Decrypt', 'kms:DescribeKey'],
        resources: ['*'],
        conditions: {
          StringEquals: {
            'kms:CallerAccount': Aws.ACCOUNT_ID,
            'kms:ViaService': [`s3.${Aws.REGION}.amazonaws.com`, `dynamodb.${Aws.REGION}.amazonaws.com`],
          },
        },
      }),
      new iam.PolicyStatement({
        // Uploads by operators (`aws s3 cp` into the landing bucket, docs/deploy.md): S3 asks KMS
        // for a data key on the caller's behalf (S3 User Guide, "Using SSE-KMS": kms:GenerateDataKey,
        // and kms:Decrypt for multipart uploads), and only through S3, when IAM lets the caller.
        sid: 'UploadThroughS3Only',
        principals: [new iam.AccountRootPrincipal()],
        actions: ['kms:GenerateDataKey'],
        resources: ['*'],
        conditions: {
          StringEquals: {
            'kms:CallerAccount': Aws.ACCOUNT_ID,
            'kms:ViaService': `s3.${Aws.REGION}.amazonaws.com`,
          },
        },
      }),
      new iam.PolicyStatement({
        // DynamoDB creates its own grants when CloudFormation creates the table with this key.
        sid: 'TableCreationGrants',
        principals: [new iam.AccountRootPrincipal()],
        actions: ['kms:CreateGrant'],
        resources: ['*'],
        conditions: {
          Bool: { 'kms:GrantIsForAWSResource': 'true' },
          StringEquals: { 'kms:ViaService': `dynamodb.${Aws.REGION}.amazonaws.com` },
        },
      }),
      cloudWatchLogsStatement(),
    ],
  });
  dataKeyPolicy.addStatements(
    new iam.PolicyStatement({
      // The data-access trail encrypts its log files (CloudTrail Developer Guide, "Configure AWS KMS
      // key policies for CloudTrail"): only for this trail, named by ARN before it exists.
      sid: 'DataAccessTrailEncrypts',
      principals: [new iam.ServicePrincipal('cloudtrail.amazonaws.com')],
      actions: ['kms:GenerateDataKey', 'kms:DescribeKey'],
      resources: ['*'],
      conditions: {
        StringEquals: { 'aws:SourceArn': dataAccessTrailArn(app) },
        StringLike: {
          'kms:EncryptionContext:aws:cloudtrail:arn': `arn:${Aws.PARTITION}:cloudtrail:*:${Aws.ACCOUNT_ID}:trail/*`,
        },
      },
    }),
    new iam.PolicyStatement({
      // The backup vault of the run table is encrypted with this key; AWS Backup uses it through
      // grants it creates for its recovery points, only when called through AWS Backup.
      sid: 'BackupThroughAwsBackupOnly',
      principals: [new iam.AccountRootPrincipal()],
      actions: ['kms:CreateGrant', 'kms:Decrypt', 'kms:GenerateDataKey', 'kms:DescribeKey'],
      resources: ['*'],
      conditions: {
        StringEquals: {
          'kms:CallerAccount': Aws.ACCOUNT_ID,
          'kms:ViaService': `backup.${Aws.REGION}.amazonaws.com`,
        },
      },
    }),
  );
  const dataKeyResource = new kms.CfnKey(stack, 'DataKey', {
    description: 'veritrail data key: buckets, table, logs, training volumes',
    keySpec: 'SYMMETRIC_DEFAULT',
    keyUsage: 'ENCRYPT_DECRYPT',
    enableKeyRotation: true,
    enabled: true,
    keyPolicy: dataKeyPolicy,
  });

  for (const [id, key] of [
    ['attestation', attestationKey],
    ['checkpoint', checkpointKey],
    ['data', dataKeyResource],
  ] as const) {
    // Retained on `sst remove`: the retained buckets and table stay readable, old signatures checkable.
    key.applyRemovalPolicy(RemovalPolicy.RETAIN);
    new kms.CfnAlias(stack, `Alias-${id}`, {
      aliasName: `alias/veritrail/${stack.stage}/${id}`,
      targetKeyId: key.attrKeyId,
    });
  }

  const dataKey = kms.Key.fromKeyArn(stack, 'DataKeyRef', dataKeyResource.attrArn);

  publish(stack, stack.stage, 'attestation-key-arn', attestationKey.attrArn, 'KMS key signing attestations');
  publish(
    stack,
    stack.stage,
    'checkpoint-key-arn',
    checkpointKey.attrArn,
    'KMS key signing audit checkpoints',
  );
  publish(stack, stack.stage, 'data-key-arn', dataKeyResource.attrArn, 'KMS data key (buckets, table, logs)');

  removeUnusedSstHandler(stack);
  return {
    dataKey,
    dataKeyArn: dataKeyResource.attrArn,
    attestationKeyArn: attestationKey.attrArn,
    checkpointKeyArn: checkpointKey.attrArn,
  };
}
