import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { StateMachine } from 'aws-local-stepfunctions';
import { readObject } from '../cas.js';
import { type ErrorInfo, errorFromCatch, VeritrailError } from '../core/errors.js';
import type { ExecState } from '../core/exec-state.js';
import type { RunStatus } from '../core/run.js';
import { TASK_STATES, type TaskState } from '../core/states.js';
import { StepFailure } from '../steps/step.js';
import { handleTrainingEnd } from '../steps/train.js';
import { emulateDistributedMaps, type ReadObject, type WriteObject } from './distributed-map.js';
import type { LocalRuntime } from './runtime.js';
import { forRun } from './units.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const STATE_MACHINE_FILE = join(ROOT, 'state-machines', 'training-pipeline.asl.json');

/**
 * The Lambda-backed task states and the handler module each runs (functions/<file>.ts), from the
 * registry of task states (src/core/states.ts). HashBatch is the task of each child of the
 * HashBatches Distributed Map.
 */
export const TASK_FUNCTIONS = Object.fromEntries(
  Object.entries(TASK_STATES).map(([state, task]) => [state, task.function]),
) as { readonly [S in TaskState]: (typeof TASK_STATES)[S]['function'] };

/**
 * The bucket the definition names by substitution (`${ArtifactsBucket}`, the HashBatches
 * ItemReader's and ResultWriter's): locally, the object store's logical bucket of that name.
 */
export const LOCAL_BUCKETS = { ArtifactsBucket: 'artifacts' } as const;

/**
 * Fills the definition substitutions (`${TrainFunctionArn}`…) with placeholder local ARNs, and
 * `${ArtifactsBucket}` with the local bucket.
 */
export function localDefinition(): Record<string, unknown> {
  let text = readFileSync(STATE_MACHINE_FILE, 'utf8');
  for (const [state, file] of Object.entries(TASK_FUNCTIONS)) {
    text = text.replaceAll(
      `\${${state}FunctionArn}`,
      `arn:aws:lambda:us-east-1:000000000000:function:veritrail-${file}`,
    );
  }
  for (const [variable, bucket] of Object.entries(LOCAL_BUCKETS))
    text = text.replaceAll(`\${${variable}}`, bucket);
  if (text.includes('${'))
    throw new VeritrailError('INTERNAL', 'state machine has an unfilled definition substitution');
  return JSON.parse(text) as Record<string, unknown>;
}

/**
 * The states a run passes through when nothing fails, in order, as progress reports them: from
 * StartAt along each state's Next (a Choice's Default), Choice states left out (they route, they do
 * no work, and progress does not report them).
 */
export function mainPathStates(): string[] {
  const asl = JSON.parse(readFileSync(STATE_MACHINE_FILE, 'utf8')) as {
    StartAt: string;
    States: Record<string, { Type: string; Next?: string; Default?: string }>;
  };
  const out: string[] = [];
  for (let at: string | undefined = asl.StartAt; at !== undefined && !out.includes(at); ) {
    const state: { Type: string; Next?: string; Default?: string } | undefined = asl.States[at];
    if (state?.Type !== 'Choice') out.push(at);
    at = state?.Type === 'Choice' ? state.Default : state?.Next;
  }
  return out;
}

export type ProgressEvent =
  | { type: 'entered'; state: string; at: number }
  | { type: 'exited'; state: string; at: number; ms: number }
  | { type: 'failed'; state: string; at: number; ms: number; error: string }
  | { type: 'retried'; state: string; at: number; attempt: number };

export interface LocalExecution {
  runId: string;
  status: RunStatus;
  state?: ExecState & { results?: Record<string, unknown> };
  error?: ErrorInfo;
}

type Handler = (event: unknown, context: unknown) => Promise<unknown>;

/** The very modules Lambda runs, one per task state (static imports, so bundlers see them). */
async function loadHandlers(): Promise<Map<string, Handler>> {
  const mods: Record<TaskState, Promise<{ handler: unknown }>> = {
    RegisterRun: import('../../functions/register-run.js'),
    ListDataset: import('../../functions/list-dataset.js'),
    HashBatch: import('../../functions/hash-batch.js'),
    HashDataset: import('../../functions/hash-dataset.js'),
    Preprocess: import('../../functions/preprocess.js'),
    CheckCode: import('../../functions/check-code.js'),
    Train: import('../../functions/train.js'),
    Evaluate: import('../../functions/evaluate.js'),
    Gate: import('../../functions/gate.js'),
    Sign: import('../../functions/sign.js'),
    Register: import('../../functions/register.js'),
    Finish: import('../../functions/finish.js'),
    RecordFailure: import('../../functions/record-failure.js'),
  };
  const out = new Map<string, Handler>();
  for (const [state, mod] of Object.entries(mods)) out.set(state, (await mod).handler as Handler);
  return out;
}

/**
 * The slice of aws-local-stepfunctions' event log this runner reads (the type is not exported). A
 * Map forwards its iterations' state events with the iteration's `index`.
 */
type StateEvent = { timestamp: number; state: { name: string }; index?: number };
type EventLog =
  | ({ type: 'StateEntered' | 'StateExited' | 'StateCaught' } & StateEvent)
  | ({ type: 'StateFailed'; Error: string } & StateEvent)
  | ({ type: 'StateRetried'; retry: { attempt: number } } & StateEvent)
  | { type: 'ExecutionStarted' | 'ExecutionSucceeded' | 'ExecutionFailed'; timestamp: number };

/** The ItemReader of a Distributed Map, locally: `Bucket` is a bucket of the local object store. */
function localReader(rt: Pick<LocalRuntime, 'objects'>): ReadObject {
  return async (bucket, key, versionId) => {
    if (!(Object.values(LOCAL_BUCKETS) as string[]).includes(bucket)) {
      throw new VeritrailError('INTERNAL', `the local runner reads no bucket "${bucket}"`);
    }
    if (versionId !== undefined) {
      throw new VeritrailError(
        'INTERNAL',
        `the local object store keeps no versions (VersionId ${versionId})`,
      );
    }
    return readObject(rt.objects, bucket as (typeof LOCAL_BUCKETS)['ArtifactsBucket'], key);
  };
}

/** The ResultWriter of a Distributed Map, locally: `Bucket` is a bucket of the local object store. */
function localWriter(rt: Pick<LocalRuntime, 'objects'>): WriteObject {
  return async (bucket, key, body) => {
    if (!(Object.values(LOCAL_BUCKETS) as string[]).includes(bucket)) {
      throw new VeritrailError('INTERNAL', `the local runner writes no bucket "${bucket}"`);
    }
    await rt.objects.put(bucket as (typeof LOCAL_BUCKETS)['ArtifactsBucket'], key, body);
  };
}

/** The Lambda context of a local invocation; `runtime` is the embedded ports, passed explicitly. */
const lambdaContext = (name: string, runtime: LocalRuntime) => ({
  runtime,
  functionName: `veritrail-${name}`,
  awsRequestId: `local-${Date.now()}`,
  getRemainingTimeInMillis: () => 900_000,
  callbackWaitsForEmptyEventLoop: false,
});

/**
 * Runs the pipeline's ASL with aws-local-stepfunctions, each task state mapped to the same handler
 * module Lambda runs, invoked with the embedded runtime in its context (src/aws/handler.ts: the
 * `ports` middleware then builds no AWS port): the view of the run's business unit, whose signer
 * signs and whose log records every step (src/local/units.ts forRun), whichever view `base` is.
 * The Train state's task token wait is played by the local trainer: launch via functions/train.ts,
 * wait for the child process, then the same end-of-job code the SageMaker callback runs on AWS.
 * The Distributed Map's ItemReader, ItemBatcher and ResultWriter, which the library lacks, are
 * emulated (src/local/distributed-map.ts), reading from and writing to the local object store.
 */
export async function executeLocally(
  base: LocalRuntime,
  input: ExecState,
  onProgress: (e: ProgressEvent) => void = () => {},
): Promise<LocalExecution> {
  const unit = (await base.runs.get(input.runId).catch(() => undefined))?.unit;
  const rt = await forRun(base, { pipelineDigest: input.pipeline.digest, ...(unit ? { unit } : {}) });
  let result: LocalExecution;
  try {
    const output = (await executeDefinition(rt, localDefinition(), input, onProgress)) as ExecState & {
      results?: Record<string, { status?: RunStatus }>;
    };
    const status = output.results?.finish?.status ?? 'FAILED';
    result = { runId: input.runId, status, state: output };
  } catch (e) {
    // The Fail state after RecordFailure ends the execution; the run record holds the reason.
    const run = await rt.runs.get(input.runId).catch(() => undefined);
    const error =
      run?.error ??
      errorFromCatch({
        Error: (e as { name?: string }).name ?? 'Error',
        Cause: (e as Error).message ?? String(e),
      });
    result = { runId: input.runId, status: 'FAILED', error };
  }
  return result;
}

/**
 * Runs `definition` (the pipeline's, or a part of it: bench/scale.ts runs its hashing states) on
 * aws-local-stepfunctions with the task states of TASK_FUNCTIONS wired as executeLocally wires
 * them; resolves with the execution's output, rejects with its error. Progress is reported for the
 * definition's own states: not for its Choice states (routing), the states the emulation inserts,
 * nor each Map iteration's.
 */
export async function executeDefinition(
  rt: LocalRuntime,
  definition: Record<string, unknown>,
  input: ExecState,
  onProgress: (e: ProgressEvent) => void = () => {},
): Promise<unknown> {
  const handlers = await loadHandlers();
  const invoke = (state: string) => async (event: unknown) => {
    const h = handlers.get(state);
    if (!h) throw new Error(`no handler for ${state}`);
    return (await h(event, lambdaContext(state, rt))) as never;
  };
  const overrides: Record<string, (input: unknown) => Promise<never>> = {};
  for (const state of Object.keys(TASK_FUNCTIONS)) overrides[state] = invoke(state);
  overrides.Train = async (params: unknown) => {
    const payload = (params as { Payload: { state: ExecState; taskToken: string } }).Payload;
    const launched = (await invoke('Train')(payload)) as { jobName: string };
    const job = await rt.trainer.wait(launched.jobName);
    const end = await handleTrainingEnd(rt, payload.state.runId, job);
    if (end.error) throw new StepFailure(end.error);
    return end.output as never;
  };

  const emulated = emulateDistributedMaps(definition, localReader(rt), { write: localWriter(rt) });
  Object.assign(overrides, emulated.handlers);
  const machine = new StateMachine(emulated.definition as never, {
    validationOptions: { checkPaths: true, checkArn: true },
  });
  const retryIntervalOverrides = Object.fromEntries(Object.keys(overrides).map((s) => [s, 50]));
  const execution = machine.run(input as never, {
    overrides: { taskResourceLocalHandlers: overrides as never, retryIntervalOverrides },
    context: {
      Execution: {
        Id: `local:${input.runId}`,
        Name: input.runId,
        Input: input,
        StartTime: new Date().toISOString(),
      },
      StateMachine: { Id: 'local:training-pipeline', Name: 'training-pipeline' },
      Task: { Token: `local-task-token:${input.runId}` },
    } as never,
  });

  const choices = new Set(
    Object.entries(definition.States as Record<string, { Type: string }>)
      .filter(([, state]) => state.Type === 'Choice')
      .map(([name]) => name),
  );
  const entered = new Map<string, number>();
  const progress = (async () => {
    for await (const ev of execution.eventLogs as unknown as AsyncIterable<EventLog>) {
      if (!('state' in ev) || ev.index !== undefined) continue;
      const name = ev.state.name;
      if (emulated.inserted.has(name) && ev.type !== 'StateFailed') continue;
      if (choices.has(name)) continue;
      if (ev.type === 'StateEntered') {
        entered.set(name, ev.timestamp);
        onProgress({ type: 'entered', state: name, at: ev.timestamp });
      } else if (ev.type === 'StateExited') {
        onProgress({
          type: 'exited',
          state: name,
          at: ev.timestamp,
          ms: ev.timestamp - (entered.get(name) ?? ev.timestamp),
        });
      } else if (ev.type === 'StateFailed' || ev.type === 'StateCaught') {
        if (ev.type === 'StateFailed') {
          onProgress({
            type: 'failed',
            state: name,
            at: ev.timestamp,
            ms: ev.timestamp - (entered.get(name) ?? ev.timestamp),
            error: ev.Error,
          });
        }
      } else if (ev.type === 'StateRetried') {
        onProgress({ type: 'retried', state: name, at: ev.timestamp, attempt: ev.retry.attempt });
      }
    }
  })();

  try {
    return (await execution.result) as unknown;
  } finally {
    await progress.catch(() => undefined);
  }
}
