import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { StateMachine } from 'aws-local-stepfunctions';
import { describe, expect, it } from 'vitest';
import { errorFromCatch } from '../../src/core/errors.js';
import { MAP_RESULTS_PREFIX } from '../../src/core/layout.js';
import {
  emulateDistributedMaps,
  type ReadObject,
  type WriteObject,
} from '../../src/local/distributed-map.js';
import {
  LOCAL_BUCKETS,
  localDefinition,
  mainPathStates,
  STATE_MACHINE_FILE,
  TASK_FUNCTIONS,
} from '../../src/local/runner.js';
import { RESERVED_CONCURRENCY } from '../../stacks/settings.js';

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
  ResultPath?: string;
  Label?: string;
  MaxConcurrency?: number;
  ItemReader?: {
    Resource: string;
    ReaderConfig?: Record<string, unknown>;
    Parameters?: Record<string, unknown>;
  };
  ItemBatcher?: { MaxItemsPerBatch?: number; BatchInput?: Record<string, unknown> };
  ResultWriter?: { Resource: string; Parameters?: Record<string, unknown> };
  ItemProcessor?: Machine & { ProcessorConfig?: { Mode: string; ExecutionType?: string } };
};
type Machine = { StartAt: string; States: Record<string, State> };
const asl = JSON.parse(readFileSync(STATE_MACHINE_FILE, 'utf8')) as Machine;

/** Every state of a machine and of the machines nested in its Maps, by name. */
function allStates(machine: Machine): [string, State][] {
  return Object.entries(machine.States).flatMap(([name, state]) => [
    [name, state] as [string, State],
    ...(state.ItemProcessor ? allStates(state.ItemProcessor) : []),
  ]);
}

describe('state-machines/training-pipeline.asl.json', () => {
  it('runs the states of docs/design.md in order', () => {
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
      'ListDataset',
      'HashBatches',
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
    // What the CLI counts its progress against.
    expect(mainPathStates()).toEqual(order);
  });

  it('retries transient errors and sends every other error of every step to RecordFailure', () => {
    for (const [name, state] of allStates(asl)) {
      if (state.Type !== 'Task') continue;
      expect(state.Retry?.[0]?.ErrorEquals, name).toContain('Veritrail.TRANSIENT');
      expect(state.Retry?.[0]?.ErrorEquals, name).toContain('Lambda.TooManyRequestsException');
    }
    for (const [name, state] of Object.entries(asl.States)) {
      if ((state.Type !== 'Task' && state.Type !== 'Map') || name === 'RecordFailure') continue;
      expect(state.Catch?.[0], name).toMatchObject({ ErrorEquals: ['States.ALL'], Next: 'RecordFailure' });
    }
    // A HashBatch child that still fails after its retries fails the Map, whose Catch records it.
    expect(asl.States.HashBatches?.ItemProcessor?.States.HashBatch?.Catch).toBeUndefined();
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
      Next: 'ListDataset',
    });
  });

  it('waits for training through a task token, with a heartbeat the reconciler keeps alive', () => {
    expect(asl.States.Train?.Resource).toBe('arn:aws:states:::lambda:invoke.waitForTaskToken');
    // Without the callback and the reconciler (every 5 minutes), the wait ends within minutes, not 25 h.
    expect(asl.States.Train?.HeartbeatSeconds).toBe(900);
    expect(asl.States.Train?.HeartbeatSeconds).toBeLessThan(asl.States.Train?.TimeoutSeconds ?? 0);
  });

  it('names one handler module per task, and validates as ASL once ARNs are substituted', () => {
    const tasks = allStates(asl)
      .filter(([, s]) => s.Type === 'Task')
      .map(([n]) => n)
      .sort();
    expect(tasks).toEqual(Object.keys(TASK_FUNCTIONS).sort());
    for (const file of Object.values(TASK_FUNCTIONS)) {
      expect(() => readFileSync(join(import.meta.dirname, '../../functions', `${file}.ts`))).not.toThrow();
    }
    // As deployed (the Distributed Map included), and as the local runner runs it (emulated).
    const validate = (definition: unknown) =>
      new StateMachine(definition as never, { validationOptions: { checkPaths: true, checkArn: true } });
    expect(() => validate(localDefinition())).not.toThrow();
    const read: ReadObject = async () => new Uint8Array();
    const write = async () => {};
    expect(() =>
      validate(emulateDistributedMaps(localDefinition(), read, { write }).definition),
    ).not.toThrow();
  });
});

describe('HashDataset as a Distributed Map', () => {
  const map = asl.States.HashBatches as State;
  /** `${name}`: a definition substitution the stack (or the local runner) fills. */
  const substitution = (name: string) => `\${${name}}`;

  it('lists, maps over the pinned listing, then folds, each writing under results.hash', () => {
    expect(asl.States.ListDataset).toMatchObject({
      Type: 'Task',
      ResultPath: '$.results.hash',
      Next: 'Listed',
    });
    expect(asl.States.Listed).toMatchObject({
      Type: 'Choice',
      Choices: [{ Variable: '$.results.hash.error', IsPresent: true, Next: 'HashDataset' }],
      Default: 'HashBatches',
    });
    expect(map).toMatchObject({ Type: 'Map', ResultPath: '$.results.hash.batches', Next: 'HashDataset' });
    // The fold replaces the whole of results.hash: the batch list does not travel on to Preprocess.
    expect(asl.States.HashDataset).toMatchObject({ ResultPath: '$.results.hash', Next: 'Preprocess' });
  });

  it('runs each batch as a STANDARD child execution, at most hash-batch’s reserved concurrency at once', () => {
    expect(map.ItemProcessor?.ProcessorConfig).toEqual({ Mode: 'DISTRIBUTED', ExecutionType: 'STANDARD' });
    expect(map.Label).toBe('HashBatches');
    expect(map.MaxConcurrency).toBe(RESERVED_CONCURRENCY['hash-batch']);
    expect(map.ItemBatcher).toEqual({ MaxItemsPerBatch: 100, BatchInput: { 'runId.$': '$.runId' } });
    expect(map.ItemProcessor?.StartAt).toBe('HashBatch');
    expect(map.ItemProcessor?.States.HashBatch).toMatchObject({
      Type: 'Task',
      Resource: substitution('HashBatchFunctionArn'),
      End: true,
    });
  });

  it('writes the children’s results to the artifacts bucket under the run’s own map-results/ prefix', () => {
    expect(map.ResultWriter).toEqual({
      Resource: 'arn:aws:states:::s3:putObject',
      Parameters: {
        Bucket: substitution('ArtifactsBucket'),
        'Prefix.$': `States.Format('${MAP_RESULTS_PREFIX}{}', $.runId)`,
      },
    });
  });

  it('reads the pinned JSON listing from the artifacts bucket, never an S3 listing without VersionIds', () => {
    expect(map.ItemReader).toEqual({
      Resource: 'arn:aws:states:::s3:getObject',
      ReaderConfig: { InputType: 'JSON' },
      Parameters: { Bucket: substitution('ArtifactsBucket'), 'Key.$': '$.results.hash.listing.key' },
    });
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

  /** The pinned listings the stand-in ListDataset "stored", as the emulated ItemReader reads them. */
  const listings = new Map<string, unknown>();
  const read: ReadObject = async (bucket, key) => {
    if (bucket !== LOCAL_BUCKETS.ArtifactsBucket) throw new Error(`no bucket ${bucket}`);
    if (!listings.has(key)) throw new Error(`NoSuchKey: ${key}`);
    return new TextEncoder().encode(JSON.stringify(listings.get(key)));
  };

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
    const emulated = emulateDistributedMaps(localDefinition(), read, { write: async () => {} });
    const machine = new StateMachine(emulated.definition as never, {
      validationOptions: { checkPaths: true, checkArn: true },
    });
    const handlers = { ...overrides, ...emulated.handlers };
    const execution = machine.run(input as never, {
      overrides: {
        taskResourceLocalHandlers: handlers as never,
        retryIntervalOverrides: Object.fromEntries(Object.keys(handlers).map((s) => [s, 0])),
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
        ListDataset: async () => {
          throw Object.assign(new Error('{"code":"ACCESS_DENIED","message":"no"}'), {
            name: 'Veritrail.ACCESS_DENIED',
          });
        },
        RecordFailure: async () => ({ runId: STATE.runId, status: 'FAILED' }),
      },
      consoleInput,
    );
    expect(r.seen.map((s) => s.state)).toEqual(['RegisterRun', 'ListDataset', 'RecordFailure']);
    expect(r.seen[1]?.input).toEqual({ ...STATE, results: { registerRun } });
    const failure = r.seen[2]?.input as {
      input: { runId: string; error: { Error: string } };
      executionArn: string;
    };
    expect(failure.executionArn).toBe(EXECUTION);
    expect(failure.input.runId).toBe(STATE.runId);
    expect(failure.input.error.Error).toBe('Veritrail.ACCESS_DENIED');
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

describe('HashDataset on aws-local-stepfunctions, the Distributed Map emulated, with stand-in tasks', () => {
  const STATE = {
    runId: 'r-bbbbbbbbbbbbbbbbbbbbbbbbbb',
    pipeline: { name: 'credit-scoring', digest: `sha256:${'a'.repeat(64)}` },
    dataset: { uri: 's3://landing/credit-scoring/batch/', versionId: undefined },
    trigger: { type: 's3', idempotencyKey: 'k' },
  };
  const file = (i: number) => ({
    uri: `s3://landing/credit-scoring/batch/part-${String(i).padStart(4, '0')}.csv`,
    path: `part-${String(i).padStart(4, '0')}.csv`,
    size: 10 + i,
    versionId: `v${i}`,
  });
  const LISTING_KEY = `listings/${'c'.repeat(64)}.json`;
  const listing = { key: LISTING_KEY, digest: `sha256:${'c'.repeat(64)}`, files: 250 };
  const FOLDED = {
    digest: `sha256:${'d'.repeat(64)}`,
    files: 250,
    size: 1,
    manifestKey: 'm',
    manifestDigest: 'x',
  };

  async function run(tasks: Partial<Record<string, (input: unknown) => Promise<unknown>>>, stored: unknown) {
    const seen: { state: string; input: unknown }[] = [];
    const read: ReadObject = async (_bucket, key) => {
      if (key !== LISTING_KEY || stored === undefined) throw new Error(`NoSuchKey: ${key}`);
      return new TextEncoder().encode(JSON.stringify(stored));
    };
    const written = new Map<string, string>();
    const write: WriteObject = async (bucket, key, body) => {
      written.set(`${bucket}/${key}`, new TextDecoder().decode(body));
    };
    const emulated = emulateDistributedMaps(localDefinition(), read, { write });
    const handlers: Record<string, (i: unknown) => Promise<unknown>> = { ...emulated.handlers };
    for (const name of Object.keys(TASK_FUNCTIONS)) {
      handlers[name] = async (i) => {
        seen.push({ state: name, input: i });
        const task = tasks[name];
        if (!task) throw new Error(`${name} was not expected to run`);
        return task(i);
      };
    }
    const machine = new StateMachine(emulated.definition as never, {
      validationOptions: { checkPaths: true, checkArn: true },
    });
    const execution = machine.run(STATE as never, {
      overrides: {
        taskResourceLocalHandlers: handlers as never,
        retryIntervalOverrides: Object.fromEntries(Object.keys(handlers).map((s) => [s, 0])),
      },
      context: { Execution: { Id: 'arn:exec', Name: 'e' } } as never,
    });
    const output = await execution.result.catch((e: Error) => e);
    return { seen, output, written };
  }
  const of = (seen: { state: string; input: unknown }[], state: string) =>
    seen.filter((s) => s.state === state).map((s) => s.input);
  const stop = async () => {
    throw Object.assign(new Error('{"code":"INTERNAL","message":"stop here"}'), {
      name: 'Veritrail.INTERNAL',
    });
  };

  it('reads the listing, cuts it into batches of 100 in listing order, and hands the fold every result in order', async () => {
    const files = Array.from({ length: 250 }, (_, i) => file(i));
    let n = 0;
    const r = await run(
      {
        RegisterRun: async () => ({ outcome: 'registered', runId: STATE.runId }),
        ListDataset: async () => ({ listing }),
        // Children may finish in any order; the Map keeps the results in item order.
        HashBatch: async (i) => {
          const items = (i as { Items: { path: string }[] }).Items;
          await new Promise((res) => setTimeout(res, (3 - n++) * 5));
          return { key: `sha256/${items[0]?.path}`, files: items.length };
        },
        HashDataset: async () => FOLDED,
        Preprocess: stop,
        RecordFailure: async () => ({ status: 'FAILED' }),
      },
      files,
    );
    const batches = of(r.seen, 'HashBatch') as { BatchInput: unknown; Items: unknown[] }[];
    expect(batches.map((b) => b.Items.length).sort()).toEqual([100, 100, 50]);
    for (const b of batches) expect(b.BatchInput).toEqual({ runId: STATE.runId });
    expect(
      batches.flatMap((b) => b.Items).sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b))),
    ).toEqual(files);
    // The ResultWriter exported every result to the artifacts bucket under map-results/<runId>/, and
    // the fold gets where: the manifest, which names the result files.
    const fold = of(r.seen, 'HashDataset')[0] as { results: { hash: { batches: Record<string, unknown> } } };
    const { MapRunArn, ResultWriterDetails } = fold.results.hash.batches as {
      MapRunArn: string;
      ResultWriterDetails: { Bucket: string; Key: string };
    };
    expect(fold.results.hash).toEqual({ listing, batches: { MapRunArn, ResultWriterDetails } });
    expect(MapRunArn).toMatch(/^arn:aws:states:[^:]+:\d{12}:mapRun:[^/]+\/HashBatches:[0-9a-f-]{36}$/);
    expect(ResultWriterDetails.Bucket).toBe(LOCAL_BUCKETS.ArtifactsBucket);
    expect(ResultWriterDetails.Key).toMatch(
      new RegExp(`^map-results/${STATE.runId}/[0-9a-f-]{36}/manifest\\.json$`),
    );
    const stored = (key: string) =>
      JSON.parse(r.written.get(`${ResultWriterDetails.Bucket}/${key}`) ?? 'null');
    const manifest = stored(ResultWriterDetails.Key) as {
      DestinationBucket: string;
      MapRunArn: string;
      ResultFiles: Record<string, { Key: string; Size: number }[]>;
    };
    expect(manifest).toMatchObject({ DestinationBucket: ResultWriterDetails.Bucket, MapRunArn });
    expect(manifest.ResultFiles.FAILED).toEqual([]);
    expect(manifest.ResultFiles.PENDING).toEqual([]);
    const entries = (manifest.ResultFiles.SUCCEEDED ?? []).flatMap(
      (f) => stored(f.Key) as { Status: string; Input: string; Output: string }[],
    );
    expect(entries.map((e) => e.Status)).toEqual(['SUCCEEDED', 'SUCCEEDED', 'SUCCEEDED']);
    expect(entries.map((e) => JSON.parse(e.Output))).toEqual([
      { key: 'sha256/part-0000.csv', files: 100 },
      { key: 'sha256/part-0100.csv', files: 100 },
      { key: 'sha256/part-0200.csv', files: 50 },
    ]);
    expect(entries.map((e) => JSON.parse(e.Input).Items.length)).toEqual([100, 100, 50]);
    // Preprocess sees the fold's result alone under results.hash, as before the Map existed.
    const preprocess = of(r.seen, 'Preprocess')[0] as { results: { hash: unknown } };
    expect(preprocess.results.hash).toEqual(FOLDED);
  });

  it('sends a refused listing to HashDataset without running the Map', async () => {
    const refusal = { error: { code: 'DATASET_MISSING', message: 'gone' } };
    const r = await run(
      {
        RegisterRun: async () => ({ outcome: 'registered', runId: STATE.runId }),
        ListDataset: async () => refusal,
        HashDataset: stop,
        RecordFailure: async () => ({ status: 'FAILED' }),
      },
      undefined,
    );
    expect(r.seen.map((s) => s.state)).toEqual([
      'RegisterRun',
      'ListDataset',
      'HashDataset',
      'RecordFailure',
    ]);
    expect((of(r.seen, 'HashDataset')[0] as { results: { hash: unknown } }).results.hash).toEqual(refusal);
  });

  it('fails the Map with States.ItemReaderFailed when the listing cannot be read, and records the failure', async () => {
    const r = await run(
      {
        RegisterRun: async () => ({ outcome: 'registered', runId: STATE.runId }),
        ListDataset: async () => ({ listing }),
        RecordFailure: async () => ({ status: 'FAILED' }),
      },
      undefined,
    );
    expect(r.seen.map((s) => s.state)).toEqual(['RegisterRun', 'ListDataset', 'RecordFailure']);
    const failure = of(r.seen, 'RecordFailure')[0] as { input: { error: { Error: string; Cause: string } } };
    expect(failure.input.error.Error).toBe('States.ItemReaderFailed');
    expect(failure.input.error.Cause).toContain(LISTING_KEY);
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
