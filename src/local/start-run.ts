import { createHash, randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { scanForSecrets } from '../core/code-scan.js';
import { resolveHeader, validateRow } from '../core/dataset-schema.js';
import type { Digest } from '../core/digest.js';
import { VeritrailError } from '../core/errors.js';
import { canonicalDigest } from '../core/jcs.js';
import { buildManifest, manifestDigest } from '../core/manifest.js';
import { type PipelineDefinition, parsePipelineDefinition } from '../core/pipeline.js';
import { planStart, type Trigger } from '../core/start.js';
import type { DatasetSource } from '../ports.js';
import { streamCsvRecords } from '../steps/csv-stream.js';
import { putJsonCas } from '../steps/io.js';
import type { ExecState } from '../steps/state.js';
import type { LocalRuntime } from './runtime.js';

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
  const entries: { path: string; size: number; digest: Digest }[] = [];
  for (const file of files) {
    const hash = createHash('sha256');
    let index: ReturnType<typeof resolveHeader> | undefined;
    await streamCsvRecords(
      await datasets.open(file),
      file.path,
      (r) => {
        if (!index) {
          index = resolveHeader(r.fields, def, file.path);
          return;
        }
        validateRow(r.fields, index, def, { file: file.path, line: r.line });
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
  const only = entries[0];
  return entries.length === 1 && only ? only.digest : manifestDigest(buildManifest(entries));
}

export interface PreparedRun {
  input: ExecState;
  executionName: string;
  created: boolean;
}

/**
 * The local start path: store the definition content-addressed, derive the run id from the trigger's
 * content identity, and record the run PENDING with a conditional write. A trigger seen before
 * resolves to the run it already started (invariant 4).
 */
export async function prepareRun(
  rt: LocalRuntime,
  pipeline: LoadedPipeline,
  trigger: Trigger,
  dataset: { uri: string; versionId?: string },
  type: ExecState['trigger']['type'],
): Promise<PreparedRun> {
  await putJsonCas(rt.objects, pipeline.def);
  const plan = planStart(trigger);
  const input: ExecState = {
    runId: plan.runId,
    pipeline: { name: pipeline.def.name, digest: pipeline.digest, base: pipeline.base },
    dataset,
    trigger: { type, idempotencyKey: plan.idempotencyKey, actor: rt.actor },
  };
  try {
    await rt.runs.create({
      runId: plan.runId,
      pipeline: pipeline.def.name,
      pipelineDigest: pipeline.digest,
      trigger: type,
      idempotencyKey: plan.idempotencyKey,
      dataset,
      createdAt: rt.now().toISOString(),
    });
    return { input, executionName: plan.executionName, created: true };
  } catch (e) {
    if (e instanceof VeritrailError && e.code === 'RUN_EXISTS')
      return { input, executionName: plan.executionName, created: false };
    throw e;
  }
}

/** An operator's one-off run (`veritrail run`): every invocation is a new request. */
export function operatorRunTrigger(pipeline: string, uri: string, digest: Digest): Trigger {
  return { kind: 'operator', pipeline, dataset: { uri, digest }, requestId: randomUUID(), force: true };
}
