/**
 * X-Ray tracing on Lambda, end to end: two functions bundled exactly as deployed (SST's esbuild
 * with stacks/bundling.ts, Powertools left to the layer), each run as the emulated Lambda runs it
 * (test/aws-e2e/harness/lambda-host.ts: a Node 22 process from a folder with no node_modules, the
 * Powertools layer on NODE_PATH, a sampled `_X_AMZN_TRACE_ID` per invocation), with
 * AWS_XRAY_DAEMON_ADDRESS naming a UDP socket this test listens on, as the X-Ray daemon does, and
 * AWS_ENDPOINT_URL naming a local HTTP server that answers the SDK calls.
 *
 * What must arrive: the handler's subsegment `## functions/<name>.handler` from the shared
 * middleware stack (captureLambdaHandler, src/aws/handler.ts) in the invocation's trace, with the
 * ColdStart and Service annotations and the run's (runId, pipeline, step); and under it one
 * subsegment per AWS SDK call, recorded by the client src/aws/clients.ts captured.
 */
import { createSocket, type Socket } from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sstEsbuild, sstEsbuildOptions } from '../../bench/bundles.js';
import { REQUIRED_ENV } from '../../src/aws/runtime.js';
import { NODEJS_BUNDLING } from '../../stacks/bundling.js';
import { hostFunctions, type InvokeResult, type LambdaFleet } from '../aws-e2e/harness/lambda-host.js';

const ROOT = path.resolve(import.meta.dirname, '..', '..');
const REGION = 'eu-west-1';
const ACCOUNT = '123456789012';
const TABLE = 'test-veritrail-runs';
const FUNCTIONS = ['training-callback', 'register'] as const;

/** An X-Ray segment document as the SDK sends it (X-Ray Developer Guide, "Segment documents"). */
interface XRayDocument {
  id: string;
  name: string;
  trace_id?: string;
  parent_id?: string;
  type?: string;
  namespace?: string;
  annotations?: Record<string, unknown>;
  aws?: { operation?: string; table_name?: string };
  fault?: boolean;
  error?: boolean;
  in_progress?: boolean;
}

interface SeenRequest {
  target: string | undefined;
  traceHeader: string | undefined;
}

let work = '';
let daemon: Socket;
let endpoint: Server;
let fleet: LambdaFleet;
const documents: XRayDocument[] = [];
const requests: SeenRequest[] = [];

function environment(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of REQUIRED_ENV) env[name] = `test-${name.toLowerCase()}`;
  return {
    ...env,
    VERITRAIL_TABLE: TABLE,
    VERITRAIL_DATA_KEY_ARN: `arn:aws:kms:${REGION}:${ACCOUNT}:key/data`,
    VERITRAIL_SIGNING_KEY_ARN: `arn:aws:kms:${REGION}:${ACCOUNT}:key/attestation`,
    VERITRAIL_CHECKPOINT_KEY_ARN: `arn:aws:kms:${REGION}:${ACCOUNT}:key/checkpoint`,
    VERITRAIL_STATE_MACHINE_ARN: `arn:aws:states:${REGION}:${ACCOUNT}:stateMachine:test-veritrail-training-pipeline`,
    VERITRAIL_SAGEMAKER_ROLE_ARNS: '{}',
    // One attempt per call: the endpoint's refusals are final, retrying them only slows the test.
    AWS_MAX_ATTEMPTS: '1',
  };
}

/** DynamoDB answers GetItem with no item and refuses the rest; anything else (S3) is AccessDenied. */
function answer(target: string | undefined): { status: number; type: string; body: string } {
  if (target === 'DynamoDB_20120810.GetItem')
    return { status: 200, type: 'application/x-amz-json-1.0', body: '{}' };
  if (target?.startsWith('DynamoDB_20120810.'))
    return {
      status: 400,
      type: 'application/x-amz-json-1.0',
      body: JSON.stringify({
        __type: 'com.amazonaws.dynamodb.v20120810#ResourceNotFoundException',
        message: 'Requested resource not found',
      }),
    };
  return {
    status: 403,
    type: 'application/xml',
    body: '<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>',
  };
}

const listen = (server: Server) =>
  new Promise<number>((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)),
  );

beforeAll(async () => {
  work = mkdtempSync(path.join(tmpdir(), 'veritrail-tracing-'));
  const esbuild = await sstEsbuild();
  for (const name of FUNCTIONS) {
    const out = path.join(work, name, 'functions', `${name}.mjs`);
    await esbuild.build({
      ...sstEsbuildOptions(path.join(ROOT, 'functions', `${name}.ts`), NODEJS_BUNDLING, out),
      sourcemap: false,
    });
  }

  daemon = createSocket('udp4');
  daemon.on('message', (message) => {
    // The daemon protocol: a JSON header line, then the segment document.
    const text = message.toString('utf8');
    documents.push(JSON.parse(text.slice(text.indexOf('\n') + 1)) as XRayDocument);
  });
  await new Promise<void>((resolve) => daemon.bind(0, '127.0.0.1', resolve));

  endpoint = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const target = req.headers['x-amz-target'] as string | undefined;
      requests.push({ target, traceHeader: req.headers['x-amzn-trace-id'] as string | undefined });
      const { status, type, body } = answer(target);
      res.writeHead(status, { 'content-type': type, 'x-amzn-requestid': 'test-request' }).end(body);
    });
  });
  const port = await listen(endpoint);

  fleet = hostFunctions(
    FUNCTIONS.map((name) => ({
      stack: 'test-veritrail-Pipeline',
      logicalId: name,
      type: 'AWS::Lambda::Function',
      physicalId: `test-veritrail-${name}`,
      arn: `arn:aws:lambda:${REGION}:${ACCOUNT}:function:test-veritrail-${name}`,
      properties: {
        Code: { S3Key: name },
        Handler: `functions/${name}.handler`,
        Role: `arn:aws:iam::${ACCOUNT}:role/test-veritrail-${name}`,
        Environment: { Variables: environment() },
        TracingConfig: { Mode: 'Active' },
      },
    })),
    {
      assetDir: (key) => path.join(work, key),
      endpoint: `http://127.0.0.1:${port}`,
      region: REGION,
      credentialsOf: () => ({ accessKeyId: 'AKIDTRACINGTEST', secretAccessKey: 'tracing-test-secret' }),
      xrayDaemon: `127.0.0.1:${(daemon.address() as AddressInfo).port}`,
    },
  );
}, 300_000);

afterAll(async () => {
  fleet?.close();
  daemon?.close();
  await new Promise((resolve) => endpoint?.close(resolve));
  if (work) rmSync(work, { recursive: true, force: true });
});

/** The documents of one trace, once its handler subsegment has arrived (complete, not in progress). */
async function traceOf(root: string, handler: string): Promise<XRayDocument[]> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const docs = documents.filter((d) => d.trace_id === root);
    if (docs.some((d) => d.name === `## ${handler}` && !d.in_progress)) return docs;
    if (Date.now() > deadline)
      throw new Error(`no handler subsegment for ${root}; received: ${JSON.stringify(docs)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const rootOf = (header: string) => /Root=([^;]+)/.exec(header)?.[1] ?? '';
const parentOf = (header: string) => /Parent=([^;]+)/.exec(header)?.[1] ?? '';

/** Invokes a hosted function and returns the result with the trace header it ran under. */
async function invoke(name: string, event: unknown): Promise<{ result: InvokeResult; header: string }> {
  const fn = fleet.byHandler(name);
  const before = requests.length;
  const result = await fn.invoke(event, 60_000);
  // The SDK sends the trace header with each call it makes: the one of this invocation.
  const header = requests.slice(before).find((r) => r.traceHeader)?.traceHeader ?? '';
  return { result, header };
}

describe('on Lambda, with active tracing', () => {
  it('an invocation is a handler subsegment in its trace, and a DynamoDB call a subsegment under it', async () => {
    const event = JSON.parse(
      readFileSync(path.join(ROOT, 'test/fixtures/events/sagemaker-training-job-state-change.json'), 'utf8'),
    ) as { detail: { TrainingJobName: string } };
    event.detail.TrainingJobName = 'vt-run-traced-1';
    const { result, header } = await invoke('training-callback', event);
    expect(result, fleet.byHandler('training-callback').logs()).toMatchObject({
      ok: true,
      result: { action: 'ignored', runId: 'run-traced-1' },
    });
    const root = rootOf(header);
    expect(root).toMatch(/^1-[0-9a-f]{8}-[0-9a-f]{24}$/);

    const docs = await traceOf(root, 'functions/training-callback.handler');
    const handler = docs.find((d) => d.name === '## functions/training-callback.handler');
    // Its parent is the Lambda function's segment: the Parent of the header Lambda passed.
    expect(handler).toMatchObject({
      type: 'subsegment',
      annotations: { ColdStart: true, Service: 'veritrail' },
    });
    const getItem = docs.find((d) => d.name === 'DynamoDB' && d.aws?.operation === 'GetItem');
    expect(getItem, JSON.stringify(docs)).toMatchObject({
      type: 'subsegment',
      namespace: 'aws',
      parent_id: handler?.id,
      aws: { operation: 'GetItem', table_name: TABLE },
    });
    // The call itself carried the trace onward, with this subsegment as its parent.
    expect(parentOf(header)).toBe(getItem?.id);
  });

  it('a later invocation is a new trace, and no longer a cold start', async () => {
    const event = JSON.parse(
      readFileSync(path.join(ROOT, 'test/fixtures/events/sagemaker-training-job-state-change.json'), 'utf8'),
    ) as { detail: { TrainingJobName: string } };
    event.detail.TrainingJobName = 'vt-run-traced-2';
    const { header } = await invoke('training-callback', event);
    const docs = await traceOf(rootOf(header), 'functions/training-callback.handler');
    expect(docs.find((d) => d.name === '## functions/training-callback.handler')).toMatchObject({
      annotations: { ColdStart: false, Service: 'veritrail' },
    });
    expect(docs.filter((d) => d.name === 'DynamoDB')).toHaveLength(1);
  });

  it('a pipeline step is annotated with the run, the pipeline and the step, and its failure recorded', async () => {
    const state = {
      runId: 'run-traced-3',
      pipeline: { name: 'credit-scoring', digest: `sha256:${'ab'.repeat(32)}` },
      dataset: { uri: 's3://test-landing/credit-scoring/applications.csv' },
      trigger: { type: 'operator', idempotencyKey: 'tracing-test' },
    };
    const { result, header } = await invoke('register', state);
    // Register needs the gate's result, which this state lacks: the step fails, as a StepFailure.
    expect(result.ok).toBe(false);
    const docs = await traceOf(rootOf(header), 'functions/register.handler');
    const handler = docs.find((d) => d.name === '## functions/register.handler');
    expect(handler).toMatchObject({
      annotations: {
        ColdStart: true,
        Service: 'veritrail',
        runId: 'run-traced-3',
        pipeline: 'credit-scoring',
        step: 'Register',
      },
    });
    expect(handler?.fault || handler?.error).toBe(true);
    // Recording the failure calls AWS (the audit log first): each call is a subsegment of the handler.
    const calls = docs.filter((d) => d.namespace === 'aws');
    expect(calls.length).toBeGreaterThan(0);
    for (const call of calls) expect(call.parent_id).toBe(handler?.id);
  });
});
