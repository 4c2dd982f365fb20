/**
 * The training pipeline state machine: the ASL file deployed as is, its definition substitutions
 * (task function ARNs, bucket names), its log group and its role's grants, the HashBatches
 * Distributed Map's included.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { ArnFormat, Aws, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import type { Function as SstFunction } from 'sst/constructs';
import { LISTING_PREFIX, MAP_RESULTS_PREFIX } from '../src/core/layout.js';
import { type FunctionName, STATE_MACHINE_TASKS } from './access.js';
import { suppressStateMachineFindings } from './compliance.js';
import { LOG_DELIVERY_ACTIONS } from './grants.js';
import { LOG_RETENTION_DAYS, StackSettingsError } from './settings.js';

/** The ASL definition deployed as is; ARNs come in through definition substitutions. */
export const STATE_MACHINE_FILE = 'state-machines/training-pipeline.asl.json';

/**
 * The buckets the ASL names by definition substitution, with the Storage bucket each stands for:
 * the HashBatches Distributed Map's ItemReader reads the dataset listing from the artifacts bucket,
 * and its ResultWriter writes the Map Run's results there.
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
 * The state machine's fixed name (`<stage>-veritrail-training-pipeline`) and its ARN, known before
 * the state machine exists: every function can carry it without a circular reference (the state
 * machine depends on the functions' ARNs).
 */
export function stateMachineIdentity(
  stack: Stack,
  app: { logicalPrefixedName(name: string): string },
): { stateMachineName: string; stateMachineArn: string } {
  const stateMachineName = app.logicalPrefixedName('training-pipeline');
  const stateMachineArn = Stack.of(stack).formatArn({
    service: 'states',
    resource: 'stateMachine',
    resourceName: stateMachineName,
    arnFormat: ArnFormat.COLON_RESOURCE_NAME,
  });
  return { stateMachineName, stateMachineArn };
}

/** What the state machine invokes, reads and logs with. */
export interface StateMachineTargets {
  stack: Stack;
  functions: Readonly<Record<FunctionName, SstFunction>>;
  stateMachineRole: iam.IRole;
  stateMachineName: string;
  stateMachineArn: string;
  landing: s3.IBucket;
  artifacts: s3.IBucket;
  audit: s3.IBucket;
  dataKey: kms.IKey;
  dataKeyArn: string;
}

/** The state machine, its encrypted log group and its role's grants (`Grants-state-machine`). */
export function trainingStateMachine({
  stack,
  functions,
  stateMachineRole,
  stateMachineName,
  stateMachineArn,
  landing,
  artifacts,
  audit,
  dataKey,
  dataKeyArn,
}: StateMachineTargets): sfn.CfnStateMachine {
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
      // Its ResultWriter exports the children's results under map-results/ as this role (Step
      // Functions Developer Guide, "IAM policies for ResultWriter"): s3:PutObject (every part of a
      // multipart upload too), and the data key through S3, which encrypts each new object under
      // the bucket's default SSE-KMS with a data key it asks for as this role (S3 User Guide,
      // "Using SSE-KMS": kms:GenerateDataKey to upload; the kms:Decrypt above covers the multipart
      // uploads of large result files).
      new iam.PolicyStatement({
        sid: 'WriteMapResults',
        actions: ['s3:PutObject'],
        resources: [artifacts.arnForObjects(`${MAP_RESULTS_PREFIX}*`)],
      }),
      new iam.PolicyStatement({
        sid: 'EncryptMapResults',
        actions: ['kms:GenerateDataKey'],
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
        actions: [...LOG_DELIVERY_ACTIONS],
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
  return stateMachine;
}
