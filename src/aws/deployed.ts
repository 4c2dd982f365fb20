/**
 * A deployed stage, seen from an operator's machine: `veritrail start|runs --stage <stage>`.
 *
 * Nothing is typed by hand: every stack publishes what the CLI needs as SSM parameters under
 * `/veritrail/<stage>/` (stacks/common.ts `publish`), read here with GetParametersByPath. The
 * operator's credentials, region and endpoints come from the standard SDK chain (src/aws/clients.ts).
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { GetParametersByPathCommand, type Parameter, SSMClient } from '@aws-sdk/client-ssm';
import { z } from 'zod';
import { ErrorCodes, errorFromCatch, VeritrailError } from '../core/errors.js';
import { type OperatorStartInput, parseOperatorStart } from '../core/events/operator.js';
import type { RunStore } from '../ports.js';
import { retryConfig } from './clients.js';
import { DynamoRunStore } from './dynamo-run-store.js';
import { awsCall } from './errors.js';
import { executionArnOf } from './sfn.js';

/** SST stage names: a letter, then letters, digits and `-` (they name stacks and resources). */
const STAGE_RE = /^[A-Za-z][A-Za-z0-9-]{0,63}$/;

/** The parameters a usable stage has (stacks/{Database,Pipeline,Storage,Keys}.ts). */
const REQUIRED_PARAMETERS = [
  'table-name',
  'state-machine-arn',
  'start-function-name',
  'landing-bucket',
  'audit-bucket',
  'attestation-key-arn',
] as const;

export interface DeployedStage {
  stage: string;
  tableName: string;
  stateMachineArn: string;
  startFunctionName: string;
  landingBucket: string;
  artifactsBucket?: string;
  auditBucket: string;
  attestationKeyArn: string;
  checkpointKeyArn?: string;
  dataKeyArn?: string;
  /** Every parameter under `/veritrail/<stage>/`, by its name below that path. */
  parameters: Record<string, string>;
}

/** Clients, injected by tests; otherwise built from the standard SDK chain. */
export interface DeployedClients {
  ssm?: SSMClient;
  lambda?: LambdaClient;
  dynamodb?: DynamoDBClient;
}

function stagePath(stage: string): string {
  if (!STAGE_RE.test(stage)) {
    throw new VeritrailError(
      'USAGE',
      `--stage "${stage}" is not a stage name: use a letter followed by letters, digits or -, as given to npx sst deploy --stage`,
    );
  }
  return `/veritrail/${stage}`;
}

/** Reads the stage's SSM parameters; USAGE naming the stage and the deploy command when it has none. */
export async function findStage(
  stage: string,
  env: Record<string, string | undefined>,
  clients: DeployedClients = {},
): Promise<DeployedStage> {
  const path = stagePath(stage);
  const ssm = clients.ssm ?? new SSMClient({ ...retryConfig(env) });
  const found: Parameter[] = [];
  let nextToken: string | undefined;
  do {
    const page = await awsCall({ action: 'ssm:GetParametersByPath', resource: `${path}/` }, () =>
      ssm.send(
        new GetParametersByPathCommand({
          Path: path,
          Recursive: false,
          WithDecryption: false,
          ...(nextToken ? { NextToken: nextToken } : {}),
        }),
      ),
    );
    found.push(...(page.Parameters ?? []));
    nextToken = page.NextToken;
  } while (nextToken);

  const parameters: Record<string, string> = {};
  for (const p of found) {
    if (p.Name?.startsWith(`${path}/`) && typeof p.Value === 'string') {
      parameters[p.Name.slice(path.length + 1)] = p.Value;
    }
  }
  const region = env.AWS_REGION ?? env.AWS_DEFAULT_REGION;
  const where = `in this account and region${region ? ` (${region})` : ''}`;
  if (Object.keys(parameters).length === 0) {
    throw new VeritrailError(
      'USAGE',
      `stage "${stage}" is not deployed ${where}: there are no SSM parameters under ${path}/. Deploy it with: npx sst deploy --stage ${stage} (or check AWS_PROFILE and AWS_REGION)`,
      { details: { stage, path: `${path}/` } },
    );
  }
  const missing = REQUIRED_PARAMETERS.filter((name) => !parameters[name]);
  if (missing.length > 0) {
    throw new VeritrailError(
      'USAGE',
      `stage "${stage}" is only partly deployed ${where}: ${missing.map((m) => `${path}/${m}`).join(', ')} missing. Finish the deployment with: npx sst deploy --stage ${stage}`,
      { details: { stage, missing } },
    );
  }
  const get = (name: (typeof REQUIRED_PARAMETERS)[number]): string => parameters[name] ?? '';
  const optional = (name: string) => parameters[name];
  const artifactsBucket = optional('artifacts-bucket');
  const checkpointKeyArn = optional('checkpoint-key-arn');
  const dataKeyArn = optional('data-key-arn');
  return {
    stage,
    tableName: get('table-name'),
    stateMachineArn: get('state-machine-arn'),
    startFunctionName: get('start-function-name'),
    landingBucket: get('landing-bucket'),
    auditBucket: get('audit-bucket'),
    attestationKeyArn: get('attestation-key-arn'),
    ...(artifactsBucket ? { artifactsBucket } : {}),
    ...(checkpointKeyArn ? { checkpointKeyArn } : {}),
    ...(dataKeyArn ? { dataKeyArn } : {}),
    parameters,
  };
}

/** The deployed run table, read with the operator's credentials (`veritrail runs list|show --stage`). */
export async function openDeployedRuns(
  stage: string,
  env: Record<string, string | undefined>,
  clients: DeployedClients = {},
): Promise<RunStore> {
  const found = await findStage(stage, env, clients);
  return new DynamoRunStore(clients.dynamodb ?? new DynamoDBClient({ ...retryConfig(env) }), found.tableName);
}

/**
 * `s3://<bucket>/<key>[?versionId=<id>]`, strictly: `versionId` is the only query parameter, given
 * once and not empty; anything else after `?` is refused rather than read as part of the key.
 */
export function parseDatasetArgument(text: string): { uri: string; versionId?: string } {
  const usage = (why: string) =>
    new VeritrailError(
      'USAGE',
      `--dataset "${text}" ${why}; use s3://<bucket>/<key> or s3://<bucket>/<key>?versionId=<id>`,
    );
  if (!text.startsWith('s3://')) throw usage('is not an s3:// URI');
  const q = text.indexOf('?');
  const uri = q === -1 ? text : text.slice(0, q);
  if (!/^s3:\/\/[^/?#]+\/[^?#]+$/.test(uri)) throw usage('does not name a bucket and an object key');
  if (q === -1) return { uri };
  const query = text.slice(q + 1);
  const match = /^versionId=([^&=#?]+)$/.exec(query);
  if (!match?.[1]) throw usage(`has the query "${query}", where only versionId=<id> is allowed`);
  let versionId: string;
  try {
    versionId = decodeURIComponent(match[1]);
  } catch {
    throw usage('has a versionId with a bad %-escape');
  }
  if (!/^[\x21-\x7e]{1,1024}$/.test(versionId)) throw usage('has a versionId that is not an S3 version id');
  return { uri, versionId };
}

export interface DeployedStartRequest {
  pipeline: string;
  /** `s3://bucket/key[?versionId=id]`; without a version the start function pins the latest. */
  dataset: string;
  force?: boolean;
  /** Names the start intent: the same id starts one run however often it is sent. */
  requestId?: string;
  /** Who asks (recorded, never part of the run's identity). */
  actor?: string;
}

export interface DeployedStartResult {
  runId: string;
  /** The execution of the run (its name is deterministic per trigger); absent when the start was skipped. */
  executionArn?: string;
  /** True when this request (or the same content) had already started the run: nothing new was started. */
  alreadyStarted: boolean;
  /** The start function's outcome: `started`, `duplicate` or `skipped` (nothing changed since a successful run). */
  status: 'started' | 'duplicate' | 'skipped';
  /** For a duplicate: the status of the run it found. */
  runStatus?: string;
  /** For a skip: why, and the run it refers to. */
  reason?: string;
  sinceRunId?: string;
}

/** The start function's answer (src/core/start.ts StartOutcome), checked at this boundary. */
const StartOutcomeSchema = z.discriminatedUnion('status', [
  z.looseObject({ status: z.literal('started'), runId: z.string().min(1), executionName: z.string().min(1) }),
  z.looseObject({
    status: z.literal('duplicate'),
    runId: z.string().min(1),
    executionName: z.string().min(1),
    runStatus: z.string(),
  }),
  z.looseObject({
    status: z.literal('skipped'),
    runId: z.string().min(1),
    reason: z.string(),
    sinceRunId: z.string(),
  }),
  z.looseObject({
    status: z.literal('rejected'),
    error: z.looseObject({ code: z.enum(ErrorCodes), message: z.string() }),
  }),
  z.looseObject({ status: z.literal('ignored'), reason: z.string() }),
]);

/** The operator start payload (OperatorStartSchema), validated before anything is invoked. */
export function operatorStartPayload(request: DeployedStartRequest): OperatorStartInput {
  const dataset = parseDatasetArgument(request.dataset);
  const payload: OperatorStartInput = {
    pipeline: request.pipeline,
    dataset,
    force: request.force ?? false,
    ...(request.requestId !== undefined ? { requestId: request.requestId } : {}),
    ...(request.actor !== undefined ? { actor: request.actor } : {}),
  };
  parseOperatorStart(payload);
  return payload;
}

/**
 * `veritrail start --stage`: invokes the deployed start function with an operator start, so the
 * deployed start path (validation, version pinning, dedupe, StartExecution) is the only one.
 */
export async function startDeployed(
  stage: string,
  env: Record<string, string | undefined>,
  request: DeployedStartRequest,
  clients: DeployedClients = {},
): Promise<DeployedStartResult> {
  const payload = operatorStartPayload(request);
  const found = await findStage(stage, env, clients);
  const lambda = clients.lambda ?? new LambdaClient({ ...retryConfig(env) });
  const out = await awsCall({ action: 'lambda:InvokeFunction', resource: found.startFunctionName }, () =>
    lambda.send(
      new InvokeCommand({
        FunctionName: found.startFunctionName,
        InvocationType: 'RequestResponse',
        Payload: new TextEncoder().encode(JSON.stringify(payload)),
      }),
    ),
  );
  const text = out.Payload ? new TextDecoder().decode(out.Payload) : '';
  if (out.FunctionError) {
    // The Node.js runtime reports a thrown error as {errorType, errorMessage, trace}; the step
    // convention (Veritrail.<code>, or a {code, message} message) is read as RecordFailure reads it.
    let errorType: string | undefined;
    try {
      const e = JSON.parse(text) as { errorType?: unknown };
      if (typeof e.errorType === 'string') errorType = e.errorType;
    } catch {
      /* not JSON: the text is the cause */
    }
    const info = errorFromCatch({ ...(errorType ? { Error: errorType } : {}), Cause: text });
    throw new VeritrailError(
      info.code,
      `the start function of stage ${stage} refused the request: ${info.message}`,
      {
        details: { stage, function: found.startFunctionName },
      },
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw unexpected(stage, text, cause);
  }
  const parsed = StartOutcomeSchema.safeParse(value);
  if (!parsed.success) throw unexpected(stage, text, parsed.error);
  const outcome = parsed.data;
  switch (outcome.status) {
    case 'started':
      return {
        runId: outcome.runId,
        executionArn: executionArnOf(found.stateMachineArn, outcome.executionName),
        alreadyStarted: false,
        status: 'started',
      };
    case 'duplicate':
      return {
        runId: outcome.runId,
        executionArn: executionArnOf(found.stateMachineArn, outcome.executionName),
        alreadyStarted: true,
        status: 'duplicate',
        runStatus: outcome.runStatus,
      };
    case 'skipped':
      return {
        runId: outcome.runId,
        alreadyStarted: false,
        status: 'skipped',
        reason: outcome.reason,
        sinceRunId: outcome.sinceRunId,
      };
    case 'rejected':
      // Input problems are outcomes there (and audited); here they are the operator's error to fix.
      throw new VeritrailError(outcome.error.code, outcome.error.message, {
        details: { stage, function: found.startFunctionName },
      });
    case 'ignored':
      throw new VeritrailError(
        'USAGE',
        `the start function of stage ${stage} did not act on the request: ${outcome.reason}`,
      );
  }
}

function unexpected(stage: string, text: string, cause: unknown): VeritrailError {
  return new VeritrailError(
    'INTERNAL',
    `the start function of stage ${stage} answered ${JSON.stringify(text.slice(0, 200))}, which is not a start outcome; deploy this version (npx sst deploy --stage ${stage}) so the CLI and the functions agree`,
    { cause },
  );
}
