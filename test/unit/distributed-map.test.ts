/**
 * The local emulation of the Distributed Map features aws-local-stepfunctions lacks
 * (src/local/distributed-map.ts): ItemReader over a JSON array, ItemBatcher, DISTRIBUTED mode. The
 * rewritten definition runs on the library itself; anything not emulated is refused by name.
 */
import { StateMachine } from 'aws-local-stepfunctions';
import { describe, expect, it } from 'vitest';
import {
  DistributedMapEmulationError,
  emulateDistributedMaps,
  type ReadObject,
  readerStateName,
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
    ['ResultWriter', { ResultWriter: { Resource: 'arn:aws:states:::s3:putObject', Parameters: {} } }],
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
    expect(() => emulateDistributedMaps(definition(map), read)).toThrow(DistributedMapEmulationError);
  });
});
