import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { StateMachine } from 'aws-local-stepfunctions';
import { describe, expect, it } from 'vitest';
import { localDefinition, STATE_MACHINE_FILE, TASK_FUNCTIONS } from '../../src/local/runner.js';

type State = {
  Type: string;
  Next?: string;
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
      order.push(at);
      at = asl.States[at]?.Next;
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

  it('waits for training through a task token', () => {
    expect(asl.States.Train?.Resource).toBe('arn:aws:states:::lambda:invoke.waitForTaskToken');
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
