import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { StateMachine } from 'aws-local-stepfunctions';
import { describe, expect, it } from 'vitest';
import { localDefinition, STATE_MACHINE_FILE, TASK_FUNCTIONS } from '../../src/local/runner.js';

type State = {
  Type: string;
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
