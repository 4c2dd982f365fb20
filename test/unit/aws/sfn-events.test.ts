import { EventBridgeClient, PutEventsCommand, type PutEventsRequestEntry } from '@aws-sdk/client-eventbridge';
import {
  ExecutionAlreadyExists,
  SendTaskFailureCommand,
  SendTaskSuccessCommand,
  SFNClient,
  StartExecutionCommand,
  TaskDoesNotExist,
  TaskTimedOut,
} from '@aws-sdk/client-sfn';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { DetailType, EventPublisher } from '../../../src/aws/events.js';
import { executionArnOf, SFN_LIMITS, StepFunctions, truncate } from '../../../src/aws/sfn.js';
import { awsError, codeOf, errorOf } from './helpers.js';

const sfnMock = mockClient(SFNClient);
const ebMock = mockClient(EventBridgeClient);
const SM = 'arn:aws:states:eu-west-1:111122223333:stateMachine:veritrail-training';

beforeEach(() => {
  sfnMock.reset();
  ebMock.reset();
});

describe('StepFunctions.startExecution', () => {
  const sfn = () => new StepFunctions(new SFNClient({ region: 'eu-west-1' }));

  it('starts with the caller’s deterministic name and the JSON input', async () => {
    sfnMock
      .on(StartExecutionCommand)
      .resolves({ executionArn: `${SM.replace('stateMachine', 'execution')}:run-1` });
    const out = await sfn().startExecution(SM, 'run-1', { pipeline: 'credit', dataset: 's3://b/k' });
    expect(out).toEqual({
      executionArn: 'arn:aws:states:eu-west-1:111122223333:execution:veritrail-training:run-1',
      alreadyStarted: false,
    });
    expect(sfnMock.commandCalls(StartExecutionCommand)[0]?.args[0].input).toEqual({
      stateMachineArn: SM,
      name: 'run-1',
      input: '{"pipeline":"credit","dataset":"s3://b/k"}',
    });
  });

  describe('when the trigger is delivered twice', () => {
    it('reports ExecutionAlreadyExists as already started, with the execution’s ARN', async () => {
      sfnMock
        .on(StartExecutionCommand)
        .rejects(new ExecutionAlreadyExists({ message: 'exists', $metadata: {} }));
      await expect(sfn().startExecution(SM, 'run-1', {})).resolves.toEqual({
        executionArn: 'arn:aws:states:eu-west-1:111122223333:execution:veritrail-training:run-1',
        alreadyStarted: true,
      });
    });
  });

  it('refuses names Step Functions would reject, before any request', async () => {
    for (const name of ['', 'a b', 'a/b', 'a:b', 'x'.repeat(81), 'tab\there', 'ctl\u0001']) {
      expect(await codeOf(sfn().startExecution(SM, name, {}))).toBe('USAGE');
    }
    expect(sfnMock.calls()).toHaveLength(0);
  });

  it('names the configuring variable when the state machine does not exist', async () => {
    sfnMock.on(StartExecutionCommand).rejects(awsError('StateMachineDoesNotExist', 400));
    const e = await errorOf(sfn().startExecution(SM, 'run-1', {}));
    expect(e).toMatchObject({ code: 'INTERNAL' });
    expect((e as Error).message).toContain('VERITRAIL_STATE_MACHINE_ARN');
  });

  it('maps ExecutionLimitExceeded and throttling to TRANSIENT', async () => {
    sfnMock.on(StartExecutionCommand).rejects(awsError('ExecutionLimitExceeded', 400));
    expect(await codeOf(sfn().startExecution(SM, 'run-1', {}))).toBe('TRANSIENT');
    sfnMock.on(StartExecutionCommand).rejects(awsError('ThrottlingException', 400));
    expect(await codeOf(sfn().startExecution(SM, 'run-1', {}))).toBe('TRANSIENT');
  });

  it('refuses an input over 256 KiB', async () => {
    expect(await codeOf(sfn().startExecution(SM, 'run-1', { x: 'a'.repeat(SFN_LIMITS.payloadBytes) }))).toBe(
      'EVENT_INVALID',
    );
  });

  it('derives execution ARNs and refuses non-state-machine ARNs', () => {
    expect(executionArnOf(SM, 'n')).toBe(
      'arn:aws:states:eu-west-1:111122223333:execution:veritrail-training:n',
    );
    expect(() => executionArnOf('arn:aws:s3:::bucket', 'n')).toThrow();
  });
});

describe('StepFunctions task tokens', () => {
  const sfn = () => new StepFunctions(new SFNClient({ region: 'eu-west-1' }));

  it('sends the output as JSON on success', async () => {
    sfnMock.on(SendTaskSuccessCommand).resolves({});
    await expect(sfn().sendTaskSuccess('tok', { status: 'Completed' })).resolves.toEqual({ delivered: true });
    expect(sfnMock.commandCalls(SendTaskSuccessCommand)[0]?.args[0].input).toEqual({
      taskToken: 'tok',
      output: '{"status":"Completed"}',
    });
  });

  it('cuts error to 256 and cause to 32768 characters on failure', async () => {
    sfnMock.on(SendTaskFailureCommand).resolves({});
    await sfn().sendTaskFailure('tok', 'E'.repeat(300), 'c'.repeat(40_000));
    const input = sfnMock.commandCalls(SendTaskFailureCommand)[0]?.args[0].input;
    expect(input?.error).toHaveLength(256);
    expect(input?.cause).toHaveLength(32_768);
    expect(input?.taskToken).toBe('tok');
  });

  it('never splits a surrogate pair when cutting', () => {
    expect(truncate(`${'a'.repeat(255)}😀`, 256)).toBe('a'.repeat(255));
    expect(truncate('short', 256)).toBe('short');
  });

  describe('when the event that completes the task arrives a second time', () => {
    it('reports TaskDoesNotExist and TaskTimedOut as not delivered instead of failing', async () => {
      sfnMock.on(SendTaskSuccessCommand).rejects(new TaskDoesNotExist({ message: 'gone', $metadata: {} }));
      await expect(sfn().sendTaskSuccess('tok', {})).resolves.toEqual({
        delivered: false,
        reason: 'TaskDoesNotExist',
      });
      sfnMock.on(SendTaskFailureCommand).rejects(new TaskTimedOut({ message: 'late', $metadata: {} }));
      await expect(sfn().sendTaskFailure('tok', 'E', 'c')).resolves.toEqual({
        delivered: false,
        reason: 'TaskTimedOut',
      });
    });
  });

  it('maps a malformed token to EVENT_INVALID without echoing the token', async () => {
    sfnMock.on(SendTaskSuccessCommand).rejects(awsError('InvalidToken', 400));
    const e = await errorOf(sfn().sendTaskSuccess('secret-token-value', {}));
    expect(e).toMatchObject({ code: 'EVENT_INVALID' });
    expect((e as Error).message).not.toContain('secret-token-value');
  });
});

describe('EventPublisher', () => {
  const sleeps: number[] = [];
  const publisher = (maxAttempts = 4) =>
    new EventPublisher(new EventBridgeClient({ region: 'eu-west-1' }), {
      eventBusName: 'veritrail-dev',
      maxAttempts,
      baseDelayMs: 100,
      random: () => 0.5,
      sleep: async (ms) => {
        sleeps.push(ms);
      },
    });
  beforeEach(() => {
    sleeps.length = 0;
  });

  it('sends source veritrail, the detail type and the JSON detail', async () => {
    ebMock.on(PutEventsCommand).resolves({ FailedEntryCount: 0, Entries: [{ EventId: '1' }] });
    const time = new Date('2026-11-26T10:00:00Z');
    await publisher().publish([
      {
        detailType: DetailType.RUN_STATUS_CHANGE,
        detail: { runId: 'r', status: 'SUCCEEDED' },
        resources: ['arn:exec'],
        time,
      },
    ]);
    expect(ebMock.commandCalls(PutEventsCommand)[0]?.args[0].input).toEqual({
      Entries: [
        {
          Source: 'veritrail',
          DetailType: 'Run Status Change',
          Detail: '{"runId":"r","status":"SUCCEEDED"}',
          EventBusName: 'veritrail-dev',
          Resources: ['arn:exec'],
          Time: time,
        },
      ],
    });
  });

  it('batches at most 10 entries per call, in order', async () => {
    ebMock.on(PutEventsCommand).resolves({ FailedEntryCount: 0 });
    const events = Array.from({ length: 23 }, (_, i) => ({
      detailType: DetailType.OPENLINEAGE_RUN_EVENT,
      detail: { i },
    }));
    await publisher().publish(events);
    const batches = ebMock
      .commandCalls(PutEventsCommand)
      .map((c) =>
        (c.args[0].input.Entries ?? []).map((e: PutEventsRequestEntry) => JSON.parse(e.Detail ?? '{}').i),
      );
    expect(batches.map((b) => b.length)).toEqual([10, 10, 3]);
    expect(batches.flat()).toEqual(Array.from({ length: 23 }, (_, i) => i));
  });

  describe('when some entries fail (FailedEntryCount > 0)', () => {
    it('retries only the failed entries, with backoff, until they are accepted', async () => {
      ebMock
        .on(PutEventsCommand)
        .resolvesOnce({
          FailedEntryCount: 2,
          Entries: [
            { ErrorCode: 'ThrottlingException', ErrorMessage: 'slow down' },
            { EventId: 'ok' },
            { ErrorCode: 'InternalFailure', ErrorMessage: 'oops' },
          ],
        })
        .resolvesOnce({ FailedEntryCount: 1, Entries: [{ EventId: 'a' }, { ErrorCode: 'InternalFailure' }] })
        .resolves({ FailedEntryCount: 0, Entries: [{ EventId: 'c' }] });
      await publisher().publish(
        ['a', 'b', 'c'].map((x) => ({ detailType: DetailType.RUN_STATUS_CHANGE, detail: { x } })),
      );
      const calls = ebMock
        .commandCalls(PutEventsCommand)
        .map((c) =>
          (c.args[0].input.Entries ?? []).map((e: PutEventsRequestEntry) => JSON.parse(e.Detail ?? '{}').x),
        );
      expect(calls).toEqual([['a', 'b', 'c'], ['a', 'c'], ['c']]);
      // Full jitter with random() = 0.5: 0.5 × 100 × 2^(attempt-1).
      expect(sleeps).toEqual([50, 100]);
    });

    it('fails with TRANSIENT once the attempts are used up', async () => {
      ebMock
        .on(PutEventsCommand)
        .resolves({ FailedEntryCount: 1, Entries: [{ ErrorCode: 'InternalFailure' }] });
      expect(
        await codeOf(publisher(3).publish([{ detailType: DetailType.RUN_STATUS_CHANGE, detail: {} }])),
      ).toBe('TRANSIENT');
      expect(ebMock.commandCalls(PutEventsCommand)).toHaveLength(3);
    });

    it('does not retry an entry EventBridge calls malformed', async () => {
      ebMock.on(PutEventsCommand).resolves({
        FailedEntryCount: 1,
        Entries: [{ ErrorCode: 'MalformedDetail', ErrorMessage: 'Detail is malformed.' }],
      });
      expect(
        await codeOf(publisher().publish([{ detailType: DetailType.RUN_STATUS_CHANGE, detail: {} }])),
      ).toBe('EVENT_INVALID');
      expect(ebMock.commandCalls(PutEventsCommand)).toHaveLength(1);
    });
  });

  it('refuses an event over 256 KiB before sending anything', async () => {
    expect(
      await codeOf(
        publisher().publish([
          { detailType: DetailType.RUN_STATUS_CHANGE, detail: { x: 'a'.repeat(262_144) } },
        ]),
      ),
    ).toBe('EVENT_INVALID');
    expect(ebMock.calls()).toHaveLength(0);
  });

  it('translates a failed call', async () => {
    ebMock.on(PutEventsCommand).rejects(awsError('AccessDeniedException', 400));
    const e = await errorOf(publisher().publish([{ detailType: DetailType.RUN_STATUS_CHANGE, detail: {} }]));
    expect((e as Error).message).toContain('events:PutEvents');
  });
});
