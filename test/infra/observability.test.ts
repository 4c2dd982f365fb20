/**
 * src/aws/handler.ts observability: the Powertools stack shared by every function. On AWS (an
 * invocation without a runtime of its own) each log line carries the run, the pipeline, the
 * execution and the correlation id, and the run outcome is counted in EMF; the embedded runtime
 * (which passes its runtime) prints nothing new. The Tracer is loaded on Lambda only (its traces
 * are tested end to end in tracing.test.ts): nowhere else is the X-Ray SDK even imported.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { invocationKeys, logger, plainHandler, runOutcomeMetric } from '../../src/aws/handler.js';
import { tracingWanted } from '../../src/aws/tracing.js';
import type { Runtime } from '../../src/runtime.js';

const ROOT = path.resolve(import.meta.dirname, '..', '..');

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

describe('the Tracer', () => {
  const lambda = {
    AWS_LAMBDA_FUNCTION_NAME: 'test-veritrail-finish',
    AWS_EXECUTION_ENV: 'AWS_Lambda_nodejs22.x',
  };

  it('is wanted in a Lambda execution environment only, unless POWERTOOLS_TRACE_ENABLED is false', () => {
    expect(tracingWanted(lambda)).toBe(true);
    expect(tracingWanted({ ...lambda, POWERTOOLS_TRACE_ENABLED: 'false' })).toBe(false);
    expect(tracingWanted({ ...lambda, POWERTOOLS_TRACE_ENABLED: 'FALSE' })).toBe(false);
    expect(tracingWanted({})).toBe(false);
    expect(tracingWanted({ AWS_LAMBDA_FUNCTION_NAME: 'x' })).toBe(false);
    // ECS, CodeBuild and others set AWS_EXECUTION_ENV too: a CLI run there is not a Lambda.
    expect(tracingWanted({ AWS_EXECUTION_ENV: 'AWS_ECS_FARGATE' })).toBe(false);
  });

  /**
   * Invokes a handler through the shared stack, without a runtime (the AWS path), in a fresh Node
   * with `env`, and says whether the X-Ray SDK was loaded (aws-xray-sdk-core is CommonJS: once
   * imported it is in require.cache) and whether a Tracer traces.
   */
  async function probe(
    env: Record<string, string>,
  ): Promise<{ xray: boolean; tracing: boolean; out: unknown }> {
    const url = (file: string) => JSON.stringify(pathToFileURL(path.join(ROOT, file)).href);
    const code = [
      "import { createRequire } from 'node:module';",
      `import { plainHandler } from ${url('src/aws/handler.ts')};`,
      `import { activeTracer } from ${url('src/aws/tracing.ts')};`,
      'const handler = plainHandler(async () => ({ status: "SUCCEEDED" }), () => ({}));',
      'const out = await handler({ runId: "run-probe" }, { functionName: "test-veritrail-finish", awsRequestId: "r1", getRemainingTimeInMillis: () => 30000 });',
      'const xray = Object.keys(createRequire(import.meta.url).cache).some((k) => k.includes("aws-xray-sdk-core"));',
      'process.stdout.write("\\nPROBE " + JSON.stringify({ xray, tracing: activeTracer() !== undefined, out }) + "\\n");',
    ].join('\n');
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', code],
      { cwd: ROOT, env: { PATH: process.env.PATH ?? '', ...env } },
    );
    const line = stdout.split('\n').find((l) => l.startsWith('PROBE '));
    if (!line) throw new Error(`no probe result in: ${stdout}`);
    return JSON.parse(line.slice('PROBE '.length)) as { xray: boolean; tracing: boolean; out: unknown };
  }

  it('is never loaded off Lambda (the CLI, the embedded runtime, tests): the X-Ray SDK stays out', async () => {
    expect(await probe({})).toEqual({ xray: false, tracing: false, out: { status: 'SUCCEEDED' } });
  }, 60_000);

  it('is loaded and traces on Lambda (the control: the probe sees it when it is there)', async () => {
    const root = path.join(ROOT, '.sst');
    expect(
      await probe({
        ...lambda,
        LAMBDA_TASK_ROOT: root,
        _HANDLER: 'functions/finish.handler',
        _X_AMZN_TRACE_ID: 'Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1',
        // A port nothing listens on: the segment is sent and lost, as with no daemon.
        AWS_XRAY_DAEMON_ADDRESS: '127.0.0.1:9',
      }),
    ).toEqual({ xray: true, tracing: true, out: { status: 'SUCCEEDED' } });
  }, 60_000);
});
