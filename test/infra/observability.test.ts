/**
 * src/steps/handler.ts observability: the Powertools Logger and Metrics stack shared by every
 * function. On AWS (an invocation without a runtime of its own) each log line carries the run, the
 * pipeline, the execution and the correlation id, and the run outcome is counted in EMF; the
 * embedded runtime (which passes its runtime) prints nothing new.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Runtime } from '../../src/runtime.js';
import { invocationKeys, logger, plainHandler, runOutcomeMetric } from '../../src/steps/handler.js';

const lambdaContext = {
  functionName: 'test-veritrail-finish',
  functionVersion: '$LATEST',
  invokedFunctionArn: 'arn:aws:lambda:eu-west-1:123456789012:function:test-veritrail-finish',
  memoryLimitInMB: '512',
  awsRequestId: 'req-1',
  getRemainingTimeInMillis: () => 30_000,
};

function captureStdout(): { lines: () => Record<string, unknown>[]; restore: () => void } {
  const written: string[] = [];
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: unknown) => {
    written.push(String(chunk));
    return true;
  });
  return {
    lines: () =>
      written
        .join('')
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>),
    restore: () => spy.mockRestore(),
  };
}

afterEach(() => vi.restoreAllMocks());

describe('invocation keys', () => {
  it('reads the run, pipeline and execution from a task’s state, RegisterRun’s input and an EventBridge event', () => {
    expect(
      invocationKeys({
        runId: 'r1',
        pipeline: { name: 'credit' },
        results: { registerRun: { executionArn: 'arn:x' } },
      }),
    ).toEqual({
      runId: 'r1',
      pipeline: 'credit',
      execution: 'arn:x',
      correlationId: 'r1',
    });
    expect(
      invocationKeys({ input: { runId: 'r2', pipeline: { name: 'p' } }, executionArn: 'arn:y' }),
    ).toEqual({
      runId: 'r2',
      pipeline: 'p',
      execution: 'arn:y',
      correlationId: 'r2',
    });
    expect(invocationKeys({ id: 'evt-1', detail: { bucket: { name: 'b' } } })).toEqual({
      correlationId: 'evt-1',
    });
    expect(invocationKeys('nonsense')).toEqual({});
  });

  it('counts outcomes: started, succeeded, rejected (at start or by the gate), failed unless already recorded', () => {
    expect(runOutcomeMetric({ status: 'started' })).toBe('RunsStarted');
    expect(runOutcomeMetric({ status: 'SUCCEEDED' })).toBe('RunsSucceeded');
    expect(runOutcomeMetric({ status: 'rejected' })).toBe('RunsRejected');
    expect(runOutcomeMetric({ status: 'REJECTED' })).toBe('RunsRejected');
    expect(runOutcomeMetric({ status: 'FAILED', recorded: true })).toBe('RunsFailed');
    expect(runOutcomeMetric({ status: 'FAILED', recorded: false })).toBeUndefined();
    expect(runOutcomeMetric({ status: 'duplicate' })).toBeUndefined();
  });
});

describe('the shared middleware stack', () => {
  const handler = plainHandler(
    async (_rt: Runtime, event: unknown) => {
      logger.info('finishing');
      return { runId: (event as { runId: string }).runId, status: 'SUCCEEDED' };
    },
    () => ({}) as Runtime,
  );

  it('on AWS: JSON logs with the run keys and correlation id, and EMF metrics with the outcome', async () => {
    const out = captureStdout();
    try {
      await handler({ runId: 'run-7', pipeline: { name: 'credit' } }, { ...lambdaContext } as never);
    } finally {
      out.restore();
    }
    const lines = out.lines();
    const log = lines.find((l) => l.message === 'finishing');
    expect(log).toMatchObject({
      run_id: 'run-7',
      pipeline: 'credit',
      correlation_id: 'run-7',
      function_name: 'test-veritrail-finish',
    });
    const emf = lines.find((l) => '_aws' in l);
    expect(emf).toMatchObject({ RunsSucceeded: 1, Invocations: 1, function: 'test-veritrail-finish' });
    expect(typeof emf?.InvocationDuration).toBe('number');
  });

  it('keeps no run key from one invocation to the next', async () => {
    const out = captureStdout();
    try {
      await handler({ runId: 'run-8', pipeline: { name: 'a' } }, { ...lambdaContext } as never);
      await handler({ runId: 'run-9' }, { ...lambdaContext } as never);
    } finally {
      out.restore();
    }
    const logs = out.lines().filter((l) => l.message === 'finishing');
    expect(logs.map((l) => [l.run_id, l.pipeline])).toEqual([
      ['run-8', 'a'],
      ['run-9', undefined],
    ]);
  });

  it('locally (the runner passes its runtime): prints nothing of its own', async () => {
    const out = captureStdout();
    const local = plainHandler(
      async () => ({ status: 'SUCCEEDED' }),
      () => {
        throw new Error('not composed locally');
      },
    );
    try {
      await local({ runId: 'run-10' }, { runtime: {} as Runtime } as never);
    } finally {
      out.restore();
    }
    expect(out.lines()).toEqual([]);
  });
});
