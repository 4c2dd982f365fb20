import { createHash, randomUUID } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { StartService, startDepsOf } from '../app/start/service.js';
import { scanForSecrets } from '../core/code-scan.js';
import { DatasetRecords } from '../core/dataset-schema.js';
import type { Digest } from '../core/digest.js';
import { VeritrailError } from '../core/errors.js';
import { gateSchemaFor } from '../core/gate/attributes.js';
import { loadPolicy } from '../core/gate/policy.js';
import { canonicalDigest } from '../core/jcs.js';
import { buildManifest, datasetDigest } from '../core/manifest.js';
import { type PipelineDefinition, parsePipelineDefinition } from '../core/pipeline.js';
import { redactText, secretKindsIn } from '../core/redact.js';
import { localCron } from '../core/rules.js';
import { makeSplitter } from '../core/split.js';
import type { StartOutcome } from '../core/start.js';
import { unitOf } from '../core/unit.js';
import type { DatasetSource } from '../ports.js';
import { streamCsvRecords } from '../steps/csv-stream.js';
import { closeRun } from './run-owners.js';
import { executeLocally, type LocalExecution, type ProgressEvent } from './runner.js';
import type { LocalRuntime } from './runtime.js';
import { inUnit } from './units.js';

export interface LoadedPipeline {
  def: PipelineDefinition;
  digest: Digest;
  /** file: URI of the definition's folder: trainer code and policy paths resolve against it. */
  base: string;
  path: string;
}

/** Reads and validates a pipeline definition file; PIPELINE_INVALID names the file and the bad field. */
export async function loadPipelineFile(path: string, cwd: string): Promise<LoadedPipeline> {
  const abs = resolve(cwd, path);
  let text: string;
  try {
    text = await readFile(abs, 'utf8');
  } catch (e) {
    throw new VeritrailError(
      'PIPELINE_INVALID',
      `cannot read pipeline definition ${abs}: ${(e as Error).message}; check --pipeline`,
      {
        cause: e,
      },
    );
  }
  // Invariant 7: a definition is configuration, and configuration never holds a credential.
  const secrets = scanForSecrets(abs, text);
  if (secrets.length > 0) {
    const where = secrets.map((f) => `line ${f.line} (${f.kind})`).join(', ');
    throw new VeritrailError(
      'PIPELINE_INVALID',
      `pipeline definition ${abs} holds what looks like a credential at ${where}; remove it (trainers get credentials from their execution role, never from the definition)`,
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new VeritrailError(
      'PIPELINE_INVALID',
      `pipeline definition ${abs} is not valid JSON: ${(e as Error).message}`,
      { cause: e },
    );
  }
  // The same check on the decoded values: a key spelled with JSON escapes (\u0041KIA…) is a key.
  const decoded = secretsInValue(value);
  if (decoded.length > 0) {
    throw new VeritrailError(
      'PIPELINE_INVALID',
      `pipeline definition ${abs} holds what looks like a credential (${[...new Set(decoded.map((d) => `${d.kind} at ${d.path}`))].join(', ')}); remove it (trainers get credentials from their execution role, never from the definition)`,
    );
  }
  const def = parsePipelineDefinition(value, `pipeline definition ${abs}`);
  return { def, digest: canonicalDigest(def), base: pathToFileURL(`${dirname(abs)}/`).href, path: abs };
}

/**
 * Checks a dataset before any run starts, with the same row rules Preprocess applies, so that the
 * common mistakes (missing file, empty file, missing column, a non-numeric feature) are a one-line
 * usage error rather than a failed run.
 */
export async function preflightDataset(
  datasets: DatasetSource,
  uri: string,
  def: PipelineDefinition,
): Promise<Digest> {
  const files = await datasets.list(uri);
  if (files.every((f) => f.size === 0)) {
    throw new VeritrailError(
      'DATASET_EMPTY',
      `dataset ${uri.replace('file://', '')} is empty (0 bytes); supply a CSV file with a header row and data`,
    );
  }
  let rows = 0;
  const records = new DatasetRecords(def);
  const entries: { path: string; size: number; digest: Digest }[] = [];
  for (const file of files) {
    const hash = createHash('sha256');
    const record = records.file(file.path);
    await streamCsvRecords(
      await datasets.open(file),
      file.path,
      (r) => {
        if (record(r.fields, r.line) === 'header') return;
        rows++;
      },
      hash,
    );
    entries.push({ path: file.path, size: file.size, digest: `sha256:${hash.digest('hex')}` });
  }
  if (rows < 3) {
    throw new VeritrailError(
      'DATASET_EMPTY',
      `dataset ${uri.replace('file://', '')} has ${rows} data row(s); a run needs enough rows to train and validate`,
    );
  }
  // The content identity the trigger is pinned to (HashDataset re-derives and records it).
  const digest = datasetDigest(buildManifest(entries));
  // The very split Preprocess will make (seeded by this digest), so its row minimum is checked now.
  const side = makeSplitter(digest, def.dataset.validationFraction, def.dataset.testFraction);
  const split = { train: 0, validation: 0, test: 0 };
  for (let i = 0; i < rows; i++) split[side()]++;
  if (split.train < 2 || split.validation < 1 || split.test < 1) {
    throw new VeritrailError(
      'DATASET_EMPTY',
      `dataset ${uri.replace('file://', '')} has too few rows to train and validate (${rows} rows: ${split.train} train, ${split.validation} validation, ${split.test} test at validationFraction ${def.dataset.validationFraction}, testFraction ${def.dataset.testFraction}); supply more data`,
    );
  }
  return digest;
}

/**
 * Checks everything about a definition that can be checked before a run exists, so that a mistake
 * is a one-line usage error (exit 2) rather than a run that fails after training: the trainer code
 * folder exists, the gate policy reads, parses and fits the gate schema, the schedule is a valid
 * cron expression.
 */
export async function preflightPipeline(p: LoadedPipeline): Promise<void> {
  const dir = dirname(p.path);
  const code = resolve(dir, p.def.trainer.code);
  const codeStat = await stat(code).catch(() => undefined);
  if (!codeStat?.isDirectory()) {
    throw new VeritrailError(
      'PIPELINE_INVALID',
      `pipeline definition ${p.path}: trainer.code ${p.def.trainer.code} (${code}) ${codeStat ? 'is not a folder' : 'does not exist'}; point it at the folder holding the training code`,
    );
  }
  if (p.def.gate.policy !== undefined) {
    const policyPath = resolve(dir, p.def.gate.policy);
    let text: string;
    try {
      text = await readFile(policyPath, 'utf8');
    } catch (e) {
      throw new VeritrailError(
        'PIPELINE_INVALID',
        `pipeline definition ${p.path}: gate.policy ${p.def.gate.policy} cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); check the path, relative to the definition`,
        { cause: e },
      );
    }
    try {
      // The schema the Gate step validates with: the gate schema plus this pipeline's byAttribute.
      loadPolicy(text, {
        file: policyPath,
        schemaText: gateSchemaFor(p.def.dataset.protected.map((a) => a.column)),
      });
    } catch (e) {
      throw new VeritrailError('PIPELINE_INVALID', `pipeline definition ${p.path}: ${(e as Error).message}`, {
        cause: e,
      });
    }
  }
  const cron = p.def.schedule?.cron;
  if (cron !== undefined) {
    try {
      localCron(cron).stop();
    } catch (e) {
      throw new VeritrailError(
        'PIPELINE_INVALID',
        `pipeline definition ${p.path}: ${(e as Error).message}; use five fields in UTC, e.g. "0 3 * * 1"`,
        { cause: e },
      );
    }
  }
}

/** What `veritrail run` came to: the start service's outcome and, when it started a run, its execution. */
export interface RunOnce {
  outcome: StartOutcome;
  execution?: LocalExecution;
}

/**
 * `veritrail run`: an operator start through the same start service as every other trigger (definition
 * stored content-addressed, run id from the trigger's content identity, conditional create, lineage
 * START), then the execution, awaited. Each invocation is its own request, so it always trains.
 */
export async function runOnce(
  rt: LocalRuntime,
  pipeline: LoadedPipeline,
  dataset: { uri: string; digest: Digest },
  onProgress?: (e: ProgressEvent) => void,
  options: { signal?: AbortSignal } = {},
): Promise<RunOnce> {
  let execution: Promise<LocalExecution> | undefined;
  let runId: string | undefined;
  // The run.requested entry goes to the log of the pipeline's unit, as every later one does.
  const service = new StartService({
    ...startDepsOf(await inUnit(rt, unitOf(pipeline.def))),
    pipelines: [{ def: pipeline.def, digest: pipeline.digest, base: pipeline.base }],
    launch: async (input) => {
      // This process owns the run from now on: if it dies, the next process closes the run.
      await rt.owners.own(input.runId);
      runId = input.runId;
      execution = executeLocally(rt, input, onProgress);
      return { alreadyStarted: false };
    },
  });
  try {
    const outcome = await service.handle({
      pipeline: pipeline.def.name,
      dataset,
      force: true,
      requestId: randomUUID(),
      actor: rt.actor,
    });
    if (!execution || runId === undefined) return { outcome };
    return { outcome, execution: await awaitExecution(rt, runId, execution, options.signal) };
  } finally {
    if (runId !== undefined) await rt.owners.release(runId);
  }
}

/** The execution's end, or, when `signal` aborts first, the run cancelled (see cancelRun). */
export async function awaitExecution(
  rt: LocalRuntime,
  runId: string,
  execution: Promise<LocalExecution>,
  signal: AbortSignal | undefined,
): Promise<LocalExecution> {
  const cancelled = signal ? untilAborted(signal) : undefined;
  const ended = await Promise.race([execution, ...(cancelled ? [cancelled.promise] : [])]);
  cancelled?.dispose();
  if (ended !== CANCEL) return ended;
  return cancelRun(rt, runId, String(signal?.reason ?? 'signal'));
}

const CANCEL = Symbol('cancel');

function untilAborted(signal: AbortSignal): { promise: Promise<typeof CANCEL>; dispose(): void } {
  let onAbort = () => {};
  const promise = new Promise<typeof CANCEL>((resolve) => {
    onAbort = () => resolve(CANCEL);
    if (signal.aborted) resolve(CANCEL);
    else signal.addEventListener('abort', onAbort, { once: true });
  });
  return { promise, dispose: () => signal.removeEventListener('abort', onAbort) };
}

/**
 * The operator stopped the run: every trainer process is killed, the open steps and the run end
 * FAILED with CANCELLED, and the audit log records who stopped it and how.
 */
async function cancelRun(rt: LocalRuntime, runId: string, why: string): Promise<LocalExecution> {
  rt.trainer.killAll();
  const error = {
    code: 'CANCELLED' as const,
    message: `run ${runId} was stopped by the operator (${why}) before it finished; start it again with \`veritrail runs retry ${runId} --pipeline <definition.json>\``,
  };
  const run = await rt.runs.get(runId);
  if (run && (run.status === 'PENDING' || run.status === 'RUNNING')) {
    await closeRun(rt, run, { error, step: 'RecordFailure', detail: { signal: why } });
  }
  const after = await rt.runs.get(runId);
  return { runId, status: after?.status ?? 'FAILED', error: after?.error ?? error };
}

/** Secrets in the strings (and keys) of a parsed JSON value, by JSON path; never the value itself. */
function secretsInValue(value: unknown, path = '$', depth = 0): { path: string; kind: string }[] {
  if (typeof value === 'string') return secretKindsIn(value).map((kind) => ({ path, kind }));
  if (value === null || typeof value !== 'object' || depth > 64) return [];
  const out: { path: string; kind: string }[] = [];
  for (const [k, v] of Object.entries(value)) {
    const at = Array.isArray(value) ? `${path}[${k}]` : `${path}.${redactText(k)}`;
    if (!Array.isArray(value))
      for (const kind of secretKindsIn(k)) out.push({ path: `${path} (a key)`, kind });
    out.push(...secretsInValue(v, at, depth + 1));
  }
  return out;
}
