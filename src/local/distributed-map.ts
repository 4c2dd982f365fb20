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
 *   the library's Map in this process, not as an execution of its own. When the caller gives
 *   `children` (the emulated-AWS suite does, to replay the state machine role's calls), each
 *   iteration is wrapped so that the calls Step Functions makes as that role around a child
 *   execution are made too: `children.start` before the child's states run (StartExecution; a throw
 *   fails the Map), and once they have ended `children.succeeded` or `children.failed`
 *   (DescribeExecution; the Map Run's failure). The child's own states then run inside a Parallel
 *   branch, their Retry and Catch unchanged, and its output and error are passed on as they were.
 * - **ResultWriter** (`arn:aws:states:::s3:putObject`, Parameters `Bucket` and `Prefix`, either as
 *   a path; "ResultWriter (Map)"): a Task state named `<Map> (ResultWriter)` is inserted after the
 *   Map (it takes the Map's Next or End and OutputPath). Its handler writes the layout Step
 *   Functions exports, with the `write` function the caller gives (the local object store; in the
 *   emulated-AWS suite, S3 signed as the state machine's role): under
 *   `<Prefix>/<map run id>/`, `SUCCEEDED_<n>.json` files (JSON arrays of child executions, each
 *   with its `Input` and `Output` as JSON text, Status SUCCEEDED, a new file past `resultFileBytes`)
 *   and then `manifest.json` (`DestinationBucket`, `MapRunArn`, `ResultFiles` by status). The Map's
 *   result becomes `{MapRunArn, ResultWriterDetails: {Bucket, Key}}`, Key the manifest's. A failed
 *   write fails it with `States.ResultWriterFailed`.
 *
 * The inserted reader writes the child inputs where the Map's result will go (its ResultPath), and
 * the Map reads them from there (ItemsPath): its result then replaces them, so the execution state
 * after the Map is what it is on AWS, with nothing left behind. With a ResultWriter the reader
 * stages `{Items, Writer}` there (Writer: the ResultWriter's Parameters, resolved against the Map's
 * input), the Map puts its results beside them (`Results`), and the inserted writer replaces all
 * three with the Map's output.
 *
 * Anything else a Distributed Map may carry (ItemSelector, InputPath, an ItemReader over a listing
 * or a CSV, MaxInputBytesPerBatch, a ResultWriter's WriterConfig, a ResultSelector beside a
 * ResultWriter, the `…Path` forms, a non-zero tolerated failure threshold) is refused with an error
 * naming it, never silently ignored. What still differs from AWS: a failed child fails the Map with
 * the child's own error, where AWS fails it with `States.ExceedToleratedFailureThreshold` (so the
 * emulated ResultWriter only ever writes SUCCEEDED files); children see the parent's context object
 * (`$$`); the result files keep the items' order, which AWS does not promise.
 */
import { randomUUID } from 'node:crypto';

/** Reads one object, as the ItemReader's `s3:getObject` would: `Bucket`, `Key`, `VersionId`. */
export type ReadObject = (bucket: string, key: string, versionId?: string) => Promise<Uint8Array>;

/** Writes one object, as the ResultWriter's `s3:putObject` would: `Bucket`, `Key`, the bytes. */
export type WriteObject = (bucket: string, key: string, body: Uint8Array) => Promise<void>;

/** A child execution of a Distributed Map, as `ChildExecutions.start` is told of it. */
export interface ChildExecution {
  /** The Distributed Map's state name and its Label (its state name when it has none). */
  map: string;
  label: string;
  /** `$$.Execution.Id` of the execution running the Map. */
  parent: string;
  /** The child's input: an item, or a batch `{ BatchInput, Items }`. */
  input: unknown;
}

/**
 * The calls Step Functions makes around each child execution of a Distributed Map (see the file
 * comment). `start` returns the child's execution ARN, which the other two are given.
 */
export interface ChildExecutions {
  start(child: ChildExecution): Promise<string>;
  succeeded(executionArn: string, output: unknown): Promise<void>;
  /** The child failed with `error`; the Map fails with it once this returns. */
  failed(executionArn: string, error: { Error: string; Cause: string }): Promise<void>;
}

export interface EmulationOptions {
  /** Where a ResultWriter writes; a Map with a ResultWriter is refused without it. */
  write?: WriteObject;
  /** Called around each child of a Distributed Map with an ItemReader (see the file comment). */
  children?: ChildExecutions;
  /** A result file is closed once it would pass this size (AWS: 5 GB); at least one child each. */
  resultFileBytes?: number;
}

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
const PUT_OBJECT = 'arn:aws:states:::s3:putObject';
const START_EXECUTION = 'arn:aws:states:::states:startExecution';
const DESCRIBE_EXECUTION = 'arn:aws:states:::aws-sdk:sfn:describeExecution';
const RESULT_FILE_BYTES = 5 * 1000 ** 3;
const TOLERANCE = ['ToleratedFailureCount', 'ToleratedFailurePercentage'];
const MAP_FIELDS = new Set([
  'Type',
  'Comment',
  'Label',
  'ItemReader',
  'ItemBatcher',
  'ItemProcessor',
  'MaxConcurrency',
  'ResultWriter',
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

/** The name of the state inserted after Distributed Map `map` when it has a ResultWriter. */
export const writerStateName = (map: string): string => `${map} (ResultWriter)`;

/** The names of the states wrapped around each child of Distributed Map `map` (`children` given). */
export const childStateNames = (map: string) => ({
  start: `${map} (StartExecution)`,
  run: `${map} (ChildExecution)`,
  succeeded: `${map} (ChildSucceeded)`,
  failed: `${map} (ChildFailed)`,
});

/** Rewrites every Distributed Map of `definition` (nested ones too) for aws-local-stepfunctions. */
export function emulateDistributedMaps(
  definition: Json,
  read: ReadObject,
  options: EmulationOptions = {},
): EmulatedDefinition {
  const copy = structuredClone(definition);
  const handlers: EmulatedDefinition['handlers'] = {};
  rewrite(copy as Machine, read, options, handlers);
  return { definition: copy, handlers, inserted: new Set(Object.keys(handlers)) };
}

function rewrite(
  machine: Machine,
  read: ReadObject,
  options: EmulationOptions,
  handlers: EmulatedDefinition['handlers'],
): void {
  for (const [name, state] of Object.entries(machine.States)) {
    for (const branch of (state.Branches as Machine[] | undefined) ?? [])
      rewrite(branch, read, options, handlers);
    const processor = (state.ItemProcessor ?? state.Iterator) as (Machine & Json) | undefined;
    if (processor) rewrite(processor, read, options, handlers);
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
    const writer = writerStateName(name);
    for (const inserted of [reader, writer]) {
      if (machine.States[inserted] || handlers[inserted]) {
        throw new DistributedMapEmulationError(`state "${inserted}" already exists; rename Map ${name}`);
      }
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
    const resultWriter = state.ResultWriter as Json | undefined;
    if (resultWriter) checkWriter(name, state, resultWriter, options);

    machine.States[reader] = {
      Type: 'Task',
      Comment: `Local emulation of the ItemReader${batcher ? ' and ItemBatcher' : ''} of Distributed Map ${name} (src/local/distributed-map.ts).`,
      Resource: GET_OBJECT,
      Parameters: {
        Reader: itemReader.Parameters ?? {},
        ...(batcher?.BatchInput !== undefined ? { BatchInput: batcher.BatchInput } : {}),
        ...(resultWriter ? { Writer: resultWriter.Parameters } : {}),
      },
      ResultPath: resultPath,
      ...(state.Retry ? { Retry: structuredClone(state.Retry) } : {}),
      ...(state.Catch ? { Catch: structuredClone(state.Catch) } : {}),
      Next: name,
    };
    handlers[reader] = async (params) => {
      const { Reader, BatchInput, Writer } = params as { Reader: Json; BatchInput?: unknown; Writer?: Json };
      const items = await readItems(name, Reader, read, maxItems);
      let inputs: unknown[] = items;
      if (perBatch !== undefined) {
        inputs = [];
        for (let i = 0; i < items.length; i += perBatch) {
          inputs.push({
            ...(batcher?.BatchInput !== undefined ? { BatchInput } : {}),
            Items: items.slice(i, i + perBatch),
          });
        }
      }
      return resultWriter ? { Items: inputs, Writer } : inputs;
    };

    if (resultWriter) {
      // The Map's results go beside the staged inputs; the writer replaces both with the Map's output.
      machine.States[writer] = {
        Type: 'Task',
        Comment: `Local emulation of the ResultWriter of Distributed Map ${name} (src/local/distributed-map.ts).`,
        Resource: PUT_OBJECT,
        Parameters: { 'Staged.$': resultPath, 'Context.$': '$$' },
        ResultPath: resultPath,
        ...(state.OutputPath !== undefined ? { OutputPath: state.OutputPath } : {}),
        ...(state.Retry ? { Retry: structuredClone(state.Retry) } : {}),
        ...(state.Catch ? { Catch: structuredClone(state.Catch) } : {}),
        ...(state.End === true ? { End: true } : { Next: state.Next }),
      };
      handlers[writer] = (params) =>
        writeResults(name, label, params as WriterParams, options.write as WriteObject, {
          resultFileBytes: options.resultFileBytes ?? RESULT_FILE_BYTES,
        });
      state.ItemsPath = child(resultPath, 'Items');
      state.ResultPath = child(resultPath, 'Results');
      state.Next = writer;
      for (const field of ['End', 'OutputPath', 'ResultWriter']) delete state[field];
    } else {
      state.ItemsPath = resultPath;
    }
    const label = typeof state.Label === 'string' ? state.Label : name;
    for (const field of ['ItemReader', 'ItemBatcher', 'Label', ...TOLERANCE]) delete state[field];
    delete processor?.ProcessorConfig;
    if (options.children && processor) {
      state.ItemProcessor = wrapChild(name, label, processor, options.children, handlers);
      delete state.Iterator;
    }
    redirect(machine, name, reader);
  }
}

/**
 * The ItemProcessor of Distributed Map `map` with each child wrapped in the calls `children` makes:
 * start (its ARN and input staged), the child's own states as the one branch of a Parallel (its
 * output, or its error caught), then succeeded (the output passed on) or failed (the error raised
 * again, Error and Cause as they were).
 */
function wrapChild(
  map: string,
  label: string,
  processor: Machine & Json,
  children: ChildExecutions,
  handlers: EmulatedDefinition['handlers'],
): Json {
  const names = childStateNames(map);
  for (const inserted of Object.values(names)) {
    if (processor.States[inserted] || handlers[inserted]) {
      throw new DistributedMapEmulationError(`state "${inserted}" already exists; rename Map ${map}`);
    }
  }
  handlers[names.start] = async (params) => {
    const { Input, Parent } = params as { Input: unknown; Parent: unknown };
    const parent = typeof Parent === 'string' ? Parent : '';
    return { ExecutionArn: await children.start({ map, label, parent, input: Input }), Input };
  };
  handlers[names.succeeded] = async (params) => {
    const { ExecutionArn, Output } = params as { ExecutionArn: string; Output: unknown[] };
    await children.succeeded(ExecutionArn, Output[0]);
    return Output[0];
  };
  handlers[names.failed] = async (params) => {
    const { ExecutionArn, Error: error } = params as {
      ExecutionArn: string;
      Error: { Error: string; Cause: string };
    };
    await children.failed(ExecutionArn, error);
    throw new StatesError(error.Error, error.Cause);
  };
  return {
    StartAt: names.start,
    States: {
      [names.start]: {
        Type: 'Task',
        Comment: `Local emulation: Step Functions starts a child execution of Distributed Map ${map}.`,
        Resource: START_EXECUTION,
        Parameters: { 'Input.$': '$', 'Parent.$': '$$.Execution.Id' },
        Next: names.run,
      },
      [names.run]: {
        Type: 'Parallel',
        Comment: `Local emulation: the child execution's own states (Distributed Map ${map}).`,
        InputPath: '$.Input',
        Branches: [processor],
        ResultPath: '$.Output',
        Catch: [{ ErrorEquals: ['States.ALL'], ResultPath: '$.Error', Next: names.failed }],
        Next: names.succeeded,
      },
      [names.succeeded]: {
        Type: 'Task',
        Comment: `Local emulation: the child execution of Distributed Map ${map} succeeded.`,
        Resource: DESCRIBE_EXECUTION,
        Parameters: { 'ExecutionArn.$': '$.ExecutionArn', 'Output.$': '$.Output' },
        End: true,
      },
      [names.failed]: {
        Type: 'Task',
        Comment: `Local emulation: the child execution of Distributed Map ${map} failed.`,
        Resource: DESCRIBE_EXECUTION,
        Parameters: { 'ExecutionArn.$': '$.ExecutionArn', 'Error.$': '$.Error' },
        End: true,
      },
    },
  };
}

/** The path of field `field` of the value at `path`. */
const child = (path: string, field: string): string => (path === '$' ? `$.${field}` : `${path}.${field}`);

function checkWriter(name: string, state: Json, writer: Json, options: EmulationOptions): void {
  for (const field of Object.keys(writer)) {
    if (field !== 'Resource' && field !== 'Parameters') {
      throw new DistributedMapEmulationError(`Map ${name}: ResultWriter.${field} is not emulated locally`);
    }
  }
  if (writer.Resource !== PUT_OBJECT) {
    throw new DistributedMapEmulationError(
      `Map ${name}: only a ResultWriter of ${PUT_OBJECT} is emulated locally, not ${String(writer.Resource)}`,
    );
  }
  const params = (writer.Parameters ?? {}) as Json;
  for (const field of Object.keys(params)) {
    if (!['Bucket', 'Bucket.$', 'Prefix', 'Prefix.$'].includes(field)) {
      throw new DistributedMapEmulationError(
        `Map ${name}: ResultWriter.Parameters.${field} is not emulated locally`,
      );
    }
  }
  if (!('Bucket' in params) && !('Bucket.$' in params)) {
    throw new DistributedMapEmulationError(`Map ${name}: ResultWriter.Parameters needs a Bucket`);
  }
  if (state.ResultSelector !== undefined) {
    throw new DistributedMapEmulationError(
      `Map ${name}: a ResultSelector beside a ResultWriter is not emulated locally`,
    );
  }
  if (!options.write) {
    throw new DistributedMapEmulationError(
      `Map ${name} has a ResultWriter: the emulation needs a write function`,
    );
  }
}

type WriterParams = {
  Staged: { Items: unknown[]; Writer: Json; Results: unknown[] };
  Context?: { StateMachine?: { Id?: unknown; Name?: unknown } };
};

/** The region, account and name of a state machine ARN, or local placeholders. */
function machineOf(context: WriterParams['Context']): { region: string; account: string; machine: string } {
  const id = context?.StateMachine?.Id;
  const arn =
    typeof id === 'string' ? /^arn:aws:states:([^:]+):([^:]+):stateMachine:([^:]+)$/.exec(id) : null;
  if (arn) return { region: arn[1] as string, account: arn[2] as string, machine: arn[3] as string };
  const name = context?.StateMachine?.Name;
  return { region: 'us-east-1', account: '000000000000', machine: typeof name === 'string' ? name : 'local' };
}

/** The ResultWriter's export (see the file comment); returns the Map's output. */
async function writeResults(
  name: string,
  label: string,
  { Staged, Context }: WriterParams,
  write: WriteObject,
  { resultFileBytes }: { resultFileBytes: number },
): Promise<Json> {
  const { Bucket, Prefix } = Staged.Writer;
  if (typeof Bucket !== 'string' || (Prefix !== undefined && typeof Prefix !== 'string')) {
    throw new StatesError(
      'States.ResultWriterFailed',
      `Map ${name}: the ResultWriter's Parameters must give Bucket (and Prefix, if any) as strings`,
    );
  }
  const { region, account, machine } = machineOf(Context);
  const mapRunId = randomUUID();
  const mapRunArn = `arn:aws:states:${region}:${account}:mapRun:${machine}/${label}:${mapRunId}`;
  const stateMachineArn = `arn:aws:states:${region}:${account}:stateMachine:${machine}`;
  const folder = `${Prefix ? `${Prefix.replace(/\/+$/, '')}/` : ''}${mapRunId}/`;
  const now = new Date().toISOString();
  const entries = Staged.Results.map((output, i) => {
    const childName = randomUUID();
    return JSON.stringify({
      ExecutionArn: `arn:aws:states:${region}:${account}:execution:${machine}/${label}:${childName}`,
      Input: JSON.stringify(Staged.Items[i]),
      InputDetails: { Included: true },
      Name: childName,
      Output: JSON.stringify(output),
      OutputDetails: { Included: true },
      RedriveCount: 0,
      RedriveStatus: 'NOT_REDRIVABLE',
      RedriveStatusReason: 'Execution is SUCCEEDED and cannot be redriven',
      StartDate: now,
      StateMachineArn: stateMachineArn,
      Status: 'SUCCEEDED',
      StopDate: now,
    });
  });
  const files: string[][] = [];
  let size = 0;
  for (const entry of entries) {
    const last = files.at(-1);
    if (last && size + entry.length + 1 <= resultFileBytes) {
      last.push(entry);
      size += entry.length + 1;
    } else {
      files.push([entry]);
      size = entry.length + 2;
    }
  }
  const put = async (key: string, text: string): Promise<number> => {
    const body = new TextEncoder().encode(text);
    try {
      await write(Bucket, key, body);
    } catch (e) {
      throw new StatesError(
        'States.ResultWriterFailed',
        `Map ${name}: cannot write s3://${Bucket}/${key}: ${e instanceof Error ? e.message : String(e)}`,
      );
    }
    return body.byteLength;
  };
  const succeeded: { Key: string; Size: number }[] = [];
  for (const [n, file] of files.entries()) {
    const key = `${folder}SUCCEEDED_${n}.json`;
    succeeded.push({ Key: key, Size: await put(key, `[${file.join(',')}]`) });
  }
  const manifestKey = `${folder}manifest.json`;
  await put(
    manifestKey,
    JSON.stringify({
      DestinationBucket: Bucket,
      MapRunArn: mapRunArn,
      ResultFiles: { FAILED: [], PENDING: [], SUCCEEDED: succeeded },
    }),
  );
  return { MapRunArn: mapRunArn, ResultWriterDetails: { Bucket, Key: manifestKey } };
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
