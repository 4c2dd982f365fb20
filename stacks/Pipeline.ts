import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { ArnFormat, Aws, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { type FunctionCopyFilesProps, Function as SstFunction, type StackContext, use } from 'sst/constructs';
import { useProject } from 'sst/project.js';
import { trainerCodeBundle } from '../src/core/pipeline.js';
import { SCORING_JOB_NAME_PREFIX, TRAINING_JOB_NAME_PREFIX } from '../src/core/rules.js';

import {
  ACCESS,
  CONTENT_PREFIX,
  FUNCTION_NAMES,
  type FunctionAccess,
  type FunctionName,
  LISTING_PREFIX,
  SCORING_PREFIX,
  STATE_MACHINE_TASKS,
  TRAINING_PREFIX,
  usesDataKey,
} from './access.js';
import { modelPackageArns, modelPackageGroups } from './approval.js';
import { cedarWasmCopy, FUNCTIONS_WITH_CEDAR, NODEJS_BUNDLING, powertoolsLayer } from './bundling.js';
import { publish, removeUnusedSstHandler } from './common.js';
import {
  suppressFunctionFindings,
  suppressSageMakerRoleFindings,
  suppressStateMachineFindings,
  suppressTracingPolicy,
} from './compliance.js';
import { Database } from './Database.js';
import { Identity } from './Identity.js';
import { Keys } from './Keys.js';
import { type IsolatedNetwork, isolatedNetwork } from './network.js';
import { Storage } from './Storage.js';
import {
  type DeployedPipeline,
  LOG_RETENTION_DAYS,
  RESERVED_CONCURRENCY,
  StackSettingsError,
  vpcMode,
} from './settings.js';
import { deployedPipelines } from './units.js';
import { witnessEnvironment } from './Witness.js';

/** The tags src/aws/sagemaker-trainer.ts puts on a training job (run id, pipeline); a test keeps them equal. */
export const TRAINING_JOB_TAG_KEYS = ['veritrail:run-id', 'veritrail:pipeline'] as const;

/** The ASL definition deployed as is; ARNs come in through definition substitutions. */
export const STATE_MACHINE_FILE = 'state-machines/training-pipeline.asl.json';

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
  // Step Functions log delivery to CloudWatch Logs (Step Functions Developer Guide, "Logging").
  'logs:CreateLogDelivery',
  'logs:GetLogDelivery',
  'logs:UpdateLogDelivery',
  'logs:DeleteLogDelivery',
  'logs:ListLogDeliveries',
  'logs:PutResourcePolicy',
  'logs:DescribeResourcePolicies',
  'logs:DescribeLogGroups',
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

/**
 * The buckets the ASL names by definition substitution, with the Storage bucket each stands for:
 * the HashBatches Distributed Map's ItemReader reads the dataset listing from the artifacts bucket.
 */
export const STATE_MACHINE_BUCKETS = { ArtifactsBucket: 'artifacts' } as const;

/**
 * The Distributed Map's label (its `Label` in the ASL): Step Functions names the Map Run and its
 * child executions `<state machine>/<label>:<id>`.
 */
export const HASH_BATCHES_LABEL = 'HashBatches';

/** Reads the ASL file and checks that every `${Var}` in it is one this stack substitutes. */
export function readStateMachineDefinition(file: string = path.resolve(STATE_MACHINE_FILE)): string {
  if (!existsSync(file)) {
    throw new StackSettingsError(
      'SETTING_INVALID',
      `${file} is missing. The Pipeline stack deploys ${STATE_MACHINE_FILE} as is; run from the repository root.`,
    );
  }
  const text = readFileSync(file, 'utf8');
  try {
    JSON.parse(text);
  } catch (cause) {
    throw new StackSettingsError('SETTING_INVALID', `${file} is not valid JSON.`, { cause });
  }
  const known = new Set<string>([
    ...Object.values(STATE_MACHINE_TASKS),
    ...Object.keys(STATE_MACHINE_BUCKETS),
  ]);
  for (const m of text.matchAll(/\$\{([A-Za-z0-9_]+)\}/g)) {
    const name = m[1] as string;
    if (!known.has(name)) {
      throw new StackSettingsError(
        'SETTING_INVALID',
        `${file} uses \${${name}}, which the Pipeline stack does not substitute. Known: ${[...known].join(', ')}.`,
      );
    }
  }
  return text;
}

/**
 * Where the start function finds the deployed pipeline definitions at run time: `pipelines/` at
 * the root of its bundle, which Lambda unpacks to LAMBDA_TASK_ROOT, `/var/task` (Lambda Developer
 * Guide, "Defined runtime environment variables").
 */
export const BUNDLED_PIPELINES_DIR = 'pipelines';
export const LAMBDA_TASK_ROOT = '/var/task';

/**
 * The start function's bundle gets every deployed definition as `pipelines/<name>.json`, byte for
 * byte the file that was validated at synth time (SST copies `from`, relative to the project root,
 * into the bundle at `to`). The start function validates and stores each one content-addressed.
 */
export function pipelineBundleFiles(
  pipelines: readonly DeployedPipeline[],
  root: string,
): FunctionCopyFilesProps[] {
  return pipelines.map(({ definition, file }) => ({
    from: path.relative(root, file),
    to: `${BUNDLED_PIPELINES_DIR}/${definition.name}.json`,
  }));
}

/**
 * Training code as the deployment bundles it: each SageMaker pipeline's `trainer.code` folder (and
 * its vulnerability report) at `code/<pipeline>/…` (src/core/pipeline.ts trainerCodeBundle), for
 * CheckCode, which scans and ships it, and for start, which hashes it for the retrain decision.
 */
export function trainingCodeBundleFiles(
  pipelines: readonly DeployedPipeline[],
  root: string,
): FunctionCopyFilesProps[] {
  return pipelines.flatMap(({ definition, file }) =>
    trainerCodeBundle(definition).map(({ from, to }) => ({
      from: path.relative(root, path.resolve(path.dirname(file), from)),
      to,
    })),
  );
}

/** The files a function's bundle carries besides its code. */
function copyFilesFor(
  name: FunctionName,
  pipelines: readonly DeployedPipeline[],
  root: string,
): { copyFiles?: FunctionCopyFilesProps[] } {
  const files: FunctionCopyFilesProps[] = [];
  // start, and RegisterRun for a Step Functions console start, run the start service on them.
  if (name === 'start' || name === 'register-run') files.push(...pipelineBundleFiles(pipelines, root));
  if (name === 'start' || name === 'check-code') files.push(...trainingCodeBundleFiles(pipelines, root));
  // Cedar's wasm next to the gate's bundle, where the bundled cedar-wasm reads it (stacks/bundling.ts).
  if (FUNCTIONS_WITH_CEDAR.includes(name)) files.push(cedarWasmCopy(root));
  return files.length > 0 ? { copyFiles: files } : {};
}

const LONG_RUNNING: ReadonlySet<FunctionName> = new Set([
  'list-dataset',
  'hash-batch',
  'hash-dataset',
  'preprocess',
  'evaluate',
  'sign',
]);

/**
 * Every Lambda in functions/ on nodejs22.x arm64 with active tracing, JSON logs into its own
 * encrypted log group with a retention period, and its own role holding exactly the statements of
 * its row in stacks/access.ts; the training pipeline state machine from the ASL file.
 */
export function Pipeline({ stack, app }: StackContext) {
  const { functionRoles, stateMachineRole, sagemakerRoles } = use(Identity);
  const { dataKey, dataKeyArn, attestationKeyArn, checkpointKeyArn } = use(Keys);
  const { landing, artifacts, audit, auditRetentionDays } = use(Storage);
  const { table } = use(Database);
  const pipelines = deployedPipelines();

  // A fixed name gives a known ARN, so every function can carry it without a circular reference
  // (the state machine depends on the functions' ARNs).
  const stateMachineName = app.logicalPrefixedName('training-pipeline');
  const stateMachineArn = Stack.of(stack).formatArn({
    service: 'states',
    resource: 'stateMachine',
    resourceName: stateMachineName,
    arnFormat: ArnFormat.COLON_RESOURCE_NAME,
  });
  const sagemakerRoleArns: Record<string, string> = {};
  for (const [name, role] of sagemakerRoles) sagemakerRoleArns[name] = role.roleArn;

  const environment: Record<string, string> = {
    VERITRAIL_TABLE: table.tableName,
    VERITRAIL_LANDING_BUCKET: landing.bucketName,
    VERITRAIL_ARTIFACTS_BUCKET: artifacts.bucketName,
    VERITRAIL_AUDIT_BUCKET: audit.bucketName,
    VERITRAIL_DATA_KEY_ARN: dataKeyArn,
    VERITRAIL_SIGNING_KEY_ARN: attestationKeyArn,
    VERITRAIL_CHECKPOINT_KEY_ARN: checkpointKeyArn,
    VERITRAIL_STATE_MACHINE_ARN: stateMachineArn,
    VERITRAIL_AUDIT_RETENTION_DAYS: String(auditRetentionDays),
    // One execution role per pipeline, by pipeline name: a run trains under its own pipeline's role.
    VERITRAIL_SAGEMAKER_ROLE_ARNS: stack.toJsonString(sagemakerRoleArns),
  };

  const witnessesOf = witnessEnvironment(stack);

  const objectArns = (bucketArn: string, prefixes: readonly string[]) =>
    prefixes.map((p) => `${bucketArn}/${p}*`);
  const landingPrefixes = pipelines.map((p) => p.landingPrefix);

  const statementsFor = (access: FunctionAccess, logGroup: logs.ILogGroup): iam.PolicyStatement[] => {
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

  const network = vpcMode() === 'isolated' ? isolatedNetwork(stack, dataKey) : undefined;
  // VPC mode: Lambda creates and removes the functions' network interfaces with the function's role
  // (Lambda Developer Guide, "Giving Lambda functions access to resources in an Amazon VPC").
  const vpcStatements = (net: IsolatedNetwork): iam.PolicyStatement[] => {
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
  };
  const functions = {} as Record<FunctionName, SstFunction>;
  for (const name of FUNCTION_NAMES) {
    const role = functionRoles[name];
    const logGroup = new logs.LogGroup(stack, `Logs-${name}`, {
      retention: LOG_RETENTION_DAYS as logs.RetentionDays,
      encryptionKey: dataKey,
    });
    const fn = new SstFunction(stack, name, {
      handler: `functions/${name}.handler`,
      runtime: 'nodejs22.x',
      architecture: 'arm_64',
      tracing: 'active',
      memorySize: LONG_RUNNING.has(name) ? 1769 : 512,
      timeout: LONG_RUNNING.has(name) ? 900 : 60,
      reservedConcurrentExecutions: RESERVED_CONCURRENCY[name],
      ...(network
        ? { vpc: network.vpc, vpcSubnets: network.subnets, securityGroups: [network.functions] }
        : {}),
      role,
      environment: {
        ...(name === 'start' || name === 'register-run'
          ? { ...environment, VERITRAIL_PIPELINES_DIR: `${LAMBDA_TASK_ROOT}/${BUNDLED_PIPELINES_DIR}` }
          : environment),
        // The witnesses the checkpointing functions ask (stacks/Witness.ts).
        ...witnessesOf(name),
      },
      ...copyFilesFor(name, pipelines, useProject().paths.root),
      nodejs: NODEJS_BUNDLING,
      layers: [powertoolsLayer(stack)],
    });
    const cfn = fn.node.defaultChild as lambda.CfnFunction;
    // LoggingConfig (JSON logs, own log group) is newer than aws-cdk-lib 2.72: set it directly.
    cfn.addPropertyOverride('LoggingConfig', {
      LogFormat: 'JSON',
      ApplicationLogLevel: 'INFO',
      SystemLogLevel: 'INFO',
      LogGroup: logGroup.logGroupName,
    });
    const grants = new iam.Policy(stack, `Grants-${name}`, {
      roles: [role],
      statements: [...statementsFor(ACCESS[name], logGroup), ...(network ? vpcStatements(network) : [])],
    });
    // Lambda checks at creation that the role may create the function's network interfaces.
    if (network) fn.node.addDependency(grants);
    suppressFunctionFindings(name, fn, grants, { inVpc: network !== undefined });
    suppressTracingPolicy(role);
    functions[name] = fn;
  }

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
      new iam.PolicyStatement({
        sid: 'DataKeyForVolumesAndOutput',
        actions: ['kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey', 'kms:DescribeKey'],
        resources: [dataKeyArn],
      }),
      new iam.PolicyStatement({
        sid: 'DataKeyGrants',
        actions: ['kms:CreateGrant'],
        resources: [dataKeyArn],
        conditions: { Bool: { 'kms:GrantIsForAWSResource': 'true' } },
      }),
      new iam.PolicyStatement({
        sid: 'TrainingLogs',
        actions: [
          'logs:CreateLogGroup',
          'logs:CreateLogStream',
          'logs:PutLogEvents',
          'logs:DescribeLogStreams',
        ],
        resources: [
          Stack.of(stack).formatArn({
            service: 'logs',
            resource: 'log-group',
            resourceName: '/aws/sagemaker/TrainingJobs:*',
            arnFormat: ArnFormat.COLON_RESOURCE_NAME,
          }),
          // Batch Transform scoring jobs log here (SageMaker Developer Guide, "Log groups and streams").
          Stack.of(stack).formatArn({
            service: 'logs',
            resource: 'log-group',
            resourceName: '/aws/sagemaker/TransformJobs:*',
            arnFormat: ArnFormat.COLON_RESOURCE_NAME,
          }),
        ],
      }),
      new iam.PolicyStatement({
        sid: 'TrainingMetrics',
        actions: ['cloudwatch:PutMetricData'],
        resources: ['*'],
        conditions: { StringLike: { 'cloudwatch:namespace': '/aws/sagemaker/*' } },
      }),
    ];
    const ecr = /^(\d{12})\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?\/([^@]+)@/.exec(aws.image);
    if (ecr) {
      const [, account, region, repository] = ecr;
      statements.push(
        new iam.PolicyStatement({
          sid: 'EcrLogin',
          actions: ['ecr:GetAuthorizationToken'],
          resources: ['*'],
        }),
        new iam.PolicyStatement({
          sid: 'PullPinnedImage',
          actions: ['ecr:BatchGetImage', 'ecr:GetDownloadUrlForLayer', 'ecr:BatchCheckLayerAvailability'],
          resources: [`arn:${Aws.PARTITION}:ecr:${region}:${account}:repository/${repository}`],
        }),
      );
    }
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

  // The state machine: the ASL file as is, ARNs substituted, logging ALL to an encrypted group, tracing on.
  const definitionString = readStateMachineDefinition();
  const definitionSubstitutions: Record<string, string> = {};
  for (const [name, variable] of Object.entries(STATE_MACHINE_TASKS)) {
    definitionSubstitutions[variable] = functions[name as FunctionName].functionArn;
  }
  const buckets = { artifacts, landing, audit };
  for (const [variable, bucket] of Object.entries(STATE_MACHINE_BUCKETS)) {
    definitionSubstitutions[variable] = buckets[bucket].bucketName;
  }
  const stateMachineLogs = new logs.LogGroup(stack, 'Logs-state-machine', {
    retention: LOG_RETENTION_DAYS as logs.RetentionDays,
    encryptionKey: dataKey,
  });
  const invoked = Object.keys(STATE_MACHINE_TASKS).map((n) => functions[n as FunctionName].functionArn);
  const stateMachinePolicy = new iam.Policy(stack, 'Grants-state-machine', {
    roles: [stateMachineRole],
    statements: [
      new iam.PolicyStatement({
        sid: 'InvokeStepFunctions',
        actions: ['lambda:InvokeFunction'],
        resources: [...invoked, ...invoked.map((arn) => `${arn}:*`)],
      }),
      // The HashBatches Distributed Map (Step Functions Developer Guide, "IAM policies for using
      // Distributed Map states"): its ItemReader reads the dataset listing as this role, S3
      // decrypting it with the data key on the role's behalf (S3 User Guide, "Using SSE-KMS"), and
      // each batch runs as a child execution of this very state machine, which Step Functions
      // starts, describes and stops as this role.
      new iam.PolicyStatement({
        sid: 'ReadDatasetListings',
        actions: ['s3:GetObject'],
        resources: [artifacts.arnForObjects(`${LISTING_PREFIX}*`)],
      }),
      new iam.PolicyStatement({
        sid: 'DecryptDatasetListings',
        actions: ['kms:Decrypt'],
        resources: [dataKeyArn],
        conditions: { StringEquals: { 'kms:ViaService': `s3.${Aws.REGION}.amazonaws.com` } },
      }),
      new iam.PolicyStatement({
        sid: 'StartHashBatches',
        actions: ['states:StartExecution'],
        resources: [stateMachineArn],
      }),
      new iam.PolicyStatement({
        sid: 'ManageHashBatches',
        actions: ['states:DescribeExecution', 'states:StopExecution'],
        resources: [
          Stack.of(stack).formatArn({
            service: 'states',
            resource: 'execution',
            resourceName: `${stateMachineName}/${HASH_BATCHES_LABEL}:*`,
            arnFormat: ArnFormat.COLON_RESOURCE_NAME,
          }),
        ],
      }),
      new iam.PolicyStatement({
        sid: 'LogDelivery',
        actions: [
          'logs:CreateLogDelivery',
          'logs:GetLogDelivery',
          'logs:UpdateLogDelivery',
          'logs:DeleteLogDelivery',
          'logs:ListLogDeliveries',
          'logs:PutResourcePolicy',
          'logs:DescribeResourcePolicies',
          'logs:DescribeLogGroups',
        ],
        resources: ['*'],
      }),
      new iam.PolicyStatement({
        sid: 'Tracing',
        actions: [
          'xray:PutTraceSegments',
          'xray:PutTelemetryRecords',
          'xray:GetSamplingRules',
          'xray:GetSamplingTargets',
        ],
        resources: ['*'],
      }),
    ],
  });
  const stateMachine = new sfn.CfnStateMachine(stack, 'TrainingPipeline', {
    stateMachineName,
    stateMachineType: 'STANDARD',
    roleArn: stateMachineRole.roleArn,
    definitionString,
    definitionSubstitutions,
    loggingConfiguration: {
      level: 'ALL',
      includeExecutionData: true,
      destinations: [{ cloudWatchLogsLogGroup: { logGroupArn: stateMachineLogs.logGroupArn } }],
    },
    tracingConfiguration: { enabled: true },
  });
  suppressStateMachineFindings(stateMachinePolicy);
  // The role must hold its grants before Step Functions validates the logging destination.
  stateMachine.node.addDependency(stateMachinePolicy);

  publish(stack, stack.stage, 'state-machine-arn', stateMachine.attrArn, 'Training pipeline state machine');
  publish(stack, stack.stage, 'start-function-name', functions.start.functionName, 'Lambda that starts runs');

  removeUnusedSstHandler(stack);
  return { functions, stateMachineArn: stateMachine.attrArn };
}
