/**
 * The AWS ports, one builder per port, each over its SDK adapter: a Lambda's composition root
 * (functions/<name>.ts) names the builders it needs and `composeAws` builds exactly those, once per
 * cold start, from the function's environment (names and ARNs the stack passes in) and the
 * standard SDK chain (credentials, region, endpoints: src/aws/clients.ts). Each builder imports
 * only its own client package, so a bundle carries only the clients its ports use.
 * `createAwsRuntime` builds every port (the CLI, tests).
 */

import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { KMSClient } from '@aws-sdk/client-kms';
import { S3Client } from '@aws-sdk/client-s3';
import { SageMakerClient } from '@aws-sdk/client-sagemaker';
import { SFNClient } from '@aws-sdk/client-sfn';
import { type ObjectAuditLog, openAuditLog } from '../audit/log.js';
import { witnessesFrom } from '../audit/witness/config.js';
import type { WitnessClient } from '../audit/witness/http.js';
import { auditOrigin } from '../core/deployment.js';
import { VeritrailError } from '../core/errors.js';
import { DEFAULT_AUDIT_RETENTION_DAYS } from '../core/layout.js';
import { verifyBytesSetting } from '../core/processing.js';
import { type ComposedPorts, type Runtime, runtimeOf } from '../runtime.js';
import { type AwsClientOptions, type AwsClients, ClientCache, createAwsClients } from './clients.js';
import { DynamoRunStore } from './dynamo-run-store.js';
import { EventPublisher } from './events.js';
import { KmsSigner } from './kms-signer.js';
import { EventBridgeLineageSink } from './lineage.js';
import { S3DatasetSource } from './s3-dataset-source.js';
import { S3ObjectStore } from './s3-object-store.js';
import { SageMakerProcessor, VERIFY_BUDGET_MS } from './sagemaker-processor.js';
import { SageMakerRegistry } from './sagemaker-registry.js';
import { TRANSFORM_SHARD_BYTES } from './sagemaker-scorer.js';
import { SageMakerTrainer } from './sagemaker-trainer.js';
import { StepFunctions } from './sfn.js';

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
type RequiredEnv = (typeof REQUIRED_ENV)[number];

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

/**
 * What port builders share within one cold start: the configuration, the clients (each built on
 * first use) and the ports already built (the audit log and the object store share one S3 store).
 */
export class AwsContext {
  readonly config: AwsConfig;
  readonly clients: ClientCache;
  private readonly built = new Map<string, unknown>();

  constructor(
    readonly env: Record<string, string | undefined>,
    options: { clients?: Partial<AwsClients>; retry?: AwsClientOptions } = {},
  ) {
    this.config = readAwsConfig(env);
    this.clients = new ClientCache(env, options.retry, options.clients);
  }

  /** The value `build` gives, built once per context under `key`. */
  once<T>(key: string, build: () => T): T {
    if (!this.built.has(key)) this.built.set(key, build());
    return this.built.get(key) as T;
  }

  s3(): S3Client {
    return this.clients.get('s3', (retry) => new S3Client(retry));
  }
}

/** Builds one port (or AWS-only adapter) from the context. */
export type AwsBuilder<T> = (ctx: AwsContext) => T;

// KMS, DynamoDB, SageMaker, SFN and EventBridge clients are built inside the builders that use
// them (not as AwsContext methods), so a bundle that never calls the builder never imports them.
const kms = (ctx: AwsContext): KMSClient => ctx.clients.get('kms', (retry) => new KMSClient(retry));

/** S3 object store over the landing, artifacts and audit buckets, SSE-KMS with the data key. */
export const awsObjects: AwsBuilder<S3ObjectStore> = (ctx) =>
  ctx.once(
    'objects',
    () => new S3ObjectStore(ctx.s3(), { buckets: ctx.config.buckets, kmsKeyId: ctx.config.dataKeyArn }),
  );

/** Run records in the DynamoDB table. */
const awsRuns: AwsBuilder<DynamoRunStore> = (ctx) =>
  ctx.once(
    'runs',
    () =>
      new DynamoRunStore(
        ctx.clients.get('dynamodb', (retry) => new DynamoDBClient(retry)),
        ctx.config.table,
      ),
  );

/** The attestation signer (KMS, VERITRAIL_SIGNING_KEY_ARN); also the source of its public key. */
export const awsSigner: AwsBuilder<KmsSigner> = (ctx) =>
  ctx.once(
    'signer',
    () => new KmsSigner(kms(ctx), ctx.config.signingKeyArn, { configuredBy: 'VERITRAIL_SIGNING_KEY_ARN' }),
  );

/** Signs audit log checkpoints (a separate KMS key from attestations). */
const awsCheckpointSigner: AwsBuilder<KmsSigner> = (ctx) =>
  ctx.once(
    'checkpointSigner',
    () =>
      new KmsSigner(kms(ctx), ctx.config.checkpointKeyArn, { configuredBy: 'VERITRAIL_CHECKPOINT_KEY_ARN' }),
  );

/**
 * VERITRAIL_WITNESSES: the witnesses the audit log asks to cosign every checkpoint, the JSON of a
 * local `<state dir>/witnesses.json` (`{"witnesses":[{"vkey","url"}]}`, docs/audit-log.md). The
 * stack sets it on the functions that checkpoint (stacks/Witness.ts `WITNESSED_FUNCTIONS`) from the
 * Witness stack and VERITRAIL_EXTERNAL_WITNESSES; absent or empty, the log asks none.
 */
export function witnessesFromEnv(
  env: Record<string, string | undefined>,
  log: (line: string) => void = (line) => console.warn(line),
): WitnessClient[] {
  const text = env.VERITRAIL_WITNESSES?.trim();
  if (!text) return [];
  try {
    return witnessesFrom(text, 'VERITRAIL_WITNESSES').map((w) => reportingRefusals(w, log));
  } catch (e) {
    throw new VeritrailError(
      'USAGE',
      `${e instanceof Error ? e.message : String(e)}. VERITRAIL_WITNESSES must be {"witnesses":[{"vkey":"<name>+<key id>+<key>","url":"https://<witness>/"}]} (the stack sets it from VERITRAIL_WITNESS and VERITRAIL_EXTERNAL_WITNESSES): fix the setting and deploy again, or unset it to checkpoint without witnesses`,
      { cause: e },
    );
  }
}

/**
 * The witness client, with each refusal written to the function's log: a witness that refuses a
 * checkpoint may be seeing a rolled-back or forked log (docs/audit-log.md), and the step goes on
 * (the checkpoint is stored with the cosignatures it got). A 409 carrying the witness's size is
 * the protocol's way to tell a new client where it stands, not a refusal.
 */
function reportingRefusals(client: WitnessClient, log: (line: string) => void): WitnessClient {
  const report = (detail: Record<string, unknown>) =>
    log(
      JSON.stringify({
        level: 'WARN',
        message: 'witness did not cosign',
        witness: client.key.name,
        ...detail,
      }),
    );
  return {
    key: client.key,
    submit: async (body) => {
      try {
        const r = await client.submit(body);
        const sizeHint = r.status === 409 && /^\d+\n?$/.test(r.body);
        if (r.status !== 200 && !sizeHint) report({ status: r.status, answer: r.body.trim().slice(0, 500) });
        return r;
      } catch (e) {
        report({ error: e instanceof Error ? e.message : String(e) });
        throw e;
      }
    },
    ...(client.latest ? { latest: client.latest.bind(client) } : {}),
  };
}

/**
 * WORM log in the audit bucket: every object Object Lock COMPLIANCE for the retention period;
 * every checkpoint is offered to the witnesses of VERITRAIL_WITNESSES (a refusal is reported in
 * the checkpoint's `witnessed`, never a failed step).
 */
const awsAudit: AwsBuilder<ObjectAuditLog> = (ctx) =>
  ctx.once('audit', () =>
    openAuditLog({
      store: awsObjects(ctx),
      signer: awsCheckpointSigner(ctx),
      origin: auditOrigin(ctx.config),
      retentionDays: ctx.config.auditRetentionDays,
      witnesses: witnessesFromEnv(ctx.env),
    }),
  );

/**
 * SageMaker training jobs; each run trains under its own pipeline's role (stacks/sagemaker-roles.ts).
 * Scoring writes a sharded transform's manifest to the artifacts bucket; the optional
 * VERITRAIL_TRANSFORM_MAX_INSTANCES caps the instances of a sharded transform (default 1);
 * VERITRAIL_TRANSFORM_SHARD_BYTES lowers the features per request (default 64 MiB).
 */
export const awsTrainer: AwsBuilder<SageMakerTrainer> = (ctx) =>
  ctx.once('trainer', () => {
    const maxInstances = ctx.env.VERITRAIL_TRANSFORM_MAX_INSTANCES?.trim();
    if (maxInstances && !/^[1-9][0-9]?$/.test(maxInstances)) {
      throw new VeritrailError(
        'USAGE',
        `VERITRAIL_TRANSFORM_MAX_INSTANCES must be a whole number from 1 to 99, got "${maxInstances}"`,
      );
    }
    const shardBytes = ctx.env.VERITRAIL_TRANSFORM_SHARD_BYTES?.trim();
    if (
      shardBytes &&
      (!/^\d+$/.test(shardBytes) || Number(shardBytes) < 1024 || Number(shardBytes) > TRANSFORM_SHARD_BYTES)
    ) {
      throw new VeritrailError(
        'USAGE',
        `VERITRAIL_TRANSFORM_SHARD_BYTES must be a whole number of bytes from 1024 to ${TRANSFORM_SHARD_BYTES}, got "${shardBytes}"`,
      );
    }
    return new SageMakerTrainer(sagemaker(ctx), {
      roleArns: ctx.config.sagemakerRoleArns,
      ...(ctx.config.sagemakerRoleArn ? { roleArn: ctx.config.sagemakerRoleArn } : {}),
      artifactsBucket: ctx.config.buckets.artifacts,
      kmsKeyId: ctx.config.dataKeyArn,
      objects: awsObjects(ctx),
      ...(maxInstances ? { transformMaxInstances: Number(maxInstances) } : {}),
      ...(shardBytes ? { transformShardBytes: Number(shardBytes) } : {}),
    });
  });

const sagemaker = (ctx: AwsContext): SageMakerClient =>
  ctx.clients.get('sagemaker', (retry) => new SageMakerClient(retry));

/**
 * Preprocess's SageMaker Processing jobs, when the stack enabled them: VERITRAIL_PROCESSING_IMAGE
 * (pinned by digest), VERITRAIL_PROCESSING_ROLE_ARN, VERITRAIL_PROCESSING_THRESHOLD_BYTES and
 * optionally VERITRAIL_PROCESSING_INSTANCE_TYPE (stacks/settings.ts processingSettings). Absent:
 * every dataset is preprocessed in the function.
 */
export const awsProcessor: AwsBuilder<SageMakerProcessor | undefined> = (ctx) =>
  ctx.once('processor', () => {
    const image = ctx.env.VERITRAIL_PROCESSING_IMAGE?.trim();
    if (!image) return undefined;
    const roleArn = ctx.env.VERITRAIL_PROCESSING_ROLE_ARN?.trim() ?? '';
    const threshold = ctx.env.VERITRAIL_PROCESSING_THRESHOLD_BYTES?.trim() ?? '';
    if (!/^arn:[a-z-]+:iam::\d{12}:role\/\S+$/.test(roleArn) || !/^\d+$/.test(threshold)) {
      throw new VeritrailError(
        'PIPELINE_INVALID',
        'VERITRAIL_PROCESSING_IMAGE is set but VERITRAIL_PROCESSING_ROLE_ARN is not an IAM role ARN or VERITRAIL_PROCESSING_THRESHOLD_BYTES not a whole number of bytes; deploy with the stack, which sets all three',
      );
    }
    const instanceType = ctx.env.VERITRAIL_PROCESSING_INSTANCE_TYPE?.trim();
    const verifyBytes = verifyBytesSetting(ctx.env.VERITRAIL_PROCESSING_VERIFY_BYTES);
    return new SageMakerProcessor(sagemaker(ctx), awsObjects(ctx), {
      image,
      roleArn,
      thresholdBytes: Number(threshold),
      ...(instanceType ? { instanceType } : {}),
      artifactsBucket: ctx.config.buckets.artifacts,
      kmsKeyId: ctx.config.dataKeyArn,
      sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
      ...(verifyBytes !== undefined ? { verifyBudget: { ms: VERIFY_BUDGET_MS, bytes: verifyBytes } } : {}),
    });
  });

/** Datasets read from S3, pinned by VersionId. */
export const awsDatasets: AwsBuilder<S3DatasetSource> = (ctx) =>
  ctx.once('datasets', () => new S3DatasetSource(ctx.s3()));

/** The SageMaker model registry. */
export const awsRegistry: AwsBuilder<SageMakerRegistry> = (ctx) =>
  ctx.once(
    'registry',
    () =>
      new SageMakerRegistry(sagemaker(ctx), {
        artifactsBucket: ctx.config.buckets.artifacts,
        kmsKeyId: ctx.config.dataKeyArn,
      }),
  );

/** Events on the default bus (START events, lineage). */
const awsEvents: AwsBuilder<EventPublisher> = (ctx) =>
  ctx.once(
    'events',
    () => new EventPublisher(ctx.clients.get('eventbridge', (retry) => new EventBridgeClient(retry))),
  );

/** OpenLineage RunEvents on the bus, for any consumer (Marquez…); the same namespace as START events. */
export const awsLineage: AwsBuilder<NonNullable<Runtime['lineage']>> = (ctx) =>
  ctx.once('lineage', () => ({
    sink: new EventBridgeLineageSink(awsEvents(ctx)),
    namespace: `veritrail.aws/${ctx.config.buckets.landing}`,
  }));

/** Step Functions (task tokens, executions). */
export const awsStepFunctions: AwsBuilder<StepFunctions> = (ctx) =>
  ctx.once('stepFunctions', () => new StepFunctions(ctx.clients.get('sfn', (retry) => new SFNClient(retry))));

/** The builders a Lambda names: one per port it uses. */
export type AwsPorts = {
  [K in keyof ComposedPorts]?: AwsBuilder<
    K extends 'processor' ? ComposedPorts[K] : NonNullable<ComposedPorts[K]>
  >;
};

/** What every state-machine task needs: runStep reads and updates the run and audits each step. */
export const AWS_STEP_PORTS = { objects: awsObjects, runs: awsRuns, audit: awsAudit } satisfies AwsPorts;

/**
 * The composition root of one Lambda: builds the named ports (and any AWS-only extras) from the
 * environment; every other port is a `missingPort` guard that names `entry` when used.
 */
export function composeAws<X extends object = object>(
  entry: string,
  ports: AwsPorts,
  extras?: (ctx: AwsContext) => X,
  options: { clients?: Partial<AwsClients>; retry?: AwsClientOptions } = {},
): (env: Record<string, string | undefined>) => Runtime & X & { mode: 'aws' } {
  return (env) => {
    const ctx = new AwsContext(env, options);
    const built: ComposedPorts = {};
    for (const [name, build] of Object.entries(ports) as [keyof ComposedPorts, AwsBuilder<never>][]) {
      (built as Record<string, unknown>)[name] = build(ctx);
    }
    const base = { actor: actorFrom(env, ctx.config), mode: 'aws' as const, now: () => new Date() };
    return runtimeOf(entry, base, built, extras?.(ctx)) as Runtime & X & { mode: 'aws' };
  };
}

/** The AWS runtime with every port, plus the adapters only the AWS side has (the CLI, tests). */
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

export async function createAwsRuntime(
  env: Record<string, string | undefined>,
  options: { clients?: AwsClients; retry?: AwsClientOptions } = {},
): Promise<AwsRuntime> {
  const config = readAwsConfig(env);
  const clients = options.clients ?? createAwsClients(env, options.retry);
  const ctx = new AwsContext(env, { clients, ...(options.retry ? { retry: options.retry } : {}) });
  return {
    mode: 'aws',
    config,
    clients,
    objects: awsObjects(ctx),
    runs: awsRuns(ctx),
    signer: awsSigner(ctx),
    checkpointSigner: awsCheckpointSigner(ctx),
    audit: awsAudit(ctx),
    trainer: awsTrainer(ctx),
    datasets: awsDatasets(ctx),
    registry: awsRegistry(ctx),
    stepFunctions: awsStepFunctions(ctx),
    events: awsEvents(ctx),
    lineage: awsLineage(ctx),
    actor: actorFrom(env, config),
    now: () => new Date(),
  };
}
