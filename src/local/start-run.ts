import { createHash, randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { type StartOutcome, StartService, startDepsOf } from '../app/start.js';
import { scanForSecrets } from '../core/code-scan.js';
import { resolveHeader, validateRow } from '../core/dataset-schema.js';
import type { Digest } from '../core/digest.js';
import { VeritrailError } from '../core/errors.js';
import { canonicalDigest } from '../core/jcs.js';
import { buildManifest, manifestDigest } from '../core/manifest.js';
import { type PipelineDefinition, parsePipelineDefinition } from '../core/pipeline.js';
import type { DatasetSource } from '../ports.js';
import { streamCsvRecords } from '../steps/csv-stream.js';
import { executeLocally, type LocalExecution, type ProgressEvent } from './runner.js';
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
): Promise<RunOnce> {
  let execution: Promise<LocalExecution> | undefined;
  const service = new StartService({
    ...startDepsOf(rt),
    pipelines: [{ def: pipeline.def, digest: pipeline.digest, base: pipeline.base }],
    launch: async (input) => {
      execution = executeLocally(rt, input, onProgress);
      return { alreadyStarted: false };
    },
  });
  const outcome = await service.handle({
    pipeline: pipeline.def.name,
    dataset,
    force: true,
    requestId: randomUUID(),
    actor: rt.actor,
  });
  return execution ? { outcome, execution: await execution } : { outcome };
}
