import { Aws, Duration } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { type StackContext, use } from 'sst/constructs';
import { parameterPath, publish, removeUnusedSstHandler } from './common.js';
import { suppressAuditorFindings } from './compliance.js';
import { Database } from './Database.js';
import { Keys } from './Keys.js';
import { Storage } from './Storage.js';

/**
 * The auditor's role: what `veritrail verify|export <runId> --stage <stage>` needs and nothing
 * more — read the stage's parameters, its run records, the content-addressed artifacts, the audit
 * log and the pinned raw data, and fetch the two signing keys' public halves. No write, no Sign,
 * no Decrypt outside S3 and DynamoDB. Assumable by principals of this account whose own IAM
 * policies allow sts:AssumeRole on it (the account decides who audits), for an hour at most.
 */
export function Auditor({ stack }: StackContext) {
  const { dataKeyArn, attestationKeyArn, checkpointKeyArn } = use(Keys);
  const { landing, artifacts, audit } = use(Storage);
  const { table } = use(Database);

  const role = new iam.Role(stack, 'AuditorRole', {
    assumedBy: new iam.AccountRootPrincipal(),
    maxSessionDuration: Duration.hours(1),
    description: `veritrail ${stack.stage}: read-only verification of runs (veritrail verify --stage)`,
  });
  const parameters = `arn:${Aws.PARTITION}:ssm:${Aws.REGION}:${Aws.ACCOUNT_ID}:parameter${parameterPath(stack.stage, '')}`;
  const policy = new iam.Policy(stack, 'Grants-auditor', {
    roles: [role],
    statements: [
      new iam.PolicyStatement({
        // GetParametersByPath is authorized on the path itself (`/veritrail/<stage>`).
        sid: 'FindTheStage',
        actions: ['ssm:GetParametersByPath'],
        resources: [parameters.replace(/\/$/, ''), parameters.replace(/\/$/, '/*')],
      }),
      new iam.PolicyStatement({
        sid: 'ReadRunRecords',
        actions: ['dynamodb:GetItem', 'dynamodb:Query'],
        resources: [table.tableArn, `${table.tableArn}/index/gsi1`],
      }),
      new iam.PolicyStatement({
        sid: 'ListEvidence',
        actions: ['s3:ListBucket'],
        resources: [artifacts.bucketArn, audit.bucketArn, landing.bucketArn],
      }),
      new iam.PolicyStatement({
        sid: 'ReadEvidence',
        actions: ['s3:GetObject', 's3:GetObjectVersion'],
        resources: [artifacts.arnForObjects('*'), audit.arnForObjects('*'), landing.arnForObjects('*')],
      }),
      new iam.PolicyStatement({
        sid: 'TrustedPublicKeys',
        actions: ['kms:GetPublicKey'],
        resources: [attestationKeyArn, checkpointKeyArn],
      }),
      new iam.PolicyStatement({
        // The buckets and the table are encrypted with the data key: readable through them only.
        sid: 'DecryptThroughStorageOnly',
        actions: ['kms:Decrypt'],
        resources: [dataKeyArn],
        conditions: {
          StringEquals: {
            'kms:ViaService': [`s3.${Aws.REGION}.amazonaws.com`, `dynamodb.${Aws.REGION}.amazonaws.com`],
          },
        },
      }),
    ],
  });
  suppressAuditorFindings(policy);
  publish(stack, stack.stage, 'auditor-role-arn', role.roleArn, 'Role for read-only verification of runs');
  removeUnusedSstHandler(stack);
  return { auditorRole: role };
}
