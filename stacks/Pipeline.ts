/**
 * The Pipeline stack: every Lambda of functions/ and the training pipeline state machine. It
 * composes the function grants (stacks/grants.ts, from the rows of stacks/access.ts), the SageMaker
 * execution roles' grants (stacks/sagemaker-roles.ts) and the state machine (stacks/state-machine.ts).
 */
import path from 'node:path';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import { type FunctionCopyFilesProps, Function as SstFunction, type StackContext, use } from 'sst/constructs';
import { useProject } from 'sst/project.js';
import { trainerCodeBundle } from '../src/core/pipeline.js';
import { ACCESS, FUNCTION_NAMES, type FunctionName } from './access.js';
import {
  cedarWasmCopy,
  FUNCTIONS_WITH_CEDAR,
  NODEJS_BUNDLING,
  powertoolsLayer,
  processingProgramCopy,
} from './bundling.js';
import { publish, removeUnusedSstHandler } from './common.js';
import { suppressFunctionFindings, suppressTracingPolicy } from './compliance.js';
import { Database } from './Database.js';
import { functionStatements, vpcStatements } from './grants.js';
import { Identity } from './Identity.js';
import { Keys } from './Keys.js';
import { isolatedNetwork } from './network.js';
import { Storage } from './Storage.js';
import { grantProcessingRole, grantSageMakerRoles } from './sagemaker-roles.js';
import {
  type DeployedPipeline,
  LOG_RETENTION_DAYS,
  processingSettings,
  RESERVED_CONCURRENCY,
  transformMaxInstances,
  transformShardBytes,
  vpcMode,
} from './settings.js';
import { stateMachineIdentity, trainingStateMachine } from './state-machine.js';
import { deployedPipelines } from './units.js';
import { witnessEnvironment } from './Witness.js';

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
  processing: boolean,
): { copyFiles?: FunctionCopyFilesProps[] } {
  const files: FunctionCopyFilesProps[] = [];
  // Preprocess and Evaluate hand their processing jobs the job program, built next to their own bundle.
  if ((name === 'preprocess' || name === 'evaluate') && processing)
    files.push(processingProgramCopy(root, useProject().paths.out, name));
  // start, and RegisterRun for a Step Functions console start, run the start service on them.
  if (name === 'start' || name === 'register-run') files.push(...pipelineBundleFiles(pipelines, root));
  if (name === 'start' || name === 'check-code') files.push(...trainingCodeBundleFiles(pipelines, root));
  // Cedar's wasm next to the gate's bundle, where the bundled cedar-wasm reads it (stacks/bundling.ts).
  if (FUNCTIONS_WITH_CEDAR.includes(name)) files.push(cedarWasmCopy(root));
  return files.length > 0 ? { copyFiles: files } : {};
}

/**
 * Functions whose work grows with the data: 15 minutes and a full vCPU (1,769 MB). The training
 * callback and the reconciler finish the Train step, which hashes model.tar.gz and output.tar.gz
 * (at about 140 MB/s from S3 a 60 s function could not finish a model above some 8 GB).
 */
const LONG_RUNNING: ReadonlySet<FunctionName> = new Set([
  'list-dataset',
  'hash-batch',
  'hash-dataset',
  'preprocess',
  'evaluate',
  'sign',
  'training-callback',
  'reconcile',
]);

/**
 * Every Lambda in functions/ on nodejs22.x arm64 with active tracing, JSON logs into its own
 * encrypted log group with a retention period, and its own role holding exactly the statements of
 * its row in stacks/access.ts; the training pipeline state machine from the ASL file.
 */
export function Pipeline({ stack, app }: StackContext) {
  const { functionRoles, stateMachineRole, sagemakerRoles, processingRole } = use(Identity);
  const processing = processingRole ? processingSettings() : undefined;
  const maxTransformInstances = transformMaxInstances();
  const shardBytes = transformShardBytes();
  const { dataKey, dataKeyArn, attestationKeyArn, checkpointKeyArn } = use(Keys);
  const { landing, artifacts, audit, auditRetentionDays } = use(Storage);
  const { table } = use(Database);
  const pipelines = deployedPipelines();

  // A fixed name gives a known ARN, so every function can carry it without a circular reference
  // (the state machine depends on the functions' ARNs).
  const { stateMachineName, stateMachineArn } = stateMachineIdentity(stack, app);
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

  const statementsFor = functionStatements({
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
    ...(processingRole ? { processingRole } : {}),
  });

  const network = vpcMode() === 'isolated' ? isolatedNetwork(stack, dataKey) : undefined;
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
      // Preprocess writes the processed splits (about the raw size) to /tmp before storing them:
      // Lambda's largest ephemeral storage, instead of the 512 MB default.
      ...(name === 'preprocess' ? { diskSize: '10240 MB' as const } : {}),
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
        ...((name === 'preprocess' || name === 'evaluate') && processing && processingRole
          ? {
              VERITRAIL_PROCESSING_IMAGE: processing.image,
              VERITRAIL_PROCESSING_ROLE_ARN: processingRole.roleArn,
              VERITRAIL_PROCESSING_THRESHOLD_BYTES: String(processing.thresholdBytes),
              ...(processing.instanceType
                ? { VERITRAIL_PROCESSING_INSTANCE_TYPE: processing.instanceType }
                : {}),
            }
          : {}),
        ...(name === 'evaluate' && maxTransformInstances !== undefined
          ? { VERITRAIL_TRANSFORM_MAX_INSTANCES: String(maxTransformInstances) }
          : {}),
        ...(name === 'evaluate' && shardBytes !== undefined
          ? { VERITRAIL_TRANSFORM_SHARD_BYTES: String(shardBytes) }
          : {}),
      },
      ...copyFilesFor(name, pipelines, useProject().paths.root, processing !== undefined),
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
      statements: [
        ...statementsFor(ACCESS[name], logGroup),
        ...(network ? vpcStatements(stack, network) : []),
      ],
    });
    // Lambda checks at creation that the role may create the function's network interfaces.
    if (network) fn.node.addDependency(grants);
    suppressFunctionFindings(name, fn, grants, {
      inVpc: network !== undefined,
      processing: processing !== undefined,
    });
    suppressTracingPolicy(role);
    functions[name] = fn;
  }

  // SageMaker execution roles: the pipeline's data and its own output prefix (stacks/sagemaker-roles.ts).
  grantSageMakerRoles({ stack, pipelines, sagemakerRoles, artifacts, dataKeyArn });
  if (processing && processingRole) {
    grantProcessingRole({
      stack,
      role: processingRole,
      settings: processing,
      pipelines,
      landing,
      artifacts,
      dataKeyArn,
    });
  }

  // The state machine: the ASL file as is, ARNs substituted, its role's grants (stacks/state-machine.ts).
  const stateMachine = trainingStateMachine({
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
  });

  publish(stack, stack.stage, 'state-machine-arn', stateMachine.attrArn, 'Training pipeline state machine');
  publish(stack, stack.stage, 'start-function-name', functions.start.functionName, 'Lambda that starts runs');

  removeUnusedSstHandler(stack);
  return { functions, stateMachineArn: stateMachine.attrArn };
}
