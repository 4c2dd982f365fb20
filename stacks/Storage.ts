import { DefaultStackSynthesizer, Duration, Fn, RemovalPolicy, type Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Bucket, type StackContext, use } from 'sst/constructs';
import { publish, removeUnusedSstHandler } from './common.js';
import { Keys } from './Keys.js';
import { auditRetentionDays } from './settings.js';

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

type BucketRole = 'landing' | 'artifacts' | 'audit';

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
export function Storage({ stack }: StackContext) {
  const { dataKey } = use(Keys);
  const retentionDays = auditRetentionDays();

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

  publish(stack, stack.stage, 'landing-bucket', landing.bucketName, 'S3 bucket where datasets land');
  publish(
    stack,
    stack.stage,
    'artifacts-bucket',
    artifacts.bucketName,
    'S3 bucket of content-addressed artifacts',
  );
  publish(stack, stack.stage, 'audit-bucket', audit.bucketName, 'S3 WORM bucket of the audit log');

  removeUnusedSstHandler(stack);
  return { landing, artifacts, audit, auditRetentionDays: retentionDays };
}
