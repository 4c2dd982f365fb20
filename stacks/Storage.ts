import { Aws, DefaultStackSynthesizer, Duration, Fn, RemovalPolicy, type Stack } from 'aws-cdk-lib';
import * as cloudtrail from 'aws-cdk-lib/aws-cloudtrail';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Bucket, type StackContext, use } from 'sst/constructs';
import { dataAccessTrailArn, dataAccessTrailName, publish, removeUnusedSstHandler } from './common.js';
import { suppressStorageFindings } from './compliance.js';
import { Keys } from './Keys.js';
import { auditReplica, LOG_RETENTION_DAYS } from './settings.js';
import { deployedUnit } from './units.js';

/**
 * Actions nobody may perform on any veritrail bucket, whatever IAM says: an explicit Deny in the
 * bucket policy wins over every Allow (IAM User Guide, "Policy evaluation logic"). History is
 * never deleted, retention never bypassed, the lock configuration never changed.
 * (`s3:PutObjectLockConfiguration` is the API name; its IAM action is `s3:PutBucketObjectLockConfiguration`.
 * S3 rejects unknown action names in a bucket policy, so only the IAM names are listed.)
 */
export const DENIED_OBJECT_ACTIONS = ['s3:DeleteObject*', 's3:BypassGovernanceRetention'] as const;

/**
 * Changing the bucket's Object Lock configuration (the default retention of new audit entries) is
 * denied to every principal but the CloudFormation execution role of this app's CDK bootstrap, so
 * a retention change goes through a reviewed `sst deploy` and nothing else. COMPLIANCE retention
 * already set on existing objects cannot be shortened by anyone (S3 User Guide, "Object Lock").
 */
export const LOCK_CONFIGURATION_ACTION = 's3:PutBucketObjectLockConfiguration';

type BucketRole = 'landing' | 'artifacts' | 'audit' | 'trail';

/** The role CloudFormation deploys this app's stacks with (CDK bootstrap, DefaultStackSynthesizer). */
export function deployRoleArn(stack: Stack): string {
  const synthesizer = stack.synthesizer;
  // The synthesizer gives the ARN with ${AWS::Partition}-style placeholders, meant for Fn::Sub.
  if (synthesizer instanceof DefaultStackSynthesizer)
    return Fn.sub(synthesizer.cloudFormationExecutionRoleArn);
  throw new TypeError('veritrail stacks deploy with the CDK DefaultStackSynthesizer (SST v2 default)');
}

/**
 * Storage: landing (where datasets arrive; EventBridge notifications on), artifacts
 * (content-addressed), audit (WORM: Object Lock COMPLIANCE with a default retention).
 * Every bucket: versioning, Block Public Access, SSE-KMS with the data key and a bucket key, no
 * ACLs, no CORS, TLS only, and the Deny statements above. Retained on `sst remove`.
 */
export function Storage({ stack, app }: StackContext) {
  const { dataKey, dataKeyArn } = use(Keys);
  // The unit's auditRetentionDays (units file), else VERITRAIL_AUDIT_RETENTION_DAYS (stacks/units.ts).
  const retentionDays = deployedUnit().auditRetentionDays;
  const replica = auditReplica(undefined, undefined, stack.region);

  const make = (role: BucketRole, extra: Partial<s3.BucketProps>) => {
    const bucket = new Bucket(stack, role, {
      cors: false,
      cdk: {
        bucket: {
          versioned: true,
          blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
          objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
          encryption: s3.BucketEncryption.KMS,
          encryptionKey: dataKey,
          bucketKeyEnabled: true,
          enforceSSL: true,
          removalPolicy: RemovalPolicy.RETAIN,
          ...extra,
        },
      },
    });
    const cdkBucket = bucket.cdk.bucket;
    cdkBucket.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'NoDeleteNoBypassNoLockChange',
        effect: iam.Effect.DENY,
        principals: [new iam.AnyPrincipal()],
        actions: [...DENIED_OBJECT_ACTIONS],
        resources: [cdkBucket.bucketArn, cdkBucket.arnForObjects('*')],
      }),
    );
    cdkBucket.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'LockConfigurationOnlyThroughDeploys',
        effect: iam.Effect.DENY,
        principals: [new iam.AnyPrincipal()],
        actions: [LOCK_CONFIGURATION_ACTION],
        resources: [cdkBucket.bucketArn],
        conditions: { ArnNotEquals: { 'aws:PrincipalArn': deployRoleArn(stack) } },
      }),
    );
    return cdkBucket;
  };

  const landing = make('landing', {});
  // EventBridge notifications set on the bucket resource itself. CDK's `eventBridgeEnabled` would
  // deploy a notifications custom resource whose role may s3:PutBucketNotification on "*".
  (landing.node.defaultChild as s3.CfnBucket).addPropertyOverride(
    'NotificationConfiguration.EventBridgeConfiguration.EventBridgeEnabled',
    true,
  );
  const artifacts = make('artifacts', {});
  const audit = make('audit', {
    objectLockEnabled: true,
    objectLockDefaultRetention: s3.ObjectLockRetention.compliance(Duration.days(retentionDays)),
  });

  // Who read or wrote which object, when (issue 15): S3 data events of the three buckets, delivered
  // by CloudTrail with log file validation (signed hourly digest files) into a bucket of its own,
  // locked like the audit log. Server access logs cannot do this: an Object Lock bucket cannot
  // receive them, and they are best-effort (S3 User Guide, "Logging options for Amazon S3").
  const trailBucket = make('trail', {
    objectLockEnabled: true,
    objectLockDefaultRetention: s3.ObjectLockRetention.compliance(Duration.days(retentionDays)),
  });
  const trailName = dataAccessTrailName(app);
  const trailArn = dataAccessTrailArn(app);
  const fromThisTrail = { StringEquals: { 'aws:SourceArn': trailArn } };
  // CloudTrail Developer Guide, "Amazon S3 bucket policy for CloudTrail": GetBucketAcl and
  // PutObject under AWSLogs/<account>/, each only for this trail (aws:SourceArn).
  trailBucket.addToResourcePolicy(
    new iam.PolicyStatement({
      sid: 'CloudTrailAclCheck',
      principals: [new iam.ServicePrincipal('cloudtrail.amazonaws.com')],
      actions: ['s3:GetBucketAcl'],
      resources: [trailBucket.bucketArn],
      conditions: fromThisTrail,
    }),
  );
  trailBucket.addToResourcePolicy(
    new iam.PolicyStatement({
      sid: 'CloudTrailWrite',
      principals: [new iam.ServicePrincipal('cloudtrail.amazonaws.com')],
      actions: ['s3:PutObject'],
      resources: [trailBucket.arnForObjects(`AWSLogs/${Aws.ACCOUNT_ID}/*`)],
      conditions: {
        StringEquals: { 'aws:SourceArn': trailArn, 's3:x-amz-acl': 'bucket-owner-full-control' },
      },
    }),
  );
  // A copy in CloudWatch Logs for alarms and queries (encrypted with the data key, kept a year).
  const trailLogs = new logs.LogGroup(stack, 'Logs-data-access-trail', {
    retention: LOG_RETENTION_DAYS as logs.RetentionDays,
    encryptionKey: dataKey,
  });
  const trailLogsRole = new iam.Role(stack, 'DataAccessTrailLogs', {
    assumedBy: new iam.ServicePrincipal('cloudtrail.amazonaws.com', {
      conditions: { StringEquals: { 'aws:SourceArn': trailArn } },
    }),
    description: `veritrail ${stack.stage}: CloudTrail delivery of data events to CloudWatch Logs`,
  });
  const trailLogsPolicy = new iam.Policy(stack, 'Grants-data-access-trail', {
    roles: [trailLogsRole],
    statements: [
      new iam.PolicyStatement({
        sid: 'TrailLogStreams',
        actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
        resources: [trailLogs.logGroupArn],
      }),
    ],
  });
  const trail = new cloudtrail.CfnTrail(stack, 'DataAccessTrail', {
    trailName,
    isLogging: true,
    enableLogFileValidation: true,
    // The buckets live in this region; the account's management events are its own trail's concern.
    isMultiRegionTrail: false,
    includeGlobalServiceEvents: false,
    kmsKeyId: dataKeyArn,
    s3BucketName: trailBucket.bucketName,
    cloudWatchLogsLogGroupArn: trailLogs.logGroupArn,
    cloudWatchLogsRoleArn: trailLogsRole.roleArn,
    eventSelectors: [
      {
        readWriteType: 'All',
        includeManagementEvents: false,
        dataResources: [
          { type: 'AWS::S3::Object', values: [landing, artifacts, audit].map((b) => `${b.bucketArn}/`) },
        ],
      },
    ],
  });
  // CloudTrail checks that it may write to the bucket and the log group when the trail is created.
  if (trailBucket.policy) trail.node.addDependency(trailBucket.policy);
  trail.node.addDependency(trailLogsPolicy);

  const replication = replica ? replicateAuditLog(stack, audit, dataKeyArn, replica) : undefined;

  publish(stack, stack.stage, 'landing-bucket', landing.bucketName, 'S3 bucket where datasets land');
  publish(
    stack,
    stack.stage,
    'artifacts-bucket',
    artifacts.bucketName,
    'S3 bucket of content-addressed artifacts',
  );
  publish(stack, stack.stage, 'audit-bucket', audit.bucketName, 'S3 WORM bucket of the audit log');

  suppressStorageFindings({
    landing,
    artifacts,
    audit,
    trailBucket,
    trailLogsPolicy,
    replicationPolicy: replication?.policy,
  });
  removeUnusedSstHandler(stack);
  return {
    landing,
    artifacts,
    audit,
    trailBucket,
    trail,
    replicationRole: replication?.role,
    auditRetentionDays: retentionDays,
  };
}

/**
 * S3 Replication of every audit entry to the replica bucket in another region, encrypted there
 * with the replica region's key. Delete markers are not replicated (nobody can delete anyway). The
 * replication role may read the audit bucket's versions with their retention and legal hold, and
 * write replicas: the permissions S3 User Guide, "Setting up permissions for live replication",
 * lists for SSE-KMS objects and Object Lock, no more.
 */
function replicateAuditLog(
  stack: Stack,
  audit: s3.IBucket,
  dataKeyArn: string,
  replica: NonNullable<ReturnType<typeof auditReplica>>,
): { role: iam.Role; policy: iam.Policy } {
  const role = new iam.Role(stack, 'AuditReplication', {
    assumedBy: new iam.ServicePrincipal('s3.amazonaws.com', {
      conditions: { StringEquals: { 'aws:SourceAccount': Aws.ACCOUNT_ID } },
    }),
    description: `veritrail ${stack.stackName}: replication of the audit log to ${replica.bucketArn}`,
  });
  const policy = new iam.Policy(stack, 'Grants-audit-replication', {
    roles: [role],
    statements: [
      new iam.PolicyStatement({
        sid: 'SourceConfiguration',
        actions: ['s3:GetReplicationConfiguration', 's3:ListBucket'],
        resources: [audit.bucketArn],
      }),
      new iam.PolicyStatement({
        sid: 'SourceVersions',
        actions: [
          's3:GetObjectVersionForReplication',
          's3:GetObjectVersionAcl',
          's3:GetObjectVersionTagging',
          's3:GetObjectRetention',
          's3:GetObjectLegalHold',
        ],
        resources: [audit.arnForObjects('*')],
      }),
      new iam.PolicyStatement({
        sid: 'WriteReplicas',
        actions: ['s3:ReplicateObject', 's3:ReplicateTags'],
        resources: [`${replica.bucketArn}/*`],
      }),
      new iam.PolicyStatement({
        sid: 'DecryptSource',
        actions: ['kms:Decrypt'],
        resources: [dataKeyArn],
        conditions: {
          StringEquals: { 'kms:ViaService': `s3.${Aws.REGION}.amazonaws.com` },
          StringLike: { 'kms:EncryptionContext:aws:s3:arn': [audit.arnForObjects('*'), audit.bucketArn] },
        },
      }),
      new iam.PolicyStatement({
        sid: 'EncryptReplicas',
        actions: ['kms:Encrypt', 'kms:GenerateDataKey'],
        resources: [replica.keyArn],
        conditions: {
          StringEquals: { 'kms:ViaService': `s3.${replica.region}.amazonaws.com` },
          StringLike: {
            'kms:EncryptionContext:aws:s3:arn': [`${replica.bucketArn}/*`, replica.bucketArn],
          },
        },
      }),
    ],
  });
  const cfn = audit.node.defaultChild as s3.CfnBucket;
  cfn.replicationConfiguration = {
    role: role.roleArn,
    rules: [
      {
        id: 'audit-to-second-region',
        status: 'Enabled',
        priority: 1,
        filter: { prefix: '' },
        deleteMarkerReplication: { status: 'Disabled' },
        sourceSelectionCriteria: { sseKmsEncryptedObjects: { status: 'Enabled' } },
        destination: {
          bucket: replica.bucketArn,
          encryptionConfiguration: { replicaKmsKeyId: replica.keyArn },
        },
      },
    ],
  };
  // No dependency of the bucket on the policy: the policy names the bucket, so that would be a
  // cycle. On a new stage nothing is written before the deploy ends; when replication is turned on
  // for an existing stage, an entry written in between is marked FAILED, and S3 Batch Replication
  // copies it (docs/deploy.md).
  return { role, policy };
}
