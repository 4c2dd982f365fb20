/**
 * The local emulation of the Distributed Map features aws-local-stepfunctions lacks
 * (src/local/distributed-map.ts): ItemReader over a JSON array, ItemBatcher, DISTRIBUTED mode. The
 * rewritten definition runs on the library itself; anything not emulated is refused by name.
 */
import { StateMachine } from 'aws-local-stepfunctions';
import { describe, expect, it } from 'vitest';
import {
  type ChildExecutions,
  childStateNames,
  DistributedMapEmulationError,
  type EmulationOptions,
  emulateDistributedMaps,
  type ReadObject,
  readerStateName,
  type WriteObject,
  writerStateName,
} from '../../src/local/distributed-map.js';

type Json = Record<string, unknown>;

/** Start → M (a Distributed Map over s3://bucket/items.json) → End, its child one Task `Child`. */
function definition(map: Json = {}, extra: Json = {}): Json {
  return {
    StartAt: 'Start',
    States: {
      Start: { Type: 'Pass', Next: 'M' },
      M: {
        Type: 'Map',
        Label: 'M',
        ItemReader: {
          Resource: 'arn:aws:states:::s3:getObject',
          ReaderConfig: { InputType: 'JSON' },
          Parameters: { Bucket: 'bucket', 'Key.$': '$.listing' },
        },
        ItemBatcher: { MaxItemsPerBatch: 2, BatchInput: { 'tag.$': '$.tag' } },
        MaxConcurrency: 2,
        ItemProcessor: {
          ProcessorConfig: { Mode: 'DISTRIBUTED', ExecutionType: 'STANDARD' },
          StartAt: 'Child',
          States: {
            Child: { Type: 'Task', Resource: 'arn:aws:lambda:us-east-1:1:function:child', End: true },
          },
        },
        ResultPath: '$.out',
        Catch: [{ ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: 'Failed' }],
        Next: 'Done',
        ...map,
      },
      Done: { Type: 'Succeed' },
      Failed: { Type: 'Pass', End: true },
      ...extra,
    },
  };
}

const store =
  (objects: Record<string, unknown>): ReadObject =>
  async (bucket, key) => {
    const value = objects[`${bucket}/${key}`];
    if (value === undefined) throw new Error(`NoSuchKey: ${bucket}/${key}`);
    return new TextEncoder().encode(typeof value === 'string' ? value : JSON.stringify(value));
  };

async function run(def: Json, read: ReadObject, child: (input: unknown) => Promise<unknown>, input: Json) {
  const { definition: rewritten, handlers } = emulateDistributedMaps(def, read);
  const machine = new StateMachine(rewritten as never, {
    validationOptions: { checkPaths: true, checkArn: true },
  });
  const execution = machine.run(input as never, {
    overrides: { taskResourceLocalHandlers: { ...handlers, Child: child } as never },
  });
  return (await execution.result) as Json;
}

describe('a Distributed Map on aws-local-stepfunctions', () => {
  const items = ['a', 'b', 'c', 'd', 'e'];
  const read = store({ 'bucket/items.json': items });

  it('reads the items, batches them in order with the BatchInput resolved, and leaves only the result', async () => {
    const seen: unknown[] = [];
    const out = await run(
      definition(),
      read,
      async (input) => {
        seen.push(input);
        return (input as { Items: string[] }).Items.join('');
      },
      { listing: 'items.json', tag: 't1', keep: true },
    );
    expect(seen).toHaveLength(3);
    expect(seen).toEqual(
      expect.arrayContaining([
        { BatchInput: { tag: 't1' }, Items: ['a', 'b'] },
        { BatchInput: { tag: 't1' }, Items: ['c', 'd'] },
        { BatchInput: { tag: 't1' }, Items: ['e'] },
      ]),
    );
    // The children's results in item order at the ResultPath; the staged batches are gone.
    expect(out).toEqual({ listing: 'items.json', tag: 't1', keep: true, out: ['ab', 'cd', 'e'] });
  });

  it('runs at most MaxConcurrency children at once', async () => {
    let running = 0;
    let most = 0;
    const many = store({ 'bucket/items.json': Array.from({ length: 20 }, (_, i) => i) });
    await run(
      definition({ MaxConcurrency: 3, ItemBatcher: { MaxItemsPerBatch: 1 } }),
      many,
      async () => {
        most = Math.max(most, ++running);
        await new Promise((r) => setTimeout(r, 5));
        running--;
        return null;
      },
      { listing: 'items.json' },
    );
    expect(most).toBe(3);
  });

  it('gives each item to a child of its own without an ItemBatcher, and stops at ReaderConfig.MaxItems', async () => {
    const seen: unknown[] = [];
    const out = await run(
      definition({
        ItemBatcher: undefined,
        ItemReader: {
          Resource: 'arn:aws:states:::s3:getObject',
          ReaderConfig: { InputType: 'JSON', MaxItems: 4 },
          Parameters: { Bucket: 'bucket', Key: 'items.json' },
        },
      }),
      read,
      async (input) => {
        seen.push(input);
        return input;
      },
      {},
    );
    expect(out.out).toEqual(['a', 'b', 'c', 'd']);
  });

  it('fails with States.ItemReaderFailed, caught like any error, when the object is missing or not an array', async () => {
    const child = async () => null;
    const missing = await run(definition(), read, child, { listing: 'nope.json', tag: 't' });
    expect(missing.error).toMatchObject({
      Error: 'States.ItemReaderFailed',
      Cause: expect.stringContaining('nope.json'),
    });
    const notArray = store({ 'bucket/items.json': { items } });
    const object = await run(definition(), notArray, child, { listing: 'items.json', tag: 't' });
    expect(object.error).toMatchObject({
      Error: 'States.ItemReaderFailed',
      Cause: expect.stringContaining('JSON array'),
    });
  });

  it('sends every transition that led to the Map (StartAt, Next, Default, Catch) through its reader', () => {
    const def = definition(
      {},
      { Route: { Type: 'Choice', Choices: [{ Variable: '$.x', IsPresent: true, Next: 'M' }], Default: 'M' } },
    );
    (def.States as Record<string, Json>).Failed = { Type: 'Pass', Next: 'M' };
    def.StartAt = 'M';
    const { definition: out, inserted } = emulateDistributedMaps(def, read);
    const states = out.States as Record<string, Json>;
    const reader = readerStateName('M');
    expect([...inserted]).toEqual([reader]);
    expect(out.StartAt).toBe(reader);
    expect((states.Start as Json).Next).toBe(reader);
    expect((states.Failed as Json).Next).toBe(reader);
    expect((states.Route as Json).Default).toBe(reader);
    expect(((states.Route as Json).Choices as Json[])[0]?.Next).toBe(reader);
    expect((states[reader] as Json).Next).toBe('M');
    // The Map keeps its Catch; the reader has the same one. The given definition is left as it was.
    expect((states[reader] as Json).Catch).toEqual((states.M as Json).Catch);
    expect(((def.States as Record<string, Json>).M as Json).ItemReader).toBeDefined();
    expect((states.M as Json).ItemReader).toBeUndefined();
  });

  it.each([
    [
      'a ResultWriter WriterConfig',
      { ResultWriter: { ...RESULT_WRITER, WriterConfig: { OutputType: 'JSONL', Transformation: 'NONE' } } },
    ],
    ['a ResultWriter other than s3:putObject', { ResultWriter: { ...RESULT_WRITER, Resource: 'arn:x' } }],
    [
      'a ResultSelector beside a ResultWriter',
      { ResultWriter: RESULT_WRITER, ResultSelector: { 'n.$': '$' } },
    ],
    ['ItemSelector', { ItemSelector: { 'v.$': '$$.Map.Item.Value' } }],
    ['InputPath', { InputPath: '$.x' }],
    ['ResultPath null', { ResultPath: null }],
    ['a non-zero tolerated failure', { ToleratedFailurePercentage: 5 }],
    ['an S3 listing', { ItemReader: { Resource: 'arn:aws:states:::s3:listObjectsV2', Parameters: {} } }],
    [
      'a CSV file',
      {
        ItemReader: {
          Resource: 'arn:aws:states:::s3:getObject',
          ReaderConfig: { InputType: 'CSV' },
          Parameters: {},
        },
      },
    ],
    ['MaxInputBytesPerBatch', { ItemBatcher: { MaxItemsPerBatch: 2, MaxInputBytesPerBatch: 1024 } }],
    ['MaxItemsPerBatchPath', { ItemBatcher: { MaxItemsPerBatchPath: '$.n' } }],
  ])('refuses %s rather than ignoring it', (_what, map) => {
    const write: WriteObject = async () => {};
    expect(() => emulateDistributedMaps(definition(map), read, { write })).toThrow(
      DistributedMapEmulationError,
    );
  });

  it('refuses a ResultWriter when given nowhere to write', () => {
    expect(() => emulateDistributedMaps(definition({ ResultWriter: RESULT_WRITER }), read)).toThrow(
      /needs a write function/,
    );
  });
});

const RESULT_WRITER = {
  Resource: 'arn:aws:states:::s3:putObject',
  Parameters: { Bucket: 'results', 'Prefix.$': "States.Format('out/{}', $.tag)" },
};

describe('a Distributed Map’s ResultWriter, emulated', () => {
  const items = ['a', 'b', 'c', 'd', 'e'];
  const read = store({ 'bucket/items.json': items });
  const MACHINE = 'arn:aws:states:eu-west-1:111122223333:stateMachine:pipeline';

  async function runWriting(
    map: Json,
    options: Omit<EmulationOptions, 'write'> = {},
    fail = false,
    extra: Json = {},
  ) {
    const written = new Map<string, string>();
    const write: WriteObject = async (bucket, key, body) => {
      if (fail) throw new Error('AccessDenied');
      written.set(`${bucket}/${key}`, new TextDecoder().decode(body));
    };
    const { definition: rewritten, handlers } = emulateDistributedMaps(definition(map, extra), read, {
      write,
      ...options,
    });
    const machine = new StateMachine(rewritten as never, {
      validationOptions: { checkPaths: true, checkArn: true },
    });
    const execution = machine.run({ listing: 'items.json', tag: 't1', keep: true } as never, {
      overrides: {
        taskResourceLocalHandlers: {
          ...handlers,
          Child: async (input: unknown) => (input as { Items: string[] }).Items.join(''),
        } as never,
      },
      context: { StateMachine: { Id: MACHINE, Name: 'pipeline' } } as never,
    });
    const out = (await execution.result) as Json;
    const json = (key: string) => JSON.parse(written.get(key) ?? 'null') as unknown;
    return { out, written, json };
  }

  it('exports the children’s results as Step Functions does, and the Map’s result says where', async () => {
    const { out, written, json } = await runWriting({ ResultWriter: RESULT_WRITER });
    const result = out.out as { MapRunArn: string; ResultWriterDetails: { Bucket: string; Key: string } };
    // The rest of the state is the Map's input, as on AWS; the staged inputs and results are gone.
    expect(out).toEqual({ listing: 'items.json', tag: 't1', keep: true, out: result });
    const id = /^arn:aws:states:eu-west-1:111122223333:mapRun:pipeline\/M:([0-9a-f-]{36})$/.exec(
      result.MapRunArn,
    )?.[1];
    expect(id).toBeDefined();
    expect(result.ResultWriterDetails).toEqual({ Bucket: 'results', Key: `out/t1/${id}/manifest.json` });
    const file = `out/t1/${id}/SUCCEEDED_0.json`;
    expect(new Set(written.keys())).toEqual(
      new Set([`results/${file}`, `results/out/t1/${id}/manifest.json`]),
    );
    expect(json(`results/out/t1/${id}/manifest.json`)).toEqual({
      DestinationBucket: 'results',
      MapRunArn: result.MapRunArn,
      ResultFiles: {
        FAILED: [],
        PENDING: [],
        SUCCEEDED: [{ Key: file, Size: Buffer.byteLength(written.get(`results/${file}`) ?? '') }],
      },
    });
    const entries = json(`results/${file}`) as Json[];
    expect(entries.map((e) => [JSON.parse(e.Input as string), JSON.parse(e.Output as string)])).toEqual([
      [{ BatchInput: { tag: 't1' }, Items: ['a', 'b'] }, 'ab'],
      [{ BatchInput: { tag: 't1' }, Items: ['c', 'd'] }, 'cd'],
      [{ BatchInput: { tag: 't1' }, Items: ['e'] }, 'e'],
    ]);
    for (const e of entries) {
      expect(e).toMatchObject({
        Status: 'SUCCEEDED',
        StateMachineArn: MACHINE,
        ExecutionArn: expect.stringMatching(/^arn:aws:states:eu-west-1:111122223333:execution:pipeline\/M:/),
      });
    }
  });

  it('starts a new result file past resultFileBytes, every child in exactly one, in order', async () => {
    const { out, json } = await runWriting({ ResultWriter: RESULT_WRITER }, { resultFileBytes: 1 });
    const { Bucket, Key } = (out.out as { ResultWriterDetails: { Bucket: string; Key: string } })
      .ResultWriterDetails;
    const files = (json(`${Bucket}/${Key}`) as { ResultFiles: { SUCCEEDED: { Key: string }[] } }).ResultFiles
      .SUCCEEDED;
    expect(files.map((f) => f.Key.split('/').pop())).toEqual([
      'SUCCEEDED_0.json',
      'SUCCEEDED_1.json',
      'SUCCEEDED_2.json',
    ]);
    const outputs = files.flatMap((f) =>
      (json(`${Bucket}/${f.Key}`) as Json[]).map((e) => JSON.parse(e.Output as string)),
    );
    expect(outputs).toEqual(['ab', 'cd', 'e']);
  });

  it('fails with States.ResultWriterFailed, caught like any error, when a result cannot be written', async () => {
    const { out } = await runWriting({ ResultWriter: RESULT_WRITER }, {}, true);
    expect(out.error).toMatchObject({
      Error: 'States.ResultWriterFailed',
      Cause: expect.stringContaining('AccessDenied'),
    });
  });

  it('hands the Map’s End and OutputPath to the inserted writer', async () => {
    const { out } = await runWriting(
      { ResultWriter: RESULT_WRITER, Next: undefined, End: true, OutputPath: '$.out' },
      {},
      false,
      { Failed: { Type: 'Pass', Next: 'Done' } },
    );
    expect(Object.keys(out).sort()).toEqual(['MapRunArn', 'ResultWriterDetails']);
    const { definition: rewritten, inserted } = emulateDistributedMaps(
      definition({ ResultWriter: RESULT_WRITER }),
      read,
      { write: async () => {} },
    );
    expect([...inserted]).toEqual([readerStateName('M'), writerStateName('M')]);
    const states = rewritten.States as Record<string, Json>;
    expect((states.M as Json).Next).toBe(writerStateName('M'));
    expect((states[writerStateName('M')] as Json).Next).toBe('Done');
    expect((states[writerStateName('M')] as Json).Catch).toEqual((states.M as Json).Catch);
  });
});

describe('a Distributed Map’s child executions, when the caller replays them', () => {
  const items = ['a', 'b', 'c', 'd', 'e'];
  const read = store({ 'bucket/items.json': items });
  const PARENT = 'arn:aws:states:eu-west-1:111122223333:execution:pipeline:run-1';

  function recorder(startFails = false) {
    const calls: { call: string; arn: string; detail: unknown }[] = [];
    let n = 0;
    const children: ChildExecutions = {
      start: async (child) => {
        if (startFails) throw Object.assign(new Error('not authorized'), { name: 'AccessDeniedException' });
        const arn = `child-${n++}`;
        calls.push({ call: 'start', arn, detail: child });
        return arn;
      },
      succeeded: async (arn, output) => {
        calls.push({ call: 'succeeded', arn, detail: output });
      },
      failed: async (arn, error) => {
        calls.push({ call: 'failed', arn, detail: error });
      },
    };
    return { calls, children };
  }

  async function runWith(children: ChildExecutions, child: (input: unknown) => Promise<unknown>) {
    const { definition: rewritten, handlers } = emulateDistributedMaps(definition(), read, { children });
    const machine = new StateMachine(rewritten as never, {
      validationOptions: { checkPaths: true, checkArn: true },
    });
    const execution = machine.run({ listing: 'items.json', tag: 't1' } as never, {
      overrides: { taskResourceLocalHandlers: { ...handlers, Child: child } as never },
      context: { Execution: { Id: PARENT } } as never,
    });
    return (await execution.result) as Json;
  }

  it('starts each child before its states run and reports its output once it has ended, the Map’s result unchanged', async () => {
    const { calls, children } = recorder();
    const out = await runWith(children, async (input) => {
      const { Items } = input as { Items: string[] };
      // Started, not yet ended.
      expect(calls.filter((c) => c.call === 'start').map((c) => (c.detail as Json).input)).toContainEqual(
        input,
      );
      return Items.join('');
    });
    expect(out.out).toEqual(['ab', 'cd', 'e']);
    const starts = calls.filter((c) => c.call === 'start');
    expect(starts.map((c) => c.detail)).toEqual(
      expect.arrayContaining(
        [['a', 'b'], ['c', 'd'], ['e']].map((Items) => ({
          map: 'M',
          label: 'M',
          parent: PARENT,
          input: { BatchInput: { tag: 't1' }, Items },
        })),
      ),
    );
    expect(starts).toHaveLength(3);
    const ended = calls.filter((c) => c.call === 'succeeded');
    expect(ended.map((c) => c.arn).sort()).toEqual(starts.map((c) => c.arn).sort());
    for (const e of ended) {
      const start = starts.find((s) => s.arn === e.arn);
      if (!start) throw new Error(`${e.arn} ended without a start`);
      expect(e.detail).toBe(((start.detail as Json).input as { Items: string[] }).Items.join(''));
      expect(calls.indexOf(e)).toBeGreaterThan(calls.indexOf(start));
    }
  });

  it('reports a failed child with its error, and the Map fails with that error as before', async () => {
    const { calls, children } = recorder();
    const out = await runWith(children, async (input) => {
      if ((input as { Items: string[] }).Items.includes('c')) {
        throw Object.assign(new Error('{"errorMessage":"bad batch"}'), { name: 'Veritrail.INTERNAL' });
      }
      return 'ok';
    });
    expect(out.error).toEqual({ Error: 'Veritrail.INTERNAL', Cause: '{"errorMessage":"bad batch"}' });
    const failed = calls.filter((c) => c.call === 'failed');
    expect(failed).toEqual([
      {
        call: 'failed',
        arn: expect.any(String),
        detail: { Error: 'Veritrail.INTERNAL', Cause: '{"errorMessage":"bad batch"}' },
      },
    ]);
    const start = calls.find((c) => c.call === 'start' && c.arn === failed[0]?.arn);
    expect(start?.detail).toMatchObject({ input: { Items: ['c', 'd'] } });
  });

  it('fails the Map, caught like any error, when a child cannot be started; the child never runs', async () => {
    const { children } = recorder(true);
    let ran = 0;
    const out = await runWith(children, async () => {
      ran++;
      return null;
    });
    expect(out.error).toMatchObject({ Error: 'AccessDeniedException', Cause: 'not authorized' });
    expect(ran).toBe(0);
  });

  it('inserts its states only into the Map’s ItemProcessor, the child’s own states inside unchanged', () => {
    const { children } = recorder();
    const { definition: rewritten, inserted } = emulateDistributedMaps(definition(), read, { children });
    const names = childStateNames('M');
    expect([...inserted].sort()).toEqual(
      [readerStateName('M'), names.start, names.succeeded, names.failed].sort(),
    );
    const processor = (rewritten.States as Record<string, Json>).M?.ItemProcessor as Json;
    expect(processor.StartAt).toBe(names.start);
    const run = (processor.States as Record<string, Json>)[names.run] as Json;
    expect(run.Branches).toEqual([
      {
        StartAt: 'Child',
        States: { Child: { Type: 'Task', Resource: 'arn:aws:lambda:us-east-1:1:function:child', End: true } },
      },
    ]);
  });
});
