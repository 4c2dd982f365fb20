/**
 * The IAM statements of each function's own role, built from its row in stacks/access.ts, and the
 * statements every function gets in VPC mode. The Pipeline stack attaches them, one policy per
 * function (`Grants-<name>`).
 */
import { ArnFormat, Stack } from 'aws-cdk-lib';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import { PROCESSING_CODE_PREFIX, PROCESSING_PREFIX, PROCESSING_VERIFY_PREFIX } from '../src/core/layout.js';
import { PREPROCESS_JOB_NAME_PREFIX } from '../src/core/processing.js';
import { SCORING_JOB_NAME_PREFIX, TRAINING_JOB_NAME_PREFIX } from '../src/core/rules.js';
import { type FunctionAccess, usesDataKey } from './access.js';
import { modelPackageArns, modelPackageGroups } from './approval.js';
import type { IsolatedNetwork } from './network.js';
import type { DeployedPipeline } from './settings.js';

/** The tags src/aws/sagemaker-trainer.ts puts on a training job (run id, pipeline); a test keeps them equal. */
export const TRAINING_JOB_TAG_KEYS = ['veritrail:run-id', 'veritrail:pipeline'] as const;

/** What Step Functions needs to deliver its logs to CloudWatch Logs (Developer Guide, "Logging"). */
export const LOG_DELIVERY_ACTIONS = [
  'logs:CreateLogDelivery',
  'logs:GetLogDelivery',
  'logs:UpdateLogDelivery',
  'logs:DeleteLogDelivery',
  'logs:ListLogDeliveries',
  'logs:PutResourcePolicy',
  'logs:DescribeResourcePolicies',
  'logs:DescribeLogGroups',
] as const;

/**
 * Actions that only accept `"Resource": "*"` (Service Authorization Reference: these list no
 * resource type). The wildcard test allows `*` for exactly these and nothing else.
 */
export const RESOURCE_STAR_ONLY_ACTIONS = [
  // X-Ray segments from Lambda and Step Functions tracing.
  'xray:PutTraceSegments',
  'xray:PutTelemetryRecords',
  'xray:GetSamplingRules',
  'xray:GetSamplingTargets',
  // Step Functions log delivery to CloudWatch Logs.
  ...LOG_DELIVERY_ACTIONS,
  // SageMaker containers pulling from ECR and publishing metrics.
  'ecr:GetAuthorizationToken',
  'cloudwatch:PutMetricData',
  // Task token callbacks (Step Functions: no resource type).
  'states:SendTaskSuccess',
  'states:SendTaskFailure',
  'states:SendTaskHeartbeat',
  // SageMaker VPC mode: describe calls take no resource.
  'ec2:DescribeNetworkInterfaces',
  'ec2:DescribeVpcs',
  'ec2:DescribeDhcpOptions',
  'ec2:DescribeSubnets',
  'ec2:DescribeSecurityGroups',
] as const;

/** What the statements name: the Pipeline stack's resources and those of the stacks before it. */
export interface GrantTargets {
  stack: Stack;
  pipelines: readonly DeployedPipeline[];
  landing: s3.IBucket;
  artifacts: s3.IBucket;
  audit: s3.IBucket;
  table: dynamodb.ITable;
  dataKeyArn: string;
  attestationKeyArn: string;
  checkpointKeyArn: string;
  stateMachineName: string;
  stateMachineArn: string;
  sagemakerRoles: ReadonlyMap<string, iam.IRole>;
  /** Preprocess's processing jobs' role, when the deployment enables them (stacks/settings.ts processingSettings). */
  processingRole?: iam.IRole;
}

/** The statements of one function's row of stacks/access.ts, its own log group first. */
export function functionStatements(
  targets: GrantTargets,
): (access: FunctionAccess, logGroup: logs.ILogGroup) => iam.PolicyStatement[] {
  const {
    stack,
    pipelines,
    landing,
    artifacts,
    audit,
    table,
    dataKeyArn,
    attestationKeyArn,
    checkpointKeyArn,
    stateMachineName,
    stateMachineArn,
    sagemakerRoles,
    processingRole,
  } = targets;
  const objectArns = (bucketArn: string, prefixes: readonly string[]) =>
    prefixes.map((p) => `${bucketArn}/${p}*`);
  const landingPrefixes = pipelines.map((p) => p.landingPrefix);

  return (access: FunctionAccess, logGroup: logs.ILogGroup): iam.PolicyStatement[] => {
    const s: iam.PolicyStatement[] = [
      new iam.PolicyStatement({
        sid: 'OwnLogGroup',
        actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
        resources: [logGroup.logGroupArn],
      }),
    ];
    if (access.landingRead) {
      s.push(
        new iam.PolicyStatement({
          sid: 'ReadLandingPrefixes',
          actions: ['s3:GetObject', 's3:GetObjectVersion'],
          resources: objectArns(landing.bucketArn, landingPrefixes),
        }),
        new iam.PolicyStatement({
          sid: 'ListLandingPrefixes',
          actions: ['s3:ListBucket', 's3:ListBucketVersions'],
          resources: [landing.bucketArn],
          conditions: { StringLike: { 's3:prefix': landingPrefixes.map((p) => `${p}*`) } },
        }),
      );
    }
    const artifactPrefixes = [
      ...new Set([...(access.artifactsRead ?? []), ...(access.artifactsWrite ?? [])]),
    ];
    if (artifactPrefixes.length > 0) {
      // Without s3:ListBucket, S3 answers HeadObject/GetObject on a missing key with 403 instead of
      // 404 (S3 API Reference, HeadObject "Permissions"), and every create-once write, which looks
      // first (src/cas.ts), would fail. Listing is limited to the prefixes the function works in.
      s.push(
        new iam.PolicyStatement({
          sid: 'ListArtifactPrefixes',
          actions: ['s3:ListBucket'],
          resources: [artifacts.bucketArn],
          conditions: { StringLike: { 's3:prefix': artifactPrefixes.map((p) => `${p}*`) } },
        }),
      );
    }
    if (access.artifactsRead?.length) {
      s.push(
        new iam.PolicyStatement({
          sid: 'ReadArtifacts',
          actions: ['s3:GetObject', 's3:GetObjectVersion'],
          resources: objectArns(artifacts.bucketArn, access.artifactsRead),
        }),
      );
    }
    if (access.artifactsWrite?.length) {
      s.push(
        new iam.PolicyStatement({
          sid: 'WriteArtifacts',
          actions: ['s3:PutObject'],
          resources: objectArns(artifacts.bucketArn, access.artifactsWrite),
        }),
      );
    }
    if (access.auditAppend) {
      s.push(
        new iam.PolicyStatement({
          sid: 'AppendAuditLog',
          actions: ['s3:PutObject', 's3:PutObjectRetention', 's3:GetObject', 's3:GetObjectVersion'],
          resources: [audit.arnForObjects('*')],
        }),
        new iam.PolicyStatement({
          sid: 'ListAuditLog',
          actions: ['s3:ListBucket'],
          resources: [audit.bucketArn],
        }),
      );
    }
    if (access.table?.length) {
      const itemActions = access.table.filter((a) => a !== 'dynamodb:Query');
      s.push(new iam.PolicyStatement({ sid: 'RunTable', actions: itemActions, resources: [table.tableArn] }));
      if (access.table.includes('dynamodb:Query')) {
        s.push(
          new iam.PolicyStatement({
            sid: 'QueryRuns',
            actions: ['dynamodb:Query'],
            resources: [table.tableArn, `${table.tableArn}/index/gsi1`],
          }),
        );
      }
    }
    if (usesDataKey(access)) {
      s.push(
        new iam.PolicyStatement({
          sid: 'DataKey',
          actions: ['kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey'],
          resources: [dataKeyArn],
        }),
      );
    }
    if (access.signAttestations) {
      s.push(
        new iam.PolicyStatement({
          sid: 'SignAttestations',
          actions: ['kms:Sign', 'kms:GetPublicKey'],
          resources: [attestationKeyArn],
        }),
      );
    }
    if (access.verifyAttestations && !access.signAttestations) {
      s.push(
        new iam.PolicyStatement({
          sid: 'VerifyAttestations',
          actions: ['kms:GetPublicKey'],
          resources: [attestationKeyArn],
        }),
      );
    }
    if (access.signCheckpoints) {
      s.push(
        new iam.PolicyStatement({
          sid: 'SignCheckpoints',
          actions: ['kms:Sign', 'kms:GetPublicKey'],
          resources: [checkpointKeyArn],
        }),
      );
    }
    if (access.startExecution) {
      s.push(
        new iam.PolicyStatement({
          sid: 'StartRun',
          actions: ['states:StartExecution'],
          resources: [stateMachineArn],
        }),
      );
    }
    if (access.taskCallback) {
      s.push(
        new iam.PolicyStatement({
          sid: 'TaskTokenCallback',
          actions: ['states:SendTaskSuccess', 'states:SendTaskFailure', 'states:SendTaskHeartbeat'],
          // Service Authorization Reference, AWS Step Functions: these actions list no resource type,
          // so only "*" authorizes them. The task token is the capability: it names one task of one
          // execution and is held only in the run table's TASK# item.
          resources: ['*'],
        }),
      );
    }
    const trainingJobs = Stack.of(stack).formatArn({
      service: 'sagemaker',
      resource: 'training-job',
      resourceName: `${TRAINING_JOB_NAME_PREFIX}*`,
    });
    if (access.createTrainingJob) {
      s.push(
        new iam.PolicyStatement({
          sid: 'CreateTrainingJobs',
          actions: ['sagemaker:CreateTrainingJob'],
          resources: [trainingJobs],
          // The request itself must encrypt. Service Authorization Reference, SageMaker, CreateTrainingJob:
          // its KMS condition keys are sagemaker:OutputKmsKeyArn and sagemaker:VolumeKmsKeyArn (the
          // older sagemaker:OutputKmsKey/VolumeKmsKey are not listed for this action, so a condition on
          // them never matches). VolumeKmsKeyId is left out for instance types with NVMe instance
          // storage, which SageMaker encrypts itself and refuses a key for: checked only when given.
          conditions: {
            Bool: { 'sagemaker:InterContainerTrafficEncryption': 'true' },
            ArnEquals: { 'sagemaker:OutputKmsKeyArn': dataKeyArn },
            ArnEqualsIfExists: { 'sagemaker:VolumeKmsKeyArn': dataKeyArn },
          },
        }),
        new iam.PolicyStatement({
          // Tag-on-create: CreateTrainingJob with Tags is also authorized as sagemaker:AddTags on
          // the new job, a request that carries none of the CreateTrainingJob keys above. Only the
          // run's own tags may be set (aws:TagKeys).
          sid: 'TagTrainingJobsOnCreate',
          actions: ['sagemaker:AddTags'],
          resources: [trainingJobs],
          conditions: { 'ForAllValues:StringEquals': { 'aws:TagKeys': [...TRAINING_JOB_TAG_KEYS] } },
        }),
        new iam.PolicyStatement({
          sid: 'DescribeOwnTrainingJobs',
          actions: ['sagemaker:DescribeTrainingJob'],
          resources: [trainingJobs],
        }),
      );
      if (sagemakerRoles.size > 0) {
        s.push(
          new iam.PolicyStatement({
            sid: 'PassPipelineSageMakerRoles',
            actions: ['iam:PassRole'],
            resources: [...sagemakerRoles.values()].map((r) => r.roleArn),
            conditions: { StringEquals: { 'iam:PassedToService': 'sagemaker.amazonaws.com' } },
          }),
          new iam.PolicyStatement({
            sid: 'TrainingVolumeGrants',
            actions: ['kms:CreateGrant', 'kms:DescribeKey'],
            resources: [dataKeyArn],
            conditions: { Bool: { 'kms:GrantIsForAWSResource': 'true' } },
          }),
        );
      }
    }
    if (access.processingJobs && processingRole) {
      // Only Preprocess re-hashes what its job wrote (Evaluate's count job's claims are checked otherwise).
      const rehashes = access.processingJobs.includes(PREPROCESS_JOB_NAME_PREFIX);
      const jobs = access.processingJobs.map((prefix) =>
        Stack.of(stack).formatArn({
          service: 'sagemaker',
          resource: 'processing-job',
          resourceName: `${prefix}*`,
        }),
      );
      s.push(
        new iam.PolicyStatement({
          // Service Authorization Reference, CreateProcessingJob: the request must isolate the
          // container's network, encrypt between instances and encrypt its outputs with the data key.
          sid: 'CreateProcessingJobs',
          actions: ['sagemaker:CreateProcessingJob'],
          resources: jobs,
          conditions: {
            Bool: {
              'sagemaker:NetworkIsolation': 'true',
              'sagemaker:InterContainerTrafficEncryption': 'true',
            },
            ArnEquals: { 'sagemaker:OutputKmsKeyArn': dataKeyArn },
            ArnEqualsIfExists: { 'sagemaker:VolumeKmsKeyArn': dataKeyArn },
          },
        }),
        new iam.PolicyStatement({
          sid: 'TagProcessingJobsOnCreate',
          actions: ['sagemaker:AddTags'],
          resources: jobs,
          conditions: { 'ForAllValues:StringEquals': { 'aws:TagKeys': [...TRAINING_JOB_TAG_KEYS] } },
        }),
        new iam.PolicyStatement({
          sid: 'DescribeProcessingJobs',
          actions: ['sagemaker:DescribeProcessingJob'],
          resources: jobs,
        }),
        new iam.PolicyStatement({
          sid: 'PassProcessingRole',
          actions: ['iam:PassRole'],
          resources: [processingRole.roleArn],
          conditions: { StringEquals: { 'iam:PassedToService': 'sagemaker.amazonaws.com' } },
        }),
        new iam.PolicyStatement({
          sid: 'ProcessingVolumeGrants',
          actions: ['kms:CreateGrant', 'kms:DescribeKey'],
          resources: [dataKeyArn],
          conditions: { Bool: { 'kms:GrantIsForAWSResource': 'true' } },
        }),
        new iam.PolicyStatement({
          sid: 'ProcessingProgramAndResults',
          actions: ['s3:ListBucket'],
          resources: [artifacts.bucketArn],
          conditions: {
            StringLike: {
              's3:prefix': [
                `${PROCESSING_CODE_PREFIX}*`,
                `${PROCESSING_PREFIX}*`,
                ...(rehashes ? [`${PROCESSING_VERIFY_PREFIX}*`] : []),
              ],
            },
          },
        }),
        new iam.PolicyStatement({
          sid: 'WriteProcessingProgram',
          actions: ['s3:PutObject'],
          resources: [artifacts.arnForObjects(`${PROCESSING_CODE_PREFIX}*`)],
        }),
        new iam.PolicyStatement({
          // The program's create-once write looks first (HeadObject is authorized as s3:GetObject).
          sid: 'ReadProcessingProgramAndResults',
          actions: ['s3:GetObject'],
          resources: [
            artifacts.arnForObjects(`${PROCESSING_CODE_PREFIX}*`),
            artifacts.arnForObjects(`${PROCESSING_PREFIX}*`),
          ],
        }),
      );
      if (rehashes) {
        s.push(
          new iam.PolicyStatement({
            // Preprocess's re-hash of its job's output spans invocations: its checkpoint, read back by
            // the next one (src/steps/verify-job-output.ts), under a prefix the processing role cannot write.
            sid: 'ProcessingVerifyCheckpoints',
            actions: ['s3:GetObject', 's3:PutObject'],
            resources: [artifacts.arnForObjects(`${PROCESSING_VERIFY_PREFIX}*`)],
          }),
        );
      }
    }
    if (access.batchTransform) {
      const vts = (resource: string) =>
        Stack.of(stack).formatArn({
          service: 'sagemaker',
          resource,
          resourceName: `${SCORING_JOB_NAME_PREFIX}*`,
        });
      s.push(
        new iam.PolicyStatement({
          // The model serves only inside SageMaker's network isolation (no egress for a model's code).
          sid: 'CreateScoringModels',
          actions: ['sagemaker:CreateModel'],
          resources: [vts('model')],
          conditions: { Bool: { 'sagemaker:NetworkIsolation': 'true' } },
        }),
        new iam.PolicyStatement({
          // Service Authorization Reference, CreateTransformJob: sagemaker:OutputKmsKeyArn / VolumeKmsKeyArn.
          sid: 'CreateScoringJobs',
          actions: ['sagemaker:CreateTransformJob'],
          resources: [vts('transform-job')],
          conditions: {
            ArnEquals: { 'sagemaker:OutputKmsKeyArn': dataKeyArn },
            ArnEqualsIfExists: { 'sagemaker:VolumeKmsKeyArn': dataKeyArn },
          },
        }),
        new iam.PolicyStatement({
          sid: 'DescribeScoringJobs',
          actions: ['sagemaker:DescribeTransformJob'],
          resources: [vts('transform-job')],
        }),
        new iam.PolicyStatement({
          sid: 'TagScoringOnCreate',
          actions: ['sagemaker:AddTags'],
          resources: [vts('model'), vts('transform-job')],
          conditions: { 'ForAllValues:StringEquals': { 'aws:TagKeys': [...TRAINING_JOB_TAG_KEYS] } },
        }),
      );
      if (sagemakerRoles.size > 0) {
        s.push(
          new iam.PolicyStatement({
            sid: 'PassPipelineSageMakerRolesToModels',
            actions: ['iam:PassRole'],
            resources: [...sagemakerRoles.values()].map((r) => r.roleArn),
            conditions: { StringEquals: { 'iam:PassedToService': 'sagemaker.amazonaws.com' } },
          }),
          new iam.PolicyStatement({
            sid: 'ScoringVolumeGrants',
            actions: ['kms:CreateGrant', 'kms:DescribeKey'],
            resources: [dataKeyArn],
            conditions: { Bool: { 'kms:GrantIsForAWSResource': 'true' } },
          }),
        );
      }
    }
    if (access.describeTrainingJob) {
      s.push(
        new iam.PolicyStatement({
          sid: 'DescribeOwnTrainingJobs',
          actions: ['sagemaker:DescribeTrainingJob'],
          resources: [trainingJobs],
        }),
      );
    }
    if (access.registerModel) {
      // Only this unit's groups (src/core/deployment.ts defaultGroupName: `veritrail-<pipeline>`,
      // pipeline names unique in the pipelines folder all units deploy from); packages live in their group.
      const registry = modelPackageArns(stack, modelPackageGroups(pipelines));
      s.push(
        new iam.PolicyStatement({
          sid: 'RegisterModels',
          actions: [
            'sagemaker:CreateModelPackage',
            'sagemaker:CreateModelPackageGroup',
            'sagemaker:DescribeModelPackageGroup',
            'sagemaker:AddTags',
          ],
          resources: [...registry.groups, ...registry.packages],
        }),
      );
    }
    if (access.describeExecutions) {
      s.push(
        new iam.PolicyStatement({
          sid: 'DescribeOwnExecutions',
          actions: ['states:DescribeExecution'],
          resources: [
            Stack.of(stack).formatArn({
              service: 'states',
              resource: 'execution',
              resourceName: `${stateMachineName}:*`,
              arnFormat: ArnFormat.COLON_RESOURCE_NAME,
            }),
          ],
        }),
      );
    }
    if (access.putEvents) {
      s.push(
        new iam.PolicyStatement({
          sid: 'LineageEvents',
          actions: ['events:PutEvents'],
          resources: [
            Stack.of(stack).formatArn({ service: 'events', resource: 'event-bus', resourceName: 'default' }),
          ],
        }),
      );
    }
    return s;
  };
}

/**
 * VPC mode: Lambda creates and removes the functions' network interfaces with the function's role
 * (Lambda Developer Guide, "Giving Lambda functions access to resources in an Amazon VPC").
 */
export function vpcStatements(stack: Stack, net: IsolatedNetwork): iam.PolicyStatement[] {
  const ec2Arn = (resource: string, id: string) =>
    Stack.of(stack).formatArn({ service: 'ec2', resource, resourceName: id });
  return [
    new iam.PolicyStatement({
      sid: 'VpcInterfaces',
      actions: ['ec2:CreateNetworkInterface'],
      resources: [
        ...net.vpc.isolatedSubnets.map((subnet) => ec2Arn('subnet', subnet.subnetId)),
        ec2Arn('security-group', net.functions.securityGroupId),
        ec2Arn('network-interface', '*'),
      ],
    }),
    new iam.PolicyStatement({
      sid: 'VpcInterfaceLifecycle',
      actions: [
        'ec2:DeleteNetworkInterface',
        'ec2:AssignPrivateIpAddresses',
        'ec2:UnassignPrivateIpAddresses',
      ],
      resources: [ec2Arn('network-interface', '*')],
    }),
    new iam.PolicyStatement({
      sid: 'VpcDescribe',
      actions: ['ec2:DescribeNetworkInterfaces', 'ec2:DescribeSubnets'],
      resources: ['*'],
    }),
  ];
}
