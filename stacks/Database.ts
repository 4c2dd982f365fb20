import { Aws, RemovalPolicy } from 'aws-cdk-lib';
import * as backup from 'aws-cdk-lib/aws-backup';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import { type StackContext, Table, use } from 'sst/constructs';
import { publish, removeUnusedSstHandler } from './common.js';
import { suppressDatabaseFindings } from './compliance.js';
import { Keys } from './Keys.js';
import { deployedUnit } from './units.js';

/** The run table's backups: daily at 03:00 UTC, kept as long as audit entries are locked. */
export const BACKUP_SCHEDULE = 'cron(0 3 * * ? *)';

/**
 * The single table (runs, steps, idempotency records, audit head hints): `pk`/`sk`, and `gsi1`
 * on `gsi1pk`/`gsi1sk` for runs by pipeline and time. Point-in-time recovery, encryption with the
 * customer-managed data key, deletion protection, retained on `sst remove`; and an AWS Backup plan
 * whose recovery points are kept for the audit retention, in a vault encrypted with the data key
 * whose lock refuses a shorter retention.
 */
export function Database({ stack, app }: StackContext) {
  const { dataKey, dataKeyArn } = use(Keys);
  const retentionDays = deployedUnit().auditRetentionDays;
  const table = new Table(stack, 'runs', {
    fields: { pk: 'string', sk: 'string', gsi1pk: 'string', gsi1sk: 'string' },
    primaryIndex: { partitionKey: 'pk', sortKey: 'sk' },
    globalIndexes: { gsi1: { partitionKey: 'gsi1pk', sortKey: 'gsi1sk' } },
    cdk: {
      table: {
        billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
        pointInTimeRecovery: true,
        encryption: dynamodb.TableEncryption.CUSTOMER_MANAGED,
        encryptionKey: dataKey,
        deletionProtection: true,
        removalPolicy: RemovalPolicy.RETAIN,
      },
    },
  });
  const tableArn = table.cdk.table.tableArn;

  const vault = new backup.CfnBackupVault(stack, 'BackupVault', {
    backupVaultName: app.logicalPrefixedName('runs'),
    encryptionKeyArn: dataKeyArn,
    // Vault Lock in governance mode: no recovery point may be kept less than the audit retention.
    // (Compliance mode, ChangeableForDays, would make it immutable; an operator decision, see docs/deploy.md.)
    lockConfiguration: { minRetentionDays: retentionDays },
    // Nobody deletes a recovery point or shortens its lifecycle by hand; expiry is AWS Backup's own.
    accessPolicy: new iam.PolicyDocument({
      statements: [
        new iam.PolicyStatement({
          sid: 'NoManualDeletion',
          effect: iam.Effect.DENY,
          principals: [new iam.AnyPrincipal()],
          actions: ['backup:DeleteRecoveryPoint', 'backup:UpdateRecoveryPointLifecycle'],
          resources: ['*'],
        }),
      ],
    }).toJSON(),
  });
  vault.applyRemovalPolicy(RemovalPolicy.RETAIN);
  const plan = new backup.CfnBackupPlan(stack, 'BackupPlan', {
    backupPlan: {
      backupPlanName: app.logicalPrefixedName('runs'),
      backupPlanRule: [
        {
          ruleName: 'daily-kept-for-audit-retention',
          targetBackupVault: vault.attrBackupVaultName,
          scheduleExpression: BACKUP_SCHEDULE,
          lifecycle: { deleteAfterDays: retentionDays },
        },
      ],
    },
  });
  plan.applyRemovalPolicy(RemovalPolicy.RETAIN);
  // The role AWS Backup assumes to back the table up: the DynamoDB statements of the managed
  // AWSBackupServiceRolePolicyForBackup, on this table only (managed policies are not attached here).
  const backupRole = new iam.Role(stack, 'Backup', {
    assumedBy: new iam.ServicePrincipal('backup.amazonaws.com', {
      conditions: { StringEquals: { 'aws:SourceAccount': Aws.ACCOUNT_ID } },
    }),
    description: `veritrail ${stack.stage}: AWS Backup of the run table`,
  });
  const backupPolicy = new iam.Policy(stack, 'Grants-backup', {
    roles: [backupRole],
    statements: [
      new iam.PolicyStatement({
        sid: 'BackUpTheTable',
        actions: [
          'dynamodb:DescribeTable',
          'dynamodb:CreateBackup',
          'dynamodb:StartAwsBackupJob',
          'dynamodb:ListTagsOfResource',
        ],
        resources: [tableArn],
      }),
      new iam.PolicyStatement({
        // Lifecycle: AWS Backup describes and expires the table's backups after the retention.
        sid: 'ExpireTheTableBackups',
        actions: ['dynamodb:DescribeBackup', 'dynamodb:DeleteBackup'],
        resources: [`${tableArn}/backup/*`],
      }),
      new iam.PolicyStatement({
        sid: 'DataKeyThroughBackupAndDynamoDb',
        actions: ['kms:Decrypt', 'kms:GenerateDataKey', 'kms:DescribeKey', 'kms:CreateGrant'],
        resources: [dataKeyArn],
        conditions: {
          StringEquals: {
            'kms:ViaService': [`backup.${Aws.REGION}.amazonaws.com`, `dynamodb.${Aws.REGION}.amazonaws.com`],
          },
        },
      }),
    ],
  });
  const selection = new backup.CfnBackupSelection(stack, 'BackupSelection', {
    backupPlanId: plan.attrBackupPlanId,
    backupSelection: {
      selectionName: 'run-table',
      iamRoleArn: backupRole.roleArn,
      resources: [tableArn],
    },
  });
  selection.node.addDependency(backupPolicy);

  publish(stack, stack.stage, 'table-name', table.tableName, 'DynamoDB table of runs');
  suppressDatabaseFindings({ backupPolicy });
  removeUnusedSstHandler(stack);
  return { table: table.cdk.table, backupVault: vault, backupPlan: plan };
}
