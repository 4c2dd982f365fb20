/**
 * The AWS runtime: every port over its SDK adapter, built once per Lambda cold start from the
 * function's environment (names and ARNs the stack passes in) and the standard SDK chain
 * (credentials, region, endpoints: src/aws/clients.ts).
 */

import { EventBridgeLineageSink } from '../app/lineage.js';
import { type ObjectAuditLog, openAuditLog } from '../audit/log.js';
import { VeritrailError } from '../core/errors.js';
import type { Runtime } from '../runtime.js';
import { type AwsClientOptions, type AwsClients, createAwsClients } from './clients.js';
import { DynamoRunStore } from './dynamo-run-store.js';
import { EventPublisher } from './events.js';
import { KmsSigner } from './kms-signer.js';
import { S3DatasetSource } from './s3-dataset-source.js';
import { S3ObjectStore } from './s3-object-store.js';
import { SageMakerRegistry } from './sagemaker-registry.js';
import { SageMakerTrainer } from './sagemaker-trainer.js';
import { StepFunctions } from './sfn.js';

/** Seven years (7 × 365 + 2 leap days), a common record-keeping period for regulated models. */
export const DEFAULT_AUDIT_RETENTION_DAYS = 2557;

/** Environment variables the stack sets on every function. */
export const REQUIRED_ENV = [
  'VERITRAIL_TABLE',
  'VERITRAIL_LANDING_BUCKET',
  'VERITRAIL_ARTIFACTS_BUCKET',
  'VERITRAIL_AUDIT_BUCKET',
  'VERITRAIL_DATA_KEY_ARN',
  'VERITRAIL_SIGNING_KEY_ARN',
  'VERITRAIL_CHECKPOINT_KEY_ARN',
  'VERITRAIL_STATE_MACHINE_ARN',
] as const;
export type RequiredEnv = (typeof REQUIRED_ENV)[number];

export interface AwsConfig {
  table: string;
  buckets: { landing: string; artifacts: string; audit: string };
  dataKeyArn: string;
  signingKeyArn: string;
  checkpointKeyArn: string;
  /**
   * SageMaker execution role per pipeline, from VERITRAIL_SAGEMAKER_ROLE_ARNS (JSON object
   * `{"<pipeline>": "arn:…:role/…"}`; the stack sets it, `{}` when no pipeline trains on SageMaker).
   */
  sagemakerRoleArns: Record<string, string>;
  /** VERITRAIL_SAGEMAKER_ROLE_ARN: the role of any pipeline not in the map (outside the stack). */
  sagemakerRoleArn?: string;
  stateMachineArn: string;
  auditRetentionDays: number;
}

/** Reads and checks the configuration; names every missing or malformed variable. */
export function readAwsConfig(env: Record<string, string | undefined>): AwsConfig {
  const missing = REQUIRED_ENV.filter((name) => !env[name]?.trim());
  if (missing.length > 0) {
    throw new VeritrailError(
      'USAGE',
      `missing environment variable${missing.length > 1 ? 's' : ''} ${missing.join(', ')}: the veritrail stack sets ${missing.length > 1 ? 'them' : 'it'} on every function; set ${missing.length > 1 ? 'them' : 'it'} when running outside it`,
      { details: { missing } },
    );
  }
  const get = (name: RequiredEnv): string => (env[name] ?? '').trim();
  let auditRetentionDays = DEFAULT_AUDIT_RETENTION_DAYS;
  const days = env.VERITRAIL_AUDIT_RETENTION_DAYS?.trim();
  if (days) {
    if (!/^[1-9][0-9]{0,5}$/.test(days)) {
      throw new VeritrailError(
        'USAGE',
        `VERITRAIL_AUDIT_RETENTION_DAYS must be a whole number of days (1 or more), got "${days}"`,
      );
    }
    auditRetentionDays = Number(days);
  }
  for (const name of [
    'VERITRAIL_DATA_KEY_ARN',
    'VERITRAIL_SIGNING_KEY_ARN',
    'VERITRAIL_CHECKPOINT_KEY_ARN',
    'VERITRAIL_STATE_MACHINE_ARN',
  ] as const) {
    if (!get(name).startsWith('arn:')) {
      throw new VeritrailError('USAGE', `${name} must be an ARN (arn:...), got "${get(name)}"`);
    }
  }
  const sagemakerRoleArn = env.VERITRAIL_SAGEMAKER_ROLE_ARN?.trim();
  if (sagemakerRoleArn && !sagemakerRoleArn.startsWith('arn:')) {
    throw new VeritrailError(
      'USAGE',
      `VERITRAIL_SAGEMAKER_ROLE_ARN must be an ARN (arn:...), got "${sagemakerRoleArn}"`,
    );
  }
  return {
    table: get('VERITRAIL_TABLE'),
    buckets: {
      landing: get('VERITRAIL_LANDING_BUCKET'),
      artifacts: get('VERITRAIL_ARTIFACTS_BUCKET'),
      audit: get('VERITRAIL_AUDIT_BUCKET'),
    },
    dataKeyArn: get('VERITRAIL_DATA_KEY_ARN'),
    signingKeyArn: get('VERITRAIL_SIGNING_KEY_ARN'),
    checkpointKeyArn: get('VERITRAIL_CHECKPOINT_KEY_ARN'),
    sagemakerRoleArns: parseRoleArns(env.VERITRAIL_SAGEMAKER_ROLE_ARNS),
    ...(sagemakerRoleArn ? { sagemakerRoleArn } : {}),
    stateMachineArn: get('VERITRAIL_STATE_MACHINE_ARN'),
    auditRetentionDays,
  };
}

/** VERITRAIL_SAGEMAKER_ROLE_ARNS: a JSON object of pipeline name → role ARN; absent or empty is `{}`. */
export function parseRoleArns(value: string | undefined): Record<string, string> {
  const text = value?.trim();
  if (!text) return {};
  const bad = (why: string, cause?: unknown) =>
    new VeritrailError(
      'USAGE',
      `VERITRAIL_SAGEMAKER_ROLE_ARNS must be a JSON object of pipeline name to IAM role ARN, such as {"credit-scoring":"arn:aws:iam::123456789012:role/…"}; ${why}`,
      cause === undefined ? undefined : { cause },
    );
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw bad('it is not valid JSON', e);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    throw bad('it is not an object');
  const roles: Record<string, string> = {};
  for (const [pipeline, arn] of Object.entries(parsed)) {
    if (typeof arn !== 'string' || !/^arn:[a-z-]+:iam::\d{12}:role\/\S+$/.test(arn)) {
      throw bad(`the value for "${pipeline}" is not an IAM role ARN`);
    }
    roles[pipeline] = arn;
  }
  return roles;
}

/**
 * Who acts: the Lambda function's ARN, built from AWS_LAMBDA_FUNCTION_NAME, AWS_REGION and the
 * partition and account of a configured ARN (Lambda does not expose its own ARN in the
 * environment); `aws` outside Lambda.
 */
export function actorFrom(
  env: Record<string, string | undefined>,
  config: Pick<AwsConfig, 'signingKeyArn'>,
): string {
  const fn = env.AWS_LAMBDA_FUNCTION_NAME;
  if (!fn) return 'aws';
  const [, partition, , , account] = config.signingKeyArn.split(':');
  const region = env.AWS_REGION;
  if (!partition || !account || !region) return fn;
  return `arn:${partition}:lambda:${region}:${account}:function:${fn}`;
}

/** The AWS runtime plus the adapters only the AWS side has. */
export interface AwsRuntime extends Runtime {
  mode: 'aws';
  config: AwsConfig;
  clients: AwsClients;
  stepFunctions: StepFunctions;
  events: EventPublisher;
  /** Signs audit log checkpoints (a separate KMS key from attestations). */
  checkpointSigner: KmsSigner;
  audit: ObjectAuditLog;
}

/** The audit log's checkpoint origin on AWS: one log per audit bucket. */
export function auditOrigin(config: Pick<AwsConfig, 'buckets'>): string {
  return `veritrail.aws/${config.buckets.audit}`;
}

export async function createAwsRuntime(
  env: Record<string, string | undefined>,
  options: { clients?: AwsClients; retry?: AwsClientOptions } = {},
): Promise<AwsRuntime> {
  const config = readAwsConfig(env);
  const clients = options.clients ?? createAwsClients(env, options.retry);
  const objects = new S3ObjectStore(clients.s3, { buckets: config.buckets, kmsKeyId: config.dataKeyArn });
  const signer = new KmsSigner(clients.kms, config.signingKeyArn, {
    configuredBy: 'VERITRAIL_SIGNING_KEY_ARN',
  });
  const checkpointSigner = new KmsSigner(clients.kms, config.checkpointKeyArn, {
    configuredBy: 'VERITRAIL_CHECKPOINT_KEY_ARN',
  });
  const events = new EventPublisher(clients.eventbridge);
  return {
    mode: 'aws',
    config,
    clients,
    objects,
    runs: new DynamoRunStore(clients.dynamodb, config.table),
    signer,
    checkpointSigner,
    // WORM log in the audit bucket: every object Object Lock COMPLIANCE for the retention period.
    audit: openAuditLog({
      store: objects,
      signer: checkpointSigner,
      origin: auditOrigin(config),
      retentionDays: config.auditRetentionDays,
    }),
    trainer: new SageMakerTrainer(clients.sagemaker, {
      // Each run trains under its own pipeline's role (scoped to training/<pipeline>/ by the stack).
      roleArns: config.sagemakerRoleArns,
      ...(config.sagemakerRoleArn ? { roleArn: config.sagemakerRoleArn } : {}),
      artifactsBucket: config.buckets.artifacts,
      kmsKeyId: config.dataKeyArn,
    }),
    datasets: new S3DatasetSource(clients.s3),
    registry: new SageMakerRegistry(clients.sagemaker, {
      artifactsBucket: config.buckets.artifacts,
      kmsKeyId: config.dataKeyArn,
    }),
    stepFunctions: new StepFunctions(clients.sfn),
    events,
    // OpenLineage RunEvents on the bus, for any consumer (Marquez…); the same namespace as START events.
    lineage: {
      sink: new EventBridgeLineageSink(events),
      namespace: `veritrail.aws/${config.buckets.landing}`,
    },
    actor: actorFrom(env, config),
    now: () => new Date(),
  };
}
