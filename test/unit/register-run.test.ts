/**
 * RegisterRun and RecordFailure over the real run store (DynamoDB code on dynalite), a file object
 * store and the real audit log: exactly-once runs whatever the console does, and no write to a run
 * by an execution that does not own it.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type StartPipeline, StartService, startDepsOf } from '../../src/app/start/service.js';
import { type ObjectAuditLog, openAuditLog } from '../../src/audit/log.js';
import { DynamoRunStore, ensureRunTable } from '../../src/aws/dynamo-run-store.js';
import { putJsonCas } from '../../src/cas.js';
import type { ExecState } from '../../src/core/exec-state.js';
import { canonicalDigest } from '../../src/core/jcs.js';
import { parsePipelineDefinition } from '../../src/core/pipeline.js';
import { type LocalDynamo, startLocalDynamo } from '../../src/local/dynamo.js';
import { openFileSigner } from '../../src/local/file-signer.js';
import { FsDatasetSource } from '../../src/local/fs-dataset-source.js';
import { FsObjectStore } from '../../src/local/fs-object-store.js';
import type { AuditEntry } from '../../src/ports.js';
import type { Runtime } from '../../src/runtime.js';
import { recordFailure } from '../../src/steps/finish.js';
import { type ConsoleStarter, type Registration, registerRun } from '../../src/steps/register-run.js';

const EXAMPLE = join(import.meta.dirname, '..', '..', 'examples', 'credit-scoring', 'pipeline.json');
const BUCKET = 'veritrail-landing-test';
const arn = (name: string) => `arn:aws:states:eu-west-1:111122223333:execution:training-pipeline:${name}`;
const A = arn('console-a');
const B = arn('console-b');

/** The documented console input (docs/deploy.md, "Manual start from the console"). */
const consoleInput = (requestId = 'console-2026-11-30-1') => ({
  pipeline: 'credit-scoring',
  dataset: { uri: `s3://${BUCKET}/credit-scoring/applications.csv`, versionId: '3HL4kqtJlcpXroDTDmJ' },
  requestId,
});

let dynamo: LocalDynamo;
let dir: string;
let runs: DynamoRunStore;
let audit: ObjectAuditLog;
let rt: Runtime;
let pipeline: StartPipeline;
let consoleStart: ConsoleStarter;

beforeAll(async () => {
  dynamo = await startLocalDynamo(undefined);
});
afterAll(async () => dynamo.close());

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'veritrail-register-'));
  // A table per test: claims and runs of one test never meet another's.
  const table = `runs-${Math.random().toString(36).slice(2)}`;
  await ensureRunTable(dynamo.client, table);
  runs = new DynamoRunStore(dynamo.client, table);
  const objects = new FsObjectStore(join(dir, 'objects'));
  const signer = await openFileSigner(join(dir, 'signing.key'));
  audit = openAuditLog({ store: objects, bucket: 'audit', signer });
  const def = parsePipelineDefinition(JSON.parse(readFileSync(EXAMPLE, 'utf8')));
  pipeline = { def, digest: canonicalDigest(def) };
  rt = {
    mode: 'aws',
    actor: 'arn:aws:lambda:eu-west-1:111122223333:function:register-run',
    now: () => new Date('2026-11-30T16:00:00.000Z'),
    objects,
    runs,
    audit,
    signer,
    datasets: new FsDatasetSource(),
    trainer: {} as Runtime['trainer'],
    registry: {} as Runtime['registry'],
  };
  consoleStart = async (launch) =>
    new StartService({ ...startDepsOf(rt), pipelines: [pipeline], landingBucket: BUCKET, launch });
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

async function entriesOf(runId: string): Promise<AuditEntry[]> {
  const out: AuditEntry[] = [];
  for await (const e of audit.entriesOf(runId)) out.push(e);
  return out;
}

const register = (input: unknown, executionArn: string, withConsole = true) =>
  registerRun(rt, { input, executionArn }, withConsole ? { consoleStart } : {});

/** What the Registered Choice and AdoptStartedRun make of RegisterRun's output: the next state's input. */
function adopted(r: Registration): ExecState {
  if (r.outcome !== 'registered' || r.state === undefined)
    throw new Error(`not adopted: ${JSON.stringify(r)}`);
  return r.state;
}

describe('an operator start typed as the execution input in the Step Functions console', () => {
  it('goes through the start service: validated, pinned, recorded, and the run is this execution’s', async () => {
    const r = await register(consoleInput(), A);
    const state = adopted(r);
    expect(state.pipeline).toEqual({ name: 'credit-scoring', digest: pipeline.digest });
    expect(state.dataset).toEqual(consoleInput().dataset);
    expect(state.trigger.type).toBe('operator');
    expect(state.results?.registerRun).toMatchObject({ outcome: 'registered', runId: state.runId });
    const run = await runs.get(state.runId);
    expect(run?.status).toBe('RUNNING');
    expect(run?.trigger).toBe('operator');
    expect((await runs.claim(state.runId, B)).executionArn).toBe(A);
    const types = (await entriesOf(state.runId)).map((e) => `${e.step}:${e.type}`);
    expect(types).toEqual(['Start:run.requested', 'RegisterRun:step.succeeded']);
  });

  it('is deduplicated like the CLI: the same request in a second execution ends without touching the run', async () => {
    const first = adopted(await register(consoleInput(), A));
    const before = await runs.get(first.runId);
    const second = await register(consoleInput(), B);
    expect(second).toMatchObject({ outcome: 'duplicate', runId: first.runId, runStatus: 'RUNNING' });
    const after = await runs.get(first.runId);
    expect(after).toEqual(before);
    const types = (await entriesOf(first.runId)).map((e) => e.type);
    expect(types.filter((t) => t.endsWith('failed'))).toEqual([]);
  });

  it('lets a retried RegisterRun of the same execution carry on', async () => {
    const first = adopted(await register(consoleInput(), A));
    const again = adopted(await register(consoleInput(), A));
    expect(again.runId).toBe(first.runId);
    expect((await runs.get(first.runId))?.status).toBe('RUNNING');
  });

  it('starts a new run for a new request id', async () => {
    const first = adopted(await register(consoleInput('one'), A));
    const second = adopted(await register(consoleInput('two'), B));
    expect(second.runId).not.toBe(first.runId);
  });

  it('refuses a mistyped input with the reason, and starts nothing', async () => {
    const r = await register({ ...consoleInput(), focre: true }, A);
    expect(r).toMatchObject({ outcome: 'rejected', error: { code: 'EVENT_INVALID' } });
    expect(await runs.list()).toEqual([]);
  });

  it('is refused where no pipeline definitions are deployed with RegisterRun', async () => {
    const r = await register(consoleInput(), A, false);
    expect(r).toMatchObject({ outcome: 'rejected', error: { code: 'USAGE' } });
  });
});

describe('an execution state (the start function’s input, or a past execution run again)', () => {
  async function started(): Promise<ExecState> {
    // What the start function does: definition stored, run PENDING, execution launched with this state.
    await putJsonCas(rt.objects, pipeline.def);
    const state: ExecState = {
      runId: 'r-aaaaaaaaaaaaaaaaaaaaaaaaaa',
      pipeline: { name: 'credit-scoring', digest: pipeline.digest },
      dataset: consoleInput().dataset,
      trigger: { type: 's3', idempotencyKey: 'k-1', actor: 'events' },
    };
    await runs.create({
      runId: state.runId,
      pipeline: state.pipeline.name,
      pipelineDigest: state.pipeline.digest,
      trigger: 's3',
      idempotencyKey: 'k-1',
      dataset: state.dataset,
      createdAt: '2026-11-30T15:59:00.000Z',
    });
    return state;
  }

  it('registers the run for the first execution', async () => {
    const state = await started();
    expect(await register(state, A)).toMatchObject({ outcome: 'registered', runId: state.runId });
    expect((await runs.get(state.runId))?.status).toBe('RUNNING');
  });

  it('a second execution of a RUNNING run ends as a duplicate and writes nothing', async () => {
    const state = await started();
    await register(state, A);
    const before = { run: await runs.get(state.runId), log: await entriesOf(state.runId) };
    expect(await register(state, B)).toMatchObject({ outcome: 'duplicate', runStatus: 'RUNNING' });
    // And when that execution's RegisterRun had failed instead, its RecordFailure leaves the run alone too.
    const failed = await recordFailure(rt, {
      input: { ...state, error: { Error: 'Veritrail.INTERNAL', Cause: 'boom' } },
      executionArn: B,
    });
    expect(failed.recorded).toBe(false);
    expect(await runs.get(state.runId)).toEqual(before.run);
    expect(await entriesOf(state.runId)).toEqual(before.log);
  });

  it('a finished run is never touched again: no status change, no failure entry', async () => {
    const state = await started();
    await register(state, A);
    await runs.transition(state.runId, 'SUCCEEDED');
    const before = { run: await runs.get(state.runId), log: await entriesOf(state.runId) };
    const rerun = arn('rerun');
    expect(await register(state, rerun)).toMatchObject({ outcome: 'duplicate', runStatus: 'SUCCEEDED' });
    const failed = await recordFailure(rt, {
      input: { ...state, error: { Error: 'Veritrail.RUN_TRANSITION_ILLEGAL', Cause: 'x' } },
      executionArn: rerun,
    });
    expect(failed).toMatchObject({ recorded: false, status: 'SUCCEEDED' });
    expect(await runs.get(state.runId)).toEqual(before.run);
    expect(await entriesOf(state.runId)).toEqual(before.log);
  });

  it('RecordFailure of the owning execution ends the run FAILED and settles its claim', async () => {
    const state = await started();
    await register(state, A);
    expect((await runs.active()).map((c) => c.runId)).toContain(state.runId);
    const out = await recordFailure(rt, {
      input: {
        ...state,
        error: { Error: 'Veritrail.TRAINING_FAILED', Cause: '{"code":"TRAINING_FAILED","message":"oom"}' },
      },
      executionArn: A,
    });
    expect(out).toMatchObject({ recorded: true, status: 'FAILED', error: { code: 'TRAINING_FAILED' } });
    expect((await runs.get(state.runId))?.status).toBe('FAILED');
    expect((await entriesOf(state.runId)).map((e) => e.type).slice(-2)).toEqual([
      'run.failed',
      'report.signed',
    ]);
    expect((await runs.active()).map((c) => c.runId)).not.toContain(state.runId);
  });

  it('needs the execution ARN from its Task state', async () => {
    const state = await started();
    await expect(registerRun(rt, state)).rejects.toMatchObject({ name: 'Veritrail.INTERNAL' });
  });
});
