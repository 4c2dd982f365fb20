/**
 * The SageMaker execution roles: one per pipeline that trains on SageMaker (`trainer.aws`), created
 * empty in the Identity stack with their trust, and granted in the Pipeline stack what that
 * pipeline's training and scoring jobs need (`Grants-sagemaker-<pipeline>`).
 */
import { ArnFormat, Aws, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import type { Stack as SstStack } from 'sst/constructs';
import {
  CONTENT_PREFIX,
  PROCESSING_CODE_PREFIX,
  PROCESSING_PREFIX,
  SCORING_PREFIX,
  TRAINING_PREFIX,
} from '../src/core/layout.js';
import { suppressProcessingRoleFindings, suppressSageMakerRoleFindings } from './compliance.js';
import { type DeployedPipeline, ecrRepositoryOf, type ProcessingSettings } from './settings.js';

/** One execution role per pipeline with `trainer.aws`, by pipeline name; trusted by SageMaker for this account only. */
export function sagemakerExecutionRoles(
  stack: SstStack,
  pipelines: readonly DeployedPipeline[],
): Map<string, iam.Role> {
  const account = stack.account;
  const sagemakerRoles = new Map<string, iam.Role>();
  for (const { definition } of pipelines) {
    if (!definition.trainer.aws) continue;
    sagemakerRoles.set(
      definition.name,
      new iam.Role(stack, `SageMaker-${definition.name}`, {
        assumedBy: new iam.ServicePrincipal('sagemaker.amazonaws.com', {
          conditions: { StringEquals: { 'aws:SourceAccount': account } },
        }),
        description: `veritrail ${stack.stage}: SageMaker training jobs of pipeline ${definition.name}`,
      }),
    );
  }
  return sagemakerRoles;
}

/** What the roles' statements name. */
export interface SageMakerGrantTargets {
  stack: Stack;
  pipelines: readonly DeployedPipeline[];
  sagemakerRoles: ReadonlyMap<string, iam.IRole>;
  artifacts: s3.IBucket;
  dataKeyArn: string;
}

/** Attaches each SageMaker execution role's grants (`Grants-sagemaker-<pipeline>`). */
export function grantSageMakerRoles({
  stack,
  pipelines,
  sagemakerRoles,
  artifacts,
  dataKeyArn,
}: SageMakerGrantTargets): void {
  // SageMaker execution roles: the pipeline's data (content-addressed inputs) and its own output prefix.
  for (const { definition } of pipelines) {
    const role = sagemakerRoles.get(definition.name);
    const aws = definition.trainer.aws;
    if (!role || !aws) continue;
    const outputPrefix = `${TRAINING_PREFIX}${definition.name}/`;
    // Batch Transform scoring (the same role): reads the model under the training output, writes
    // the predictions under scoring/<pipeline>/.
    const scoringPrefix = `${SCORING_PREFIX}${definition.name}/`;
    const statements = [
      new iam.PolicyStatement({
        sid: 'ReadTrainingInputs',
        actions: ['s3:GetObject', 's3:GetObjectVersion'],
        resources: [artifacts.arnForObjects(`${CONTENT_PREFIX}*`)],
      }),
      new iam.PolicyStatement({
        sid: 'ReadTrainedModelForScoring',
        actions: ['s3:GetObject', 's3:GetObjectVersion'],
        resources: [artifacts.arnForObjects(`${outputPrefix}*`)],
      }),
      new iam.PolicyStatement({
        sid: 'ListTrainingInputs',
        actions: ['s3:ListBucket'],
        resources: [artifacts.bucketArn],
        conditions: {
          StringLike: { 's3:prefix': [`${CONTENT_PREFIX}*`, `${outputPrefix}*`, `${scoringPrefix}*`] },
        },
      }),
      new iam.PolicyStatement({
        sid: 'WriteTrainingOutput',
        actions: ['s3:PutObject'],
        resources: [artifacts.arnForObjects(`${outputPrefix}*`)],
      }),
      new iam.PolicyStatement({
        sid: 'WriteScoringOutput',
        actions: ['s3:PutObject'],
        resources: [artifacts.arnForObjects(`${scoringPrefix}*`)],
      }),
      ...jobRuntimeStatements(stack, {
        label: 'Training',
        dataKeyArn,
        image: aws.image,
        // Batch Transform scoring jobs log in TransformJobs (SageMaker Developer Guide, "Log groups and streams").
        logGroups: ['/aws/sagemaker/TrainingJobs', '/aws/sagemaker/TransformJobs'],
      }),
    ];
    if (aws.vpc) {
      const ec2Arn = (resource: string, id: string) =>
        Stack.of(stack).formatArn({ service: 'ec2', resource, resourceName: id });
      statements.push(
        new iam.PolicyStatement({
          sid: 'VpcInterfaces',
          actions: ['ec2:CreateNetworkInterface'],
          resources: [
            ...aws.vpc.subnets.map((id) => ec2Arn('subnet', id)),
            ...aws.vpc.securityGroups.map((id) => ec2Arn('security-group', id)),
            ec2Arn('network-interface', '*'),
          ],
        }),
        new iam.PolicyStatement({
          sid: 'VpcInterfaceLifecycle',
          actions: [
            'ec2:CreateNetworkInterfacePermission',
            'ec2:DeleteNetworkInterface',
            'ec2:DeleteNetworkInterfacePermission',
          ],
          resources: [ec2Arn('network-interface', '*')],
        }),
        new iam.PolicyStatement({
          sid: 'VpcDescribe',
          actions: [
            'ec2:DescribeNetworkInterfaces',
            'ec2:DescribeVpcs',
            'ec2:DescribeDhcpOptions',
            'ec2:DescribeSubnets',
            'ec2:DescribeSecurityGroups',
          ],
          resources: ['*'],
        }),
      );
    }
    const grants = new iam.Policy(stack, `Grants-sagemaker-${definition.name}`, {
      roles: [role],
      statements,
    });
    suppressSageMakerRoleFindings(grants, definition.name);
  }
}

/** The role of Preprocess's processing jobs (only with VERITRAIL_PROCESSING_IMAGE): trusted by SageMaker for this account only. */
export function processingJobRole(
  stack: SstStack,
  settings: ProcessingSettings | undefined,
): iam.Role | undefined {
  if (!settings) return undefined;
  return new iam.Role(stack, 'SageMaker-processing', {
    assumedBy: new iam.ServicePrincipal('sagemaker.amazonaws.com', {
      conditions: { StringEquals: { 'aws:SourceAccount': stack.account } },
    }),
    description: `veritrail ${stack.stage}: Preprocess processing jobs (veritrail's own program)`,
  });
}

/**
 * The processing role's grants (`Grants-sagemaker-processing`): read the deployed pipelines'
 * landing prefixes (the raw files), the job config (`sha256/`) and the job program
 * (`processing-code/`); write the processed files at their content addresses (`sha256/`) and
 * result.json under `processing/`; the data key for its volume and outputs; its own log group; pull
 * the one pinned image's repository.
 */
export function grantProcessingRole(t: {
  stack: Stack;
  role: iam.IRole;
  settings: ProcessingSettings;
  pipelines: readonly DeployedPipeline[];
  landing: s3.IBucket;
  artifacts: s3.IBucket;
  dataKeyArn: string;
}): void {
  const landingPrefixes = t.pipelines.map((p) => p.landingPrefix);
  const statements = [
    new iam.PolicyStatement({
      sid: 'ReadRawData',
      actions: ['s3:GetObject'],
      resources: landingPrefixes.map((p) => t.landing.arnForObjects(`${p}*`)),
    }),
    new iam.PolicyStatement({
      sid: 'ListRawData',
      actions: ['s3:ListBucket'],
      resources: [t.landing.bucketArn],
      conditions: { StringLike: { 's3:prefix': landingPrefixes.map((p) => `${p}*`) } },
    }),
    new iam.PolicyStatement({
      sid: 'ReadJobInputs',
      actions: ['s3:GetObject'],
      resources: [
        t.artifacts.arnForObjects(`${CONTENT_PREFIX}*`),
        t.artifacts.arnForObjects(`${PROCESSING_CODE_PREFIX}*`),
        // Evaluate's count job reads the scoring job's predictions where Batch Transform wrote them.
        t.artifacts.arnForObjects(`${SCORING_PREFIX}*`),
      ],
    }),
    new iam.PolicyStatement({
      sid: 'ListJobInputs',
      actions: ['s3:ListBucket'],
      resources: [t.artifacts.bucketArn],
      conditions: {
        StringLike: {
          's3:prefix': [`${CONTENT_PREFIX}*`, `${PROCESSING_CODE_PREFIX}*`, `${SCORING_PREFIX}*`],
        },
      },
    }),
    new iam.PolicyStatement({
      sid: 'WriteJobOutputs',
      actions: ['s3:PutObject'],
      resources: [
        t.artifacts.arnForObjects(`${CONTENT_PREFIX}*`),
        t.artifacts.arnForObjects(`${PROCESSING_PREFIX}*`),
      ],
    }),
    ...jobRuntimeStatements(t.stack, {
      label: 'Processing',
      dataKeyArn: t.dataKeyArn,
      image: t.settings.image,
      logGroups: ['/aws/sagemaker/ProcessingJobs'],
    }),
  ];
  const grants = new iam.Policy(t.stack, 'Grants-sagemaker-processing', { roles: [t.role], statements });
  suppressProcessingRoleFindings(grants);
}

/**
 * What every SageMaker job role needs to run at all: the data key for its volume and output (and
 * grants for AWS resources), its jobs' log groups, metrics in `/aws/sagemaker/*` namespaces, and
 * pulling its one pinned image when that image is in ECR.
 */
function jobRuntimeStatements(
  stack: Stack,
  job: { label: 'Training' | 'Processing'; dataKeyArn: string; image: string; logGroups: readonly string[] },
): iam.PolicyStatement[] {
  const statements = [
    new iam.PolicyStatement({
      sid: 'DataKeyForVolumesAndOutput',
      actions: ['kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey', 'kms:DescribeKey'],
      resources: [job.dataKeyArn],
    }),
    new iam.PolicyStatement({
      sid: 'DataKeyGrants',
      actions: ['kms:CreateGrant'],
      resources: [job.dataKeyArn],
      conditions: { Bool: { 'kms:GrantIsForAWSResource': 'true' } },
    }),
    new iam.PolicyStatement({
      sid: `${job.label}Logs`,
      actions: [
        'logs:CreateLogGroup',
        'logs:CreateLogStream',
        'logs:PutLogEvents',
        'logs:DescribeLogStreams',
      ],
      resources: job.logGroups.map((group) =>
        Stack.of(stack).formatArn({
          service: 'logs',
          resource: 'log-group',
          resourceName: `${group}:*`,
          arnFormat: ArnFormat.COLON_RESOURCE_NAME,
        }),
      ),
    }),
    new iam.PolicyStatement({
      sid: `${job.label}Metrics`,
      actions: ['cloudwatch:PutMetricData'],
      resources: ['*'],
      conditions: { StringLike: { 'cloudwatch:namespace': '/aws/sagemaker/*' } },
    }),
  ];
  const repository = ecrRepositoryOf(job.image);
  if (repository) {
    statements.push(
      new iam.PolicyStatement({ sid: 'EcrLogin', actions: ['ecr:GetAuthorizationToken'], resources: ['*'] }),
      new iam.PolicyStatement({
        sid: 'PullPinnedImage',
        actions: ['ecr:BatchGetImage', 'ecr:GetDownloadUrlForLayer', 'ecr:BatchCheckLayerAvailability'],
        resources: [
          `arn:${Aws.PARTITION}:ecr:${repository.region}:${repository.account}:repository/${repository.name}`,
        ],
      }),
    );
  }
  return statements;
}
