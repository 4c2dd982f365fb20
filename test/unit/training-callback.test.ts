/**
 * functions/training-callback.ts with a fake runtime (in-memory runs, objects and audit log) and
 * the real StepFunctions adapter over a mocked SFN client: the Train step's second half on AWS.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import {
  SendTaskFailureCommand,
  SendTaskSuccessCommand,
  SFNClient,
  TaskDoesNotExist,
  TaskTimedOut,
} from '@aws-sdk/client-sfn';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  type CallbackRuntime,
  handler,
  handleTrainingJobEvent,
  runIdOfJob,
} from '../../functions/training-callback.js';
import { StepFunctions } from '../../src/aws/sfn.js';
import type { Digest } from '../../src/core/digest.js';
import { errorFromCatch, VeritrailError } from '../../src/core/errors.js';
import { parseTrainingJobStateChangeEvent } from '../../src/core/events/index.js';
import type { ExecState } from '../../src/core/exec-state.js';
import type { RunStatus } from '../../src/core/run.js';
import type { AuditEventInput, Bucket, RunRecord, StepRecord } from '../../src/ports.js';
import { trainingJobName } from '../../src/steps/train.js';

const sfnMock = mockClient(SFNClient);

const RUN_ID = 'r-abcdefghijklmnopqrstuvwxyz';
const JOB = trainingJobName(RUN_ID);
const TOKEN = 'AQCEAAAAKgAAAAMAAAAAAAAAAX…task-token';
const ARTIFACTS = 'prod-veritrail-storage-artifactsbucket-1a2b3c';
const PREFIX = `training/credit-scoring/${JOB}/output/`;
const MODEL = Buffer.from('model.tar.gz bytes');
const OUTPUT = Buffer.from('output.tar.gz bytes');
const sha = (b: Buffer): Digest => `sha256:${createHash('sha256').update(b).digest('hex')}`;

const STATE: ExecState = {
  runId: RUN_ID,
  pipeline: { name: 'credit-scoring', digest: `sha256:${'a'.repeat(64)}` },
  dataset: { uri: 's3://prod-landing/credit-scoring/applications.csv', versionId: 'v1' },
  trigger: { type: 's3', idempotencyKey: 'k1' },
};

/** Everything the fake runtime was asked to do, in order. */
let calls: string[];
let runs: Map<string, RunRecord>;
/** Task tokens by `<runId>/<step>`: their own items, apart from the run record. */
let tokens: Map<string, string>;
let objects: Map<string, Buffer>;
let audited: AuditEventInput[];
let openFails: Error | undefined;

function runRecord(status: RunStatus = 'RUNNING', facts: Record<string, unknown> = {}): RunRecord {
  return {
    runId: RUN_ID,
    pipeline: 'credit-scoring',
    pipelineDigest: STATE.pipeline.digest,
    status,
    trigger: 's3',
    idempotencyKey: 'k1',
    dataset: { uri: STATE.dataset.uri },
    createdAt: '2026-01-01T00:00:00.000Z',
    updatedAt: '2026-01-01T00:00:00.000Z',
    steps: [],
    facts: {
      training: { jobName: JOB, startedAt: '2026-01-01T00:10:00.000Z', state: STATE },
      ...facts,
    },
  };
}

function fakeRuntime(): CallbackRuntime {
  return {
    mode: 'aws',
    actor: 'arn:aws:lambda:eu-west-1:111122223333:function:training-callback',
    now: () => new Date('2026-01-01T01:00:00.000Z'),
    config: { buckets: { artifacts: ARTIFACTS } },
    stepFunctions: new StepFunctions(new SFNClient({ region: 'eu-west-1' })),
    objects: {
      async open(bucket: Bucket, key: string) {
        calls.push(`open ${bucket} ${key}`);
        if (openFails) throw openFails;
        const body = objects.get(`${bucket}/${key}`);
        if (!body) throw new VeritrailError('OBJECT_NOT_FOUND', `no object at ${key}`);
        return Readable.from([body]);
      },
      put: async () => {
        throw new Error('the callback writes no artifact');
      },
      head: async () => undefined,
      list: async function* () {},
    },
    runs: {
      get: async (id: string) => runs.get(id),
      async recordStep(id: string, step: StepRecord, facts?: Record<string, unknown>) {
        calls.push(`recordStep ${step.name} ${step.status}`);
        const run = runs.get(id);
        if (!run) throw new VeritrailError('RUN_NOT_FOUND', id);
        run.steps.push(step);
        Object.assign(run.facts, facts);
      },
      create: async () => {
        throw new Error('not used');
      },
      transition: async () => {
        throw new Error('not used');
      },
      list: async () => [],
      async putTaskToken(id: string, step: string, token: string) {
        tokens.set(`${id}/${step}`, token);
      },
      async getTaskToken(id: string, step: string) {
        return tokens.get(`${id}/${step}`);
      },
    } as CallbackRuntime['runs'],
    audit: {
      async append(event: AuditEventInput) {
        calls.push(`audit ${event.type}`);
        audited.push(event);
        return { ...event, seq: audited.length - 1, time: '2026-01-01T01:00:00.000Z', prev: '0'.repeat(64) };
      },
    },
    signer: { keyId: 'k', publicKeyPem: async () => '', sign: async () => new Uint8Array() },
    trainer: {
      start: async () => {
        throw new Error('not used');
      },
      wait: async () => {
        throw new Error('not used');
      },
    },
    datasets: {
      list: async () => [],
      open: async () => Readable.from([]),
    },
    registry: {} as CallbackRuntime['registry'],
  };
}

/** The event SageMaker sends (EventBridge User Guide, SageMaker events; detail as DescribeTrainingJob). */
function stateChange(detail: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    version: '0',
    id: '844e2571-85d4-695f-b930-0153b71dcb42',
    'detail-type': 'SageMaker Training Job State Change',
    source: 'aws.sagemaker',
    account: '111122223333',
    time: '2026-01-01T01:00:00Z',
    region: 'eu-west-1',
    resources: [`arn:aws:sagemaker:eu-west-1:111122223333:training-job/${JOB}`],
    detail: {
      TrainingJobName: JOB,
      TrainingJobArn: `arn:aws:sagemaker:eu-west-1:111122223333:training-job/${JOB}`,
      TrainingJobStatus: 'Completed',
      SecondaryStatus: 'Completed',
      OutputDataConfig: {
        KmsKeyId: 'arn:aws:kms:eu-west-1:111122223333:key/data',
        S3OutputPath: `s3://${ARTIFACTS}/training/credit-scoring`,
      },
      ModelArtifacts: { S3ModelArtifacts: `s3://${ARTIFACTS}/${PREFIX}model.tar.gz` },
      Tags: { 'veritrail:run-id': RUN_ID, 'veritrail:pipeline': 'credit-scoring' },
      ...detail,
    },
  };
}

beforeEach(() => {
  vi.spyOn(console, 'info').mockImplementation(() => undefined);
  sfnMock.reset();
  sfnMock.on(SendTaskSuccessCommand).callsFake(() => {
    calls.push('SendTaskSuccess');
    return {};
  });
  sfnMock.on(SendTaskFailureCommand).callsFake(() => {
    calls.push('SendTaskFailure');
    return {};
  });
  calls = [];
  audited = [];
  openFails = undefined;
  runs = new Map([[RUN_ID, runRecord()]]);
  tokens = new Map([[`${RUN_ID}/Train`, TOKEN]]);
  objects = new Map([
    [`artifacts/${PREFIX}model.tar.gz`, MODEL],
    [`artifacts/${PREFIX}output.tar.gz`, OUTPUT],
  ]);
});

afterEach(() => {
  vi.restoreAllMocks();
});

describe('when the training job completed', () => {
  it('hashes model and output, audits the Train step, then sends the output with the task token', async () => {
    const out = await handleTrainingJobEvent(fakeRuntime(), stateChange());
    expect(out).toEqual({ action: 'succeeded', jobName: JOB, runId: RUN_ID, delivered: true });
    // Invariant 1: the audit entry is durable before Step Functions hears of success.
    expect(calls).toEqual([
      `open artifacts ${PREFIX}model.tar.gz`,
      `open artifacts ${PREFIX}output.tar.gz`,
      'audit step.succeeded',
      'recordStep Train SUCCEEDED',
      'SendTaskSuccess',
    ]);
    const input = sfnMock.commandCalls(SendTaskSuccessCommand)[0]?.args[0].input;
    expect(input?.taskToken).toBe(TOKEN);
    expect(JSON.parse(input?.output ?? '')).toEqual({
      jobName: JOB,
      model: { key: `${PREFIX}model.tar.gz`, digest: sha(MODEL) },
      output: { key: `${PREFIX}output.tar.gz`, digest: sha(OUTPUT) },
      startedAt: '2026-01-01T00:10:00.000Z',
      endedAt: '2026-01-01T01:00:00.000Z',
    });
    expect(audited[0]).toMatchObject({
      eventId: `${RUN_ID}/Train/succeeded`,
      subjects: { model: sha(MODEL), trainingOutput: sha(OUTPUT) },
    });
  });

  it('finds the model under S3OutputPath/<job>/output/ when the event names no model artifacts', async () => {
    const event = stateChange();
    delete (event.detail as Record<string, unknown>).ModelArtifacts;
    await expect(handleTrainingJobEvent(fakeRuntime(), event)).resolves.toMatchObject({
      action: 'succeeded',
    });
    expect(calls[0]).toBe(`open artifacts ${PREFIX}model.tar.gz`);
  });

  it('refuses a model outside the artifacts bucket: the step fails, nothing of that bucket is read', async () => {
    const out = await handleTrainingJobEvent(
      fakeRuntime(),
      stateChange({ ModelArtifacts: { S3ModelArtifacts: `s3://someone-else/${PREFIX}model.tar.gz` } }),
    );
    expect(out).toMatchObject({ action: 'failed', delivered: true });
    expect(calls.some((c) => c.startsWith('open'))).toBe(false);
    const input = sfnMock.commandCalls(SendTaskFailureCommand)[0]?.args[0].input;
    expect(input?.error).toBe('Veritrail.TRAINING_FAILED');
  });
});

describe('when the training job failed or was stopped', () => {
  it.each(['Failed', 'Stopped'])(
    '%s: audits the failure and fails the task with a Cause RecordFailure reads',
    async (status) => {
      const out = await handleTrainingJobEvent(
        fakeRuntime(),
        stateChange({
          TrainingJobStatus: status,
          FailureReason: 'AlgorithmError: channel digest mismatch',
          ModelArtifacts: undefined,
        }),
      );
      expect(out).toEqual({ action: 'failed', jobName: JOB, runId: RUN_ID, delivered: true });
      expect(calls).toEqual(['audit step.failed', 'recordStep Train FAILED', 'SendTaskFailure']);
      const input = sfnMock.commandCalls(SendTaskFailureCommand)[0]?.args[0].input;
      expect(input?.taskToken).toBe(TOKEN);
      expect(input?.error).toBe('Veritrail.TRAINING_FAILED');
      // What the state machine's Catch hands to RecordFailure, parsed as RecordFailure parses it.
      const info = errorFromCatch({ Error: input?.error ?? '', Cause: input?.cause ?? '' });
      expect(info.code).toBe('TRAINING_FAILED');
      expect(info.message).toContain('channel digest mismatch');
    },
  );
});

describe('when the event is delivered again', () => {
  it.each([
    ['TaskDoesNotExist', new TaskDoesNotExist({ message: 'Task does not exist anymore', $metadata: {} })],
    ['TaskTimedOut', new TaskTimedOut({ message: 'Task Timed Out', $metadata: {} })],
  ])('treats %s as already done, without an error', async (_name, error) => {
    sfnMock.on(SendTaskSuccessCommand).rejects(error);
    await expect(handleTrainingJobEvent(fakeRuntime(), stateChange())).resolves.toEqual({
      action: 'succeeded',
      jobName: JOB,
      runId: RUN_ID,
      delivered: false,
    });
  });

  it('drops it when the run has already ended', async () => {
    runs.set(RUN_ID, runRecord('SUCCEEDED'));
    await expect(handleTrainingJobEvent(fakeRuntime(), stateChange())).resolves.toMatchObject({
      action: 'ignored',
    });
    expect(calls).toEqual([]);
    expect(sfnMock.calls()).toHaveLength(0);
  });
});

describe('when the event is not for a run of this deployment', () => {
  it('ignores a job of no recorded run (another stage shares the account’s event bus)', async () => {
    runs.clear();
    await expect(handleTrainingJobEvent(fakeRuntime(), stateChange())).resolves.toMatchObject({
      action: 'ignored',
      runId: RUN_ID,
    });
    expect(sfnMock.calls()).toHaveLength(0);
  });

  it('ignores a run whose recorded job is another one', async () => {
    runs.set(RUN_ID, runRecord('RUNNING', { training: { jobName: 'vt-other', state: STATE } }));
    await expect(handleTrainingJobEvent(fakeRuntime(), stateChange())).resolves.toMatchObject({
      action: 'ignored',
    });
    expect(sfnMock.calls()).toHaveLength(0);
  });
});

describe('which run a job belongs to', () => {
  it('reads the veritrail:run-id tag, in either tag shape', () => {
    const tagged = stateChange({
      TrainingJobName: 'vt-something-else',
      Tags: [{ Key: 'veritrail:run-id', Value: RUN_ID }],
    });
    expect(runIdOfJob(parseTrainingJobStateChangeEvent(tagged))).toBe(RUN_ID);
  });

  it('derives it from the job name vt-<runId> when the event carries no tags', async () => {
    const event = stateChange({ Tags: {} });
    expect(runIdOfJob(parseTrainingJobStateChangeEvent(event))).toBe(RUN_ID);
    await expect(handleTrainingJobEvent(fakeRuntime(), event)).resolves.toMatchObject({
      action: 'succeeded',
    });
  });

  it('has none for a job that is not ours', () => {
    expect(
      runIdOfJob(parseTrainingJobStateChangeEvent(stateChange({ TrainingJobName: 'my-job', Tags: {} }))),
    ).toBeUndefined();
  });
});

describe('when the job is still running, or the event is malformed', () => {
  it.each(['InProgress', 'Stopping'])('ignores %s', async (status) => {
    await expect(
      handleTrainingJobEvent(fakeRuntime(), stateChange({ TrainingJobStatus: status })),
    ).resolves.toMatchObject({ action: 'ignored' });
    expect(calls).toEqual([]);
    expect(sfnMock.calls()).toHaveLength(0);
  });

  it('refuses a malformed event with EVENT_INVALID', async () => {
    await expect(
      handleTrainingJobEvent(fakeRuntime(), stateChange({ TrainingJobName: 'bad name!' })),
    ).rejects.toMatchObject({ code: 'EVENT_INVALID' });
    expect(sfnMock.calls()).toHaveLength(0);
  });
});

describe('when reading the model fails transiently', () => {
  it('throws TRANSIENT for Lambda to redeliver, and does not fail the task (a Train retry would relaunch)', async () => {
    openFails = new VeritrailError('TRANSIENT', 's3:GetObject was throttled');
    await expect(handleTrainingJobEvent(fakeRuntime(), stateChange())).rejects.toMatchObject({
      code: 'TRANSIENT',
    });
    expect(sfnMock.calls()).toHaveLength(0);
  });
});

describe('the task token', () => {
  it('comes from its own item: the run record the callback reads does not hold it', async () => {
    expect(JSON.stringify(runs.get(RUN_ID))).not.toContain(TOKEN);
    const out = await handleTrainingJobEvent(fakeRuntime(), stateChange());
    expect(out).toMatchObject({ action: 'succeeded', delivered: true });
    expect(sfnMock.commandCalls(SendTaskSuccessCommand)[0]?.args[0].input.taskToken).toBe(TOKEN);
    // Nothing the callback wrote to the run or the audit log carries it.
    expect(JSON.stringify(runs.get(RUN_ID))).not.toContain(TOKEN);
    expect(JSON.stringify(audited)).not.toContain(TOKEN);
  });

  it('when none was stored, the step is still finished and audited, and nothing is sent', async () => {
    tokens.clear();
    const out = await handleTrainingJobEvent(fakeRuntime(), stateChange());
    expect(out).toMatchObject({ action: 'ignored', reason: 'the run recorded no task token to resolve' });
    expect(calls).toContain('audit step.succeeded');
    expect(sfnMock.commandCalls(SendTaskSuccessCommand)).toHaveLength(0);
  });
});

describe('the Lambda handler', () => {
  it('runs the callback with the runtime its invocation carries', async () => {
    const out = await handler(stateChange(), { runtime: fakeRuntime() } as never);
    expect(out).toMatchObject({ action: 'succeeded', runId: RUN_ID });
  });

  it('refuses to run without the AWS runtime', async () => {
    const { stepFunctions: _s, config: _c, ...local } = fakeRuntime();
    await expect(
      handler(stateChange(), { runtime: { ...local, mode: 'local' } } as never),
    ).rejects.toMatchObject({ code: 'USAGE' });
  });
});
