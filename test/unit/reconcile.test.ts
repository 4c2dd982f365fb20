/**
 * The reconciler over the real run store (dynalite), a file object store and the real audit log,
 * with Step Functions through the real adapter over a mocked SFN client and SageMaker as a fake
 * job table: every way a run could be left RUNNING ends in a recorded outcome.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DescribeExecutionCommand,
  ExecutionDoesNotExist,
  SendTaskFailureCommand,
  SendTaskHeartbeatCommand,
  SendTaskSuccessCommand,
  SFNClient,
} from '@aws-sdk/client-sfn';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { type ObjectAuditLog, openAuditLog } from '../../src/audit/log.js';
import { DynamoRunStore, ensureRunTable } from '../../src/aws/dynamo-run-store.js';
import {
  type ReconcileRuntime,
  reconcile,
  reconcileOrThrow,
  type TrainingJobState,
} from '../../src/aws/reconcile.js';
import { StepFunctions } from '../../src/aws/sfn.js';
import type { ExecState } from '../../src/core/exec-state.js';
import { type LocalDynamo, startLocalDynamo } from '../../src/local/dynamo.js';
import { openFileSigner } from '../../src/local/file-signer.js';
import { FsObjectStore } from '../../src/local/fs-object-store.js';
import type { AuditEntry } from '../../src/ports.js';
import type { Runtime } from '../../src/runtime.js';
import { trainingJobName } from '../../src/steps/train.js';

const sfnMock = mockClient(SFNClient);
const ARTIFACTS = 'prod-veritrail-artifacts';
const RUN_ID = 'r-reconcilereconcilereconci';
const JOB = trainingJobName(RUN_ID);
const TOKEN = 'AQCEAAAAKgAAAAMAAAAAAAAAAX-task-token-for-reconcile';
const EXECUTION = 'arn:aws:states:eu-west-1:111122223333:execution:training-pipeline:credit-scoring-s3-r-x';
const NOW = new Date('2026-11-30T16:30:00.000Z');
const OUT = `training/credit-scoring/${JOB}/output/`;
const STATE: ExecState = {
  runId: RUN_ID,
  pipeline: { name: 'credit-scoring', digest: `sha256:${'a'.repeat(64)}` },
  dataset: { uri: 's3://landing/credit-scoring/a.csv', versionId: 'v1' },
  trigger: { type: 's3', idempotencyKey: 'k-1' },
};

let dynamo: LocalDynamo;
let dir: string;
let runs: DynamoRunStore;
let audit: ObjectAuditLog;
let objects: FsObjectStore;
let jobs: Map<string, TrainingJobState>;
let executionStatus: { status: string; stopDate?: Date } | 'missing';
let rt: ReconcileRuntime;

beforeAll(async () => {
  dynamo = await startLocalDynamo(undefined);
});
afterAll(async () => dynamo.close());

beforeEach(async () => {
  vi.spyOn(console, 'info').mockImplementation(() => undefined);
  dir = mkdtempSync(join(tmpdir(), 'veritrail-reconcile-'));
  const table = `runs-${Math.random().toString(36).slice(2)}`;
  await ensureRunTable(dynamo.client, table);
  runs = new DynamoRunStore(dynamo.client, table, () => NOW);
  objects = new FsObjectStore(join(dir, 'objects'));
  const signer = await openFileSigner(join(dir, 'signing.key'));
  audit = openAuditLog({ store: objects, bucket: 'audit', signer });
  jobs = new Map();
  executionStatus = { status: 'RUNNING' };
  sfnMock.reset();
  sfnMock.on(DescribeExecutionCommand).callsFake(() => {
    if (executionStatus === 'missing') throw new ExecutionDoesNotExist({ message: 'no', $metadata: {} });
    return { executionArn: EXECUTION, ...executionStatus };
  });
  sfnMock.on(SendTaskSuccessCommand).resolves({});
  sfnMock.on(SendTaskFailureCommand).resolves({});
  sfnMock.on(SendTaskHeartbeatCommand).resolves({});
  rt = {
    mode: 'aws',
    actor: 'arn:aws:lambda:eu-west-1:111122223333:function:reconcile',
    now: () => NOW,
    objects,
    runs,
    audit,
    signer,
    config: { buckets: { artifacts: ARTIFACTS } },
    stepFunctions: new StepFunctions(new SFNClient({ region: 'eu-west-1' })),
    trainingJobs: {
      describe: async (name: string) => jobs.get(name) ?? { status: 'missing' },
    },
    trainer: {} as Runtime['trainer'],
    datasets: {} as Runtime['datasets'],
    registry: {} as Runtime['registry'],
  };
});
afterEach(() => {
  vi.restoreAllMocks();
  rmSync(dir, { recursive: true, force: true });
});

/** A run as the Train state leaves it on AWS: RUNNING, Train launched, token stored, claim active. */
async function waitingInTrain(): Promise<void> {
  await runs.create({
    runId: RUN_ID,
    pipeline: 'credit-scoring',
    pipelineDigest: STATE.pipeline.digest,
    trigger: 's3',
    idempotencyKey: 'k-1',
    dataset: STATE.dataset,
    createdAt: '2026-11-30T15:00:00.000Z',
  });
  await runs.claim(RUN_ID, EXECUTION);
  await runs.transition(RUN_ID, 'RUNNING');
  await runs.putTaskToken(RUN_ID, 'Train', TOKEN);
  await runs.recordStep(
    RUN_ID,
    { name: 'Train', status: 'RUNNING', startedAt: '2026-11-30T15:10:00.000Z' },
    { training: { jobName: JOB, startedAt: '2026-11-30T15:10:00.000Z', state: STATE } },
  );
}

async function entries(): Promise<AuditEntry[]> {
  const out: AuditEntry[] = [];
  for await (const e of audit.entriesOf(RUN_ID)) out.push(e);
  return out;
}

const ended = (status: 'Completed' | 'Failed' | 'Stopped', failureReason?: string): TrainingJobState => ({
  status: 'ended',
  job: {
    jobName: JOB,
    status,
    ...(failureReason ? { failureReason } : {}),
    ...(status === 'Completed' ? { modelArtifactsUri: `s3://${ARTIFACTS}/${OUT}model.tar.gz` } : {}),
  },
});

describe('when the SageMaker state-change event never arrived', () => {
  it('finishes the Train step from DescribeTrainingJob, as the callback would, and resolves the token', async () => {
    await waitingInTrain();
    await objects.put('artifacts', `${OUT}model.tar.gz`, new TextEncoder().encode('model'));
    await objects.put('artifacts', `${OUT}output.tar.gz`, new TextEncoder().encode('output'));
    jobs.set(JOB, ended('Completed'));
    const report = await reconcile(rt);
    expect(report.actions).toEqual([
      {
        runId: RUN_ID,
        action: 'training-ended',
        outcome: { action: 'succeeded', jobName: JOB, runId: RUN_ID, delivered: true },
      },
    ]);
    const [call] = sfnMock.commandCalls(SendTaskSuccessCommand);
    expect(call?.args[0].input.taskToken).toBe(TOKEN);
    expect(JSON.parse(call?.args[0].input.output ?? '{}')).toMatchObject({
      jobName: JOB,
      model: { key: `${OUT}model.tar.gz` },
    });
    const run = await runs.get(RUN_ID);
    expect(run?.steps.find((s) => s.name === 'Train')?.status).toBe('SUCCEEDED');
    expect((await entries()).map((e) => `${e.step}:${e.type}`)).toEqual(['Train:step.succeeded']);
  });

  it('fails the task with the job’s reason when the job failed', async () => {
    await waitingInTrain();
    jobs.set(JOB, ended('Failed', 'AlgorithmError: out of memory'));
    await reconcile(rt);
    const [call] = sfnMock.commandCalls(SendTaskFailureCommand);
    expect(call?.args[0].input).toMatchObject({ taskToken: TOKEN, error: 'Veritrail.TRAINING_FAILED' });
    expect(call?.args[0].input.cause).toContain('out of memory');
  });

  it('sends a heartbeat while the job still runs, and nothing else', async () => {
    await waitingInTrain();
    jobs.set(JOB, { status: 'running', sagemakerStatus: 'InProgress' });
    const report = await reconcile(rt);
    expect(report.actions).toEqual([{ runId: RUN_ID, action: 'heartbeat', jobName: JOB, delivered: true }]);
    expect(sfnMock.commandCalls(SendTaskHeartbeatCommand)[0]?.args[0].input.taskToken).toBe(TOKEN);
    expect(sfnMock.commandCalls(SendTaskSuccessCommand)).toHaveLength(0);
    expect((await runs.get(RUN_ID))?.status).toBe('RUNNING');
  });
});

describe('when the execution ended but the run was not closed (RecordFailure failed or never ran)', () => {
  it.each(['FAILED', 'TIMED_OUT', 'ABORTED'])(
    'execution %s: the run ends FAILED with ORCHESTRATOR_LOST',
    async (status) => {
      await waitingInTrain();
      executionStatus = { status, stopDate: new Date(NOW.getTime() - 10 * 60_000) };
      const report = await reconcile(rt);
      expect(report.actions[0]).toMatchObject({ action: 'failed', executionStatus: status });
      const run = await runs.get(RUN_ID);
      expect(run?.status).toBe('FAILED');
      expect(run?.error?.code).toBe('ORCHESTRATOR_LOST');
      expect(run?.steps.find((s) => s.name === 'Train')).toMatchObject({
        status: 'FAILED',
        error: { code: 'ORCHESTRATOR_LOST' },
      });
      // The run's failure, then the report it ended with (report.signed).
      const [failed, reported] = (await entries()).slice(-2);
      expect(reported).toMatchObject({ step: 'Reconcile', type: 'report.signed' });
      expect(failed).toMatchObject({ step: 'Reconcile', type: 'run.failed', outcome: 'failure' });
      expect(failed?.detail).toMatchObject({ error: { code: 'ORCHESTRATOR_LOST' }, executionArn: EXECUTION });
      // Settled: the next pass does not look at it again.
      expect(await runs.active()).toEqual([]);
      // The token never reaches the audit log.
      expect(JSON.stringify(await entries())).not.toContain(TOKEN);
    },
  );

  it('leaves an execution that stopped moments ago to the next pass (its last task may still write)', async () => {
    await waitingInTrain();
    executionStatus = { status: 'FAILED', stopDate: new Date(NOW.getTime() - 5_000) };
    const report = await reconcile(rt);
    expect(report.actions[0]).toMatchObject({ action: 'unchanged' });
    expect((await runs.get(RUN_ID))?.status).toBe('RUNNING');
  });

  it('treats an execution Step Functions does not know as ended', async () => {
    await waitingInTrain();
    executionStatus = 'missing';
    await reconcile(rt);
    expect((await runs.get(RUN_ID))?.error?.code).toBe('ORCHESTRATOR_LOST');
  });
});

describe('when the run has ended', () => {
  it('settles its claim and calls nothing else', async () => {
    await waitingInTrain();
    await runs.transition(RUN_ID, 'SUCCEEDED');
    executionStatus = { status: 'SUCCEEDED', stopDate: new Date(NOW.getTime() - 60_000) };
    const report = await reconcile(rt);
    expect(report.actions).toEqual([{ runId: RUN_ID, action: 'settled', runStatus: 'SUCCEEDED' }]);
    expect(await runs.active()).toEqual([]);
    expect((await runs.get(RUN_ID))?.status).toBe('SUCCEEDED');
    expect(await entries()).toEqual([]);
  });
});

describe('when one run cannot be reconciled', () => {
  it('reports it, still reconciles the others, and the scheduled invocation fails', async () => {
    await waitingInTrain();
    await runs.claim('r-other', 'arn:aws:states:eu-west-1:111122223333:execution:training-pipeline:other');
    sfnMock
      .on(DescribeExecutionCommand, { executionArn: EXECUTION })
      .rejects(Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' }));
    const report = await reconcile(rt);
    expect(report.checked).toBe(2);
    expect(report.actions.find((a) => a.runId === RUN_ID)?.action).toBe('error');
    expect(report.actions.find((a) => a.runId === 'r-other')?.action).toBe('unchanged');
    await expect(reconcileOrThrow(rt)).rejects.toMatchObject({ code: 'TRANSIENT' });
  });
});

describe('DescribeTrainingJob over the SageMaker client', () => {
  it('reads an ended job, a running one, and an unknown one', async () => {
    const { SageMakerClient, DescribeTrainingJobCommand } = await import('@aws-sdk/client-sagemaker');
    const { SageMakerTrainingJobs } = await import('../../src/aws/reconcile.js');
    const sm = mockClient(SageMakerClient);
    try {
      const jobsOf = new SageMakerTrainingJobs(new SageMakerClient({ region: 'eu-west-1' }));
      sm.on(DescribeTrainingJobCommand, { TrainingJobName: 'vt-done' }).resolves({
        TrainingJobStatus: 'Completed',
        ModelArtifacts: { S3ModelArtifacts: `s3://${ARTIFACTS}/training/p/vt-done/output/model.tar.gz` },
      } as never);
      sm.on(DescribeTrainingJobCommand, { TrainingJobName: 'vt-busy' }).resolves({
        TrainingJobStatus: 'InProgress',
      } as never);
      sm.on(DescribeTrainingJobCommand, { TrainingJobName: 'vt-none' }).rejects(
        Object.assign(new Error('Requested resource not found.'), { name: 'ValidationException' }),
      );
      expect(await jobsOf.describe('vt-done')).toEqual({
        status: 'ended',
        job: {
          jobName: 'vt-done',
          status: 'Completed',
          modelArtifactsUri: `s3://${ARTIFACTS}/training/p/vt-done/output/model.tar.gz`,
        },
      });
      expect(await jobsOf.describe('vt-busy')).toEqual({ status: 'running', sagemakerStatus: 'InProgress' });
      expect(await jobsOf.describe('vt-none')).toEqual({ status: 'missing' });
    } finally {
      sm.restore();
    }
  });
});
