import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { StateMachine } from 'aws-local-stepfunctions';
import { describe, expect, it } from 'vitest';
import { localDefinition, STATE_MACHINE_FILE, TASK_FUNCTIONS } from '../../src/local/runner.js';
import { errorFromCatch } from '../../src/steps/step.js';

type State = {
  Type: string;
  Cause?: string;
  Next?: string;
  Default?: string;
  Choices?: { Variable: string; StringEquals?: string; IsPresent?: boolean; Next: string }[];
  InputPath?: string;
  Parameters?: Record<string, string>;
  HeartbeatSeconds?: number;
  TimeoutSeconds?: number;
  End?: boolean;
  Retry?: { ErrorEquals: string[] }[];
  Catch?: { ErrorEquals: string[]; Next: string }[];
  Resource?: string;
};
const asl = JSON.parse(readFileSync(STATE_MACHINE_FILE, 'utf8')) as {
  StartAt: string;
  States: Record<string, State>;
};

describe('state-machines/training-pipeline.asl.json', () => {
  it('runs the states of DESIGN.md in order', () => {
    const order: string[] = [];
    let at: string | undefined = asl.StartAt;
    while (at) {
      const state: State | undefined = asl.States[at];
      // Routing states (the Choice after RegisterRun) are not steps; a run goes on by their Default.
      if (state?.Type !== 'Choice') order.push(at);
      at = state?.Type === 'Choice' ? state.Default : state?.Next;
    }
    expect(order).toEqual([
      'RegisterRun',
      'HashDataset',
      'Preprocess',
      'CheckCode',
      'Train',
      'Evaluate',
      'Gate',
      'Sign',
      'Register',
      'Finish',
    ]);
  });

  it('retries transient errors and sends every other error of every step to RecordFailure', () => {
    for (const [name, state] of Object.entries(asl.States)) {
      if (state.Type !== 'Task') continue;
      expect(state.Retry?.[0]?.ErrorEquals, name).toContain('Veritrail.TRANSIENT');
      expect(state.Retry?.[0]?.ErrorEquals, name).toContain('Lambda.TooManyRequestsException');
      if (name === 'RecordFailure') continue;
      expect(state.Catch?.[0], name).toMatchObject({ ErrorEquals: ['States.ALL'], Next: 'RecordFailure' });
    }
    expect(asl.States.RecordFailure?.Next).toBe('RunFailed');
    expect(asl.States.RunFailed?.Type).toBe('Fail');
  });

  it('ends the execution failed even when RecordFailure itself fails (the reconciler closes the run)', () => {
    expect(asl.States.RecordFailure?.Catch).toEqual([
      expect.objectContaining({ ErrorEquals: ['States.ALL'], Next: 'RunFailed' }),
    ]);
  });

  it('hands RegisterRun and RecordFailure the execution ARN, which owns the run', () => {
    for (const name of ['RegisterRun', 'RecordFailure']) {
      expect(asl.States[name]?.Parameters, name).toEqual({
        'input.$': '$',
        'executionArn.$': '$$.Execution.Id',
      });
    }
  });

  it('routes a duplicate or skipped start to its own terminal state, never to RecordFailure', () => {
    const choice = asl.States.Registered;
    expect(asl.States.RegisterRun?.Next).toBe('Registered');
    expect(choice?.Type).toBe('Choice');
    const next = (outcome: string) =>
      choice?.Choices?.find(
        (c) => c.Variable === '$.results.registerRun.outcome' && c.StringEquals === outcome,
      )?.Next;
    expect(next('duplicate')).toBe('NothingToRun');
    expect(next('skipped')).toBe('NothingToRun');
    expect(next('rejected')).toBe('StartRejected');
    expect(asl.States.NothingToRun?.Type).toBe('Succeed');
    expect(asl.States.StartRejected?.Type).toBe('Fail');
    // An operator start's state replaces the console input before the first step.
    const adopt = choice?.Choices?.find((c) => c.IsPresent === true);
    expect(adopt).toMatchObject({ Variable: '$.results.registerRun.state', Next: 'AdoptStartedRun' });
    expect(asl.States.AdoptStartedRun).toMatchObject({
      Type: 'Pass',
      InputPath: '$.results.registerRun.state',
      Next: 'HashDataset',
    });
  });

  it('waits for training through a task token, with a heartbeat the reconciler keeps alive', () => {
    expect(asl.States.Train?.Resource).toBe('arn:aws:states:::lambda:invoke.waitForTaskToken');
    // Without the callback and the reconciler (every 5 minutes), the wait ends within minutes, not 25 h.
    expect(asl.States.Train?.HeartbeatSeconds).toBe(900);
    expect(asl.States.Train?.HeartbeatSeconds).toBeLessThan(asl.States.Train?.TimeoutSeconds ?? 0);
  });

  it('names one handler module per task, and validates as ASL once ARNs are substituted', () => {
    const tasks = Object.entries(asl.States)
      .filter(([, s]) => s.Type === 'Task')
      .map(([n]) => n)
      .sort();
    expect(tasks).toEqual(Object.keys(TASK_FUNCTIONS).sort());
    for (const file of Object.values(TASK_FUNCTIONS)) {
      expect(() => readFileSync(join(import.meta.dirname, '../../functions', `${file}.ts`))).not.toThrow();
    }
    expect(
      () =>
        new StateMachine(localDefinition() as never, {
          validationOptions: { checkPaths: true, checkArn: true },
        }),
    ).not.toThrow();
  });
});

describe('the ASL run by aws-local-stepfunctions, with stand-in tasks', () => {
  const EXECUTION = 'arn:aws:states:eu-west-1:111122223333:execution:training-pipeline:console-1';
  const STATE = {
    runId: 'r-aaaaaaaaaaaaaaaaaaaaaaaaaa',
    pipeline: { name: 'credit-scoring', digest: `sha256:${'a'.repeat(64)}` },
    dataset: { uri: 's3://landing/credit-scoring/a.csv', versionId: 'v1' },
    trigger: { type: 'operator', idempotencyKey: 'k' },
  };
  type Task = (input: unknown) => Promise<unknown>;

  async function execute(tasks: Partial<Record<string, Task>>, input: unknown) {
    const seen: { state: string; input: unknown }[] = [];
    const overrides = Object.fromEntries(
      Object.keys(TASK_FUNCTIONS).map((name) => [
        name,
        async (i: unknown) => {
          seen.push({ state: name, input: i });
          const task = tasks[name];
          if (!task) throw new Error(`${name} was not expected to run`);
          return task(i);
        },
      ]),
    );
    const machine = new StateMachine(localDefinition() as never, {
      validationOptions: { checkPaths: true, checkArn: true },
    });
    const execution = machine.run(input as never, {
      overrides: {
        taskResourceLocalHandlers: overrides as never,
        retryIntervalOverrides: Object.fromEntries(Object.keys(TASK_FUNCTIONS).map((s) => [s, 0])),
      },
      context: { Execution: { Id: EXECUTION, Name: 'console-1' } } as never,
    });
    try {
      return { output: (await execution.result) as unknown, seen };
    } catch (e) {
      return { error: e as Error, seen };
    }
  }

  it('ends a duplicate in NothingToRun: RecordFailure never runs, so the run gets no failure entry', async () => {
    const duplicate = { outcome: 'duplicate', runId: STATE.runId, runStatus: 'SUCCEEDED', reason: 'ended' };
    const r = await execute({ RegisterRun: async () => duplicate }, STATE);
    expect(r.error).toBeUndefined();
    expect((r.output as { results?: { registerRun?: unknown } }).results?.registerRun).toEqual(duplicate);
    expect(r.seen.map((s) => s.state)).toEqual(['RegisterRun']);
    expect(r.seen[0]?.input).toEqual({ input: STATE, executionArn: EXECUTION });
  });

  it('replaces an operator start with the state RegisterRun built, and names the execution to RecordFailure', async () => {
    const consoleInput = { pipeline: 'credit-scoring', dataset: STATE.dataset, requestId: 'r1' };
    const registerRun = { outcome: 'registered', runId: STATE.runId, startedAt: 't' };
    const r = await execute(
      {
        RegisterRun: async () => ({ ...registerRun, state: { ...STATE, results: { registerRun } } }),
        HashDataset: async () => {
          throw Object.assign(new Error('{"code":"DATASET_EMPTY","message":"empty"}'), {
            name: 'Veritrail.DATASET_EMPTY',
          });
        },
        RecordFailure: async () => ({ runId: STATE.runId, status: 'FAILED' }),
      },
      consoleInput,
    );
    expect(r.seen.map((s) => s.state)).toEqual(['RegisterRun', 'HashDataset', 'RecordFailure']);
    expect(r.seen[1]?.input).toEqual({ ...STATE, results: { registerRun } });
    const failure = r.seen[2]?.input as {
      input: { runId: string; error: { Error: string } };
      executionArn: string;
    };
    expect(failure.executionArn).toBe(EXECUTION);
    expect(failure.input.runId).toBe(STATE.runId);
    expect(failure.input.error.Error).toBe('Veritrail.DATASET_EMPTY');
    expect(r.error?.message).toContain(asl.States.RunFailed?.Cause);
  });

  it('ends a rejected operator start in StartRejected, not RecordFailure', async () => {
    const r = await execute(
      {
        RegisterRun: async () => ({ outcome: 'rejected', error: { code: 'EVENT_INVALID', message: 'typo' } }),
      },
      { pipeline: 'credit-scoring', dataset: STATE.dataset, focre: true },
    );
    expect(r.seen.map((s) => s.state)).toEqual(['RegisterRun']);
    expect(r.error?.message).toContain(asl.States.StartRejected?.Cause);
  });

  it('still ends the execution failed when RecordFailure itself keeps failing', async () => {
    const r = await execute(
      {
        RegisterRun: async () => {
          throw Object.assign(new Error('{"code":"INTERNAL","message":"x"}'), { name: 'Veritrail.INTERNAL' });
        },
        RecordFailure: async () => {
          throw Object.assign(new Error('{"code":"ACCESS_DENIED","message":"no"}'), {
            name: 'Veritrail.ACCESS_DENIED',
          });
        },
      },
      STATE,
    );
    expect(r.seen.map((s) => s.state)).toEqual(['RegisterRun', 'RecordFailure']);
    // It ends in RunFailed (the Catch), not with RecordFailure's own error escaping the machine.
    expect(r.error?.message).toContain(asl.States.RunFailed?.Cause);
    expect(r.error?.message).not.toContain('ACCESS_DENIED');
  });
});

describe('a Train state that nobody reports on', () => {
  it('is recorded as ORCHESTRATOR_LOST, not as an internal error', () => {
    expect(errorFromCatch({ Error: 'States.HeartbeatTimeout', Cause: '' })).toMatchObject({
      code: 'ORCHESTRATOR_LOST',
    });
    expect(errorFromCatch({ Error: 'States.Timeout', Cause: '' }).code).toBe('ORCHESTRATOR_LOST');
  });
});
