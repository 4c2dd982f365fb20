/**
 * The Distributed Map features aws-local-stepfunctions (v3) lacks, emulated by rewriting the
 * definition before it runs. The Map state itself still runs on the library: its ItemProcessor
 * (every child's states, their Retry and Catch), MaxConcurrency, ResultSelector, ResultPath, Retry,
 * Catch and transitions are the library's. Only these are emulated, each the way the Step Functions
 * Developer Guide describes it ("ItemReader (Map)", "ItemBatcher (Map)"):
 *
 * - **ItemReader** (`arn:aws:states:::s3:getObject`, `ReaderConfig.InputType` JSON, optional
 *   `MaxItems`): a Task state named `<Map> (ItemReader)` is inserted in front of the Map (every
 *   transition to the Map goes to it). Its Parameters are the ItemReader's Parameters and the
 *   ItemBatcher's BatchInput, so the library resolves their paths against the Map's input. Its
 *   handler reads the object with the `read` function the caller gives (the local object store; in
 *   the emulated-AWS suite, S3 signed as the state machine's role, so IAM is checked) and parses
 *   the JSON array. A missing or malformed object fails it with `States.ItemReaderFailed`.
 * - **ItemBatcher** (`MaxItemsPerBatch`, `BatchInput`): the same handler cuts the items, in order,
 *   into child inputs `{ BatchInput, Items }`.
 * - **DISTRIBUTED mode** (`ProcessorConfig`, `Label`): dropped. Each child runs as an iteration of
 *   the library's Map in this process, not as an execution of its own.
 *
 * The inserted Task writes the child inputs where the Map's result will go (its ResultPath), and
 * the Map reads them from there (ItemsPath): its result then replaces them, so the execution state
 * after the Map is what it is on AWS, with nothing left behind.
 *
 * Anything else a Distributed Map may carry (ResultWriter, ItemSelector, InputPath, an ItemReader
 * over a listing or a CSV, MaxInputBytesPerBatch, the `…Path` forms, a non-zero tolerated failure
 * threshold) is refused with an error naming it, never silently ignored. What still differs from
 * AWS: a failed child fails the Map with the child's own error, where AWS fails it with
 * `States.ExceedToleratedFailureThreshold`; children see the parent's context object (`$$`).
 */

/** Reads one object, as the ItemReader's `s3:getObject` would: `Bucket`, `Key`, `VersionId`. */
export type ReadObject = (bucket: string, key: string, versionId?: string) => Promise<Uint8Array>;

type Json = Record<string, unknown>;
type Machine = { StartAt: string; States: Record<string, Json> };

export interface EmulatedDefinition {
  /** The definition to run: a copy of the one given, with the Distributed Maps rewritten. */
  definition: Json;
  /** The inserted reader states' handlers (`taskResourceLocalHandlers`), by state name. */
  handlers: Record<string, (input: unknown) => Promise<unknown>>;
  /** The names of the inserted states: not states of the definition, so not worth reporting. */
  inserted: ReadonlySet<string>;
}

const GET_OBJECT = 'arn:aws:states:::s3:getObject';
const TOLERANCE = ['ToleratedFailureCount', 'ToleratedFailurePercentage'];
const MAP_FIELDS = new Set([
  'Type',
  'Comment',
  'Label',
  'ItemReader',
  'ItemBatcher',
  'ItemProcessor',
  'MaxConcurrency',
  'ToleratedFailureCount',
  'ToleratedFailurePercentage',
  'ResultSelector',
  'ResultPath',
  'OutputPath',
  'Retry',
  'Catch',
  'Next',
  'End',
]);

/** Why the emulation cannot run a definition: a programming error in the ASL, not a run failure. */
export class DistributedMapEmulationError extends Error {
  override readonly name = 'DistributedMapEmulationError';
}

/** An error as Step Functions raises it, matched by name in Retry and Catch. */
class StatesError extends Error {
  constructor(name: string, message: string) {
    super(message);
    this.name = name;
  }
}

/** The name of the state inserted in front of Distributed Map `map`. */
export const readerStateName = (map: string): string => `${map} (ItemReader)`;

/** Rewrites every Distributed Map of `definition` (nested ones too) for aws-local-stepfunctions. */
export function emulateDistributedMaps(definition: Json, read: ReadObject): EmulatedDefinition {
  const copy = structuredClone(definition);
  const handlers: EmulatedDefinition['handlers'] = {};
  rewrite(copy as Machine, read, handlers);
  return { definition: copy, handlers, inserted: new Set(Object.keys(handlers)) };
}

function rewrite(machine: Machine, read: ReadObject, handlers: EmulatedDefinition['handlers']): void {
  for (const [name, state] of Object.entries(machine.States)) {
    for (const branch of (state.Branches as Machine[] | undefined) ?? []) rewrite(branch, read, handlers);
    const processor = (state.ItemProcessor ?? state.Iterator) as (Machine & Json) | undefined;
    if (processor) rewrite(processor, read, handlers);
    if (state.Type !== 'Map' || !isDistributed(state)) continue;
    for (const field of TOLERANCE) {
      if (state[field] !== undefined && state[field] !== 0) {
        throw new DistributedMapEmulationError(`Map ${name}: a non-zero ${field} is not emulated locally`);
      }
    }
    if (!state.ItemReader) {
      for (const field of ['ItemBatcher', 'ResultWriter']) {
        if (field in state) {
          throw new DistributedMapEmulationError(
            `Map ${name}: ${field} without an ItemReader is not emulated locally`,
          );
        }
      }
      // Items from ItemsPath, one per child: the library's inline Map is the emulation.
      for (const field of ['Label', ...TOLERANCE]) delete state[field];
      delete processor?.ProcessorConfig;
      continue;
    }
    const reader = readerStateName(name);
    if (machine.States[reader] || handlers[reader]) {
      throw new DistributedMapEmulationError(`state "${reader}" already exists; rename Map ${name}`);
    }
    for (const field of Object.keys(state)) {
      if (!MAP_FIELDS.has(field)) {
        throw new DistributedMapEmulationError(`Map ${name}: ${field} is not emulated locally`);
      }
    }
    const resultPath = state.ResultPath === undefined ? '$' : state.ResultPath;
    if (typeof resultPath !== 'string') {
      throw new DistributedMapEmulationError(
        `Map ${name}: ResultPath null is not emulated locally (the batches are staged at the ResultPath)`,
      );
    }
    const itemReader = state.ItemReader as Json;
    const batcher = state.ItemBatcher as Json | undefined;
    const { maxItems } = checkReader(name, itemReader);
    const perBatch = batcher ? checkBatcher(name, batcher) : undefined;

    machine.States[reader] = {
      Type: 'Task',
      Comment: `Local emulation of the ItemReader${batcher ? ' and ItemBatcher' : ''} of Distributed Map ${name} (src/local/distributed-map.ts).`,
      Resource: GET_OBJECT,
      Parameters: {
        Reader: itemReader.Parameters ?? {},
        ...(batcher?.BatchInput !== undefined ? { BatchInput: batcher.BatchInput } : {}),
      },
      ResultPath: resultPath,
      ...(state.Retry ? { Retry: structuredClone(state.Retry) } : {}),
      ...(state.Catch ? { Catch: structuredClone(state.Catch) } : {}),
      Next: name,
    };
    handlers[reader] = async (params) => {
      const { Reader, BatchInput } = params as { Reader: Json; BatchInput?: unknown };
      const items = await readItems(name, Reader, read, maxItems);
      if (perBatch === undefined) return items;
      const batches: Json[] = [];
      for (let i = 0; i < items.length; i += perBatch) {
        batches.push({
          ...(batcher?.BatchInput !== undefined ? { BatchInput } : {}),
          Items: items.slice(i, i + perBatch),
        });
      }
      return batches;
    };

    for (const field of ['ItemReader', 'ItemBatcher', 'Label', ...TOLERANCE]) delete state[field];
    state.ItemsPath = resultPath;
    delete processor?.ProcessorConfig;
    redirect(machine, name, reader);
  }
}

function isDistributed(state: Json): boolean {
  const mode = ((state.ItemProcessor as Json | undefined)?.ProcessorConfig as Json | undefined)?.Mode;
  return mode === 'DISTRIBUTED' || 'ItemReader' in state || 'ItemBatcher' in state || 'ResultWriter' in state;
}

function checkReader(name: string, reader: Json): { maxItems?: number } {
  if (reader.Resource !== GET_OBJECT) {
    throw new DistributedMapEmulationError(
      `Map ${name}: only an ItemReader of ${GET_OBJECT} (a JSON array) is emulated locally, not ${String(reader.Resource)}`,
    );
  }
  const config = (reader.ReaderConfig ?? {}) as Json;
  for (const field of Object.keys(config)) {
    if (field !== 'InputType' && field !== 'MaxItems') {
      throw new DistributedMapEmulationError(`Map ${name}: ReaderConfig.${field} is not emulated locally`);
    }
  }
  if (config.InputType !== 'JSON') {
    throw new DistributedMapEmulationError(
      `Map ${name}: only ReaderConfig.InputType JSON is emulated locally, not ${String(config.InputType)}`,
    );
  }
  const maxItems = config.MaxItems;
  if (maxItems === undefined) return {};
  if (!Number.isInteger(maxItems) || (maxItems as number) < 1) {
    throw new DistributedMapEmulationError(`Map ${name}: ReaderConfig.MaxItems must be a positive integer`);
  }
  return { maxItems: maxItems as number };
}

function checkBatcher(name: string, batcher: Json): number {
  for (const field of Object.keys(batcher)) {
    if (field !== 'MaxItemsPerBatch' && field !== 'BatchInput') {
      throw new DistributedMapEmulationError(`Map ${name}: ItemBatcher.${field} is not emulated locally`);
    }
  }
  const n = batcher.MaxItemsPerBatch;
  if (!Number.isInteger(n) || (n as number) < 1) {
    throw new DistributedMapEmulationError(
      `Map ${name}: ItemBatcher.MaxItemsPerBatch must be a positive integer`,
    );
  }
  return n as number;
}

async function readItems(
  name: string,
  params: Json,
  read: ReadObject,
  maxItems?: number,
): Promise<unknown[]> {
  const { Bucket, Key, VersionId } = params;
  if (
    typeof Bucket !== 'string' ||
    typeof Key !== 'string' ||
    (VersionId !== undefined && typeof VersionId !== 'string')
  ) {
    throw new StatesError(
      'States.ItemReaderFailed',
      `Map ${name}: the ItemReader's Parameters must give Bucket and Key as strings (and VersionId, if any)`,
    );
  }
  const where = `s3://${Bucket}/${Key}${VersionId ? `?versionId=${VersionId}` : ''}`;
  let items: unknown;
  try {
    items = JSON.parse(new TextDecoder().decode(await read(Bucket, Key, VersionId)));
  } catch (e) {
    throw new StatesError(
      'States.ItemReaderFailed',
      `Map ${name}: cannot read a JSON array from ${where}: ${e instanceof Error ? e.message : String(e)}`,
    );
  }
  if (!Array.isArray(items)) {
    throw new StatesError('States.ItemReaderFailed', `Map ${name}: ${where} does not hold a JSON array`);
  }
  return maxItems === undefined ? items : items.slice(0, maxItems);
}

/** Every transition to `from` (StartAt, Next, Default, Choices, Catch) goes to `to` instead, but `to`'s own. */
function redirect(machine: Machine, from: string, to: string): void {
  if (machine.StartAt === from) machine.StartAt = to;
  for (const [name, state] of Object.entries(machine.States)) {
    if (name === to) continue;
    if (state.Next === from) state.Next = to;
    if (state.Default === from) state.Default = to;
    for (const rule of (state.Choices as Json[] | undefined) ?? []) if (rule.Next === from) rule.Next = to;
    for (const c of (state.Catch as Json[] | undefined) ?? []) if (c.Next === from) c.Next = to;
  }
}
