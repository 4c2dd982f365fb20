import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadPipeline, putFileCas, putJsonCas, readObject } from '../cas.js';
import { buildTransformStatement } from '../core/attest/index.js';
import { featureEncoding } from '../core/dataset-schema.js';
import { casKey, type Digest, digestOf } from '../core/digest.js';
import { VeritrailError } from '../core/errors.js';
import { type ExecState, HashResultSchema, type PreprocessResult, resultOf } from '../core/exec-state.js';
import { canonicalDigest } from '../core/jcs.js';
import { buildManifest, manifestDigest } from '../core/manifest.js';
import type { PipelineDefinition } from '../core/pipeline.js';
import {
  type PreprocessJobConfig,
  PreprocessJobOutputSchema,
  preprocessJobName,
} from '../core/processing.js';
import type { PreprocessJobResult } from '../ports.js';
import type { Runtime } from '../runtime.js';
import { signAndStore } from './attest.js';
import type { PinnedFile } from './hash-dataset.js';
import { readJobResult } from './job-result.js';
import {
  PROCESSED_FILES,
  type ProcessedFile,
  processedColumns,
  type SplitRows,
  transformDataset,
} from './preprocess-transform.js';
import type { StepOutcome } from './step.js';
import { verifyJobOutput } from './verify-job-output.js';

const TRANSFORM_NAME = 'veritrail/preprocess';
const TRANSFORM_VERSION = '1';

type StoredFiles = Record<ProcessedFile, { key: string; digest: Digest; size: number }>;

/**
 * Preprocess: the raw data, re-read exactly as pinned, validated, encoded and split
 * (src/steps/preprocess-transform.ts), then published content-addressed with a manifest and a
 * signed transform statement. Up to the processor's threshold (or with no processor) the transform
 * runs here, on this function's /tmp; above it a processing job runs the same transform
 * (SageMaker Processing on AWS, a child process locally) and this step re-hashes and counts every
 * file the job wrote before it signs anything about them.
 */
export async function preprocess(rt: Runtime, state: ExecState): Promise<StepOutcome<PreprocessResult>> {
  const startedOn = rt.now();
  const def = await loadPipeline(rt.objects, state.pipeline.digest);
  const hash = resultOf(
    state,
    'hash',
    HashResultSchema.extend({ pinsKey: HashResultSchema.shape.manifestKey }),
  );
  const pins = JSON.parse(
    new TextDecoder().decode(await readObject(rt.objects, 'artifacts', hash.pinsKey)),
  ) as PinnedFile[];

  const byJob = rt.processor !== undefined && hash.size > rt.processor.thresholdBytes;
  const done = byJob
    ? await transformByJob(rt, state, pins, hash)
    : await transformHere(rt, def, pins, hash.digest);

  const { files, rows, codeDigest } = done;
  const manifest = buildManifest(
    (Object.keys(PROCESSED_FILES) as ProcessedFile[])
      .map((f) => ({ path: PROCESSED_FILES[f], size: files[f].size, digest: files[f].digest }))
      .sort((a, b) => (a.path < b.path ? -1 : 1)),
  );
  const processedDigest = manifestDigest(manifest);
  const storedManifest = await putJsonCas(rt.objects, manifest);

  const cols = processedColumns(def);
  const parameters = {
    validationFraction: def.dataset.validationFraction,
    testFraction: def.dataset.testFraction,
    splitSeed: hash.digest,
    label: def.dataset.label,
    features: def.dataset.features,
    protected: cols.groups,
    encoding: featureEncoding(def),
    droppedRows: rows.dropped,
  };
  const transform = { name: TRANSFORM_NAME, version: TRANSFORM_VERSION, codeDigest, parameters };
  const transformDigest = canonicalDigest(transform);
  // The processed data's own statement: subject = processed digest, inputs = raw digest, plus the
  // transform code and its parameters (the split seed among them), so the link can be re-derived.
  const bundle = await signAndStore(
    rt,
    buildTransformStatement({
      runId: state.runId,
      processed: { digest: processedDigest, mediaType: 'application/vnd.veritrail.manifest.v1+json' },
      raw: { digest: hash.digest, uri: state.dataset.uri },
      code: { digest: codeDigest, uri: `${TRANSFORM_NAME}@${TRANSFORM_VERSION}` },
      parameters,
      startedOn,
      finishedOn: rt.now(),
    }),
  );

  const channel = (f: 'train' | 'validation' | 'test') => ({
    key: files[f].key,
    digest: files[f].digest,
    rows: rows[f],
    fileName: PROCESSED_FILES[f],
  });
  const result: PreprocessResult = {
    digest: processedDigest,
    manifestKey: storedManifest.key,
    train: channel('train'),
    validation: channel('validation'),
    test: channel('test'),
    testFeatures: { key: files.testFeatures.key, digest: files.testFeatures.digest },
    testGroups: { key: files.testGroups.key, digest: files.testGroups.digest },
    columns: cols.channel,
    transform: { digest: transformDigest, codeDigest },
    bundleKey: bundle.key,
  };
  return {
    output: result,
    digests: { raw: hash.digest, processed: processedDigest, transform: transformDigest },
    facts: {
      processedDigest,
      processedManifestKey: storedManifest.key,
      transformBundleKey: bundle.key,
      trainRows: rows.train,
      validationRows: rows.validation,
      testRows: rows.test,
    },
    detail: {
      trainRows: rows.train,
      validationRows: rows.validation,
      testRows: rows.test,
      ...(done.executor ? { executor: done.executor } : {}),
    },
  };
}

interface Transformed {
  files: StoredFiles;
  rows: SplitRows;
  codeDigest: Digest;
  executor?: PreprocessJobResult['executor'];
}

/** The transform on this function's own /tmp, its files stored content-addressed. */
async function transformHere(
  rt: Runtime,
  def: PipelineDefinition,
  pins: readonly PinnedFile[],
  rawDigest: Digest,
): Promise<Transformed> {
  const dir = await mkdtemp(join(tmpdir(), 'veritrail-pre-'));
  try {
    const rows = await transformDataset({
      def,
      pins,
      splitSeed: rawDigest,
      open: (file) => rt.datasets.open(file),
      dir,
    });
    const files = {} as StoredFiles;
    for (const f of Object.keys(PROCESSED_FILES) as ProcessedFile[])
      files[f] = await putFileCas(rt.objects, join(dir, PROCESSED_FILES[f]));
    const codeDigest = digestOf(await readFile(fileURLToPath(import.meta.url)));
    return { files, rows, codeDigest };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * The transform as a processing job. The job is handed the content-addressed job config (the
 * stored definition, the pinned files, the split seed) and the raw files; it writes the processed
 * files under their content addresses and its claims to result.json. Trust but verify: each file
 * is read back here, hashed and its rows counted, and must match both its address and the claim;
 * the split's row counts must add up to what the test, train and validation files hold.
 */
async function transformByJob(
  rt: Runtime,
  state: ExecState,
  pins: readonly PinnedFile[],
  hash: { digest: Digest; size: number },
): Promise<Transformed> {
  const startedAt = rt.now().getTime();
  const processor = rt.processor;
  if (!processor) throw new VeritrailError('INTERNAL', 'transformByJob without a processor');
  const storedDefinition = JSON.parse(
    new TextDecoder().decode(
      await readObject(rt.objects, 'artifacts', casKey(state.pipeline.digest as Digest)),
    ),
  ) as unknown;
  const config: PreprocessJobConfig = {
    kind: 'veritrail/preprocess-job@1',
    runId: state.runId,
    pipelineDigest: state.pipeline.digest as Digest,
    pipeline: storedDefinition,
    rawDigest: hash.digest,
    files: pins.map((p) => ({ path: p.path, size: p.size, digest: p.digest })),
  };
  const storedConfig = await putJsonCas(rt.objects, config);
  const job = await processor.preprocess({
    jobName: preprocessJobName(state.runId),
    runId: state.runId,
    pipeline: state.pipeline.name,
    config: storedConfig,
    raw: pins,
    sizeBytes: hash.size,
    // Shorter than Preprocess's retrier waits (state-machines/training-pipeline.asl.json): a job that
    // runs too long ends Failed, with its reason, before the state machine stops asking.
    maxRuntimeSeconds: 12 * 3600,
  });
  const claimed = await readJobResult(
    rt.objects,
    job.resultKey,
    PreprocessJobOutputSchema,
    state.runId,
    'a result',
  );
  // Each file is re-hashed and its rows counted (test-groups.csv by the CSV parser: a quoted cell may
  // hold a line break), resumably: past this invocation's budget, progress is saved and the step is
  // invoked again (PROCESSING_RUNNING).
  const files: StoredFiles = await verifyJobOutput({
    objects: rt.objects,
    jobName: job.executor.jobName,
    claimed: claimed.files,
    budget: processor.verifyBudget ?? {},
    startedAt,
    now: () => rt.now().getTime(),
  });
  const { rows } = claimed;
  const consistent =
    claimed.files.train.rows === rows.train &&
    claimed.files.validation.rows === rows.validation &&
    claimed.files.test.rows === rows.test &&
    claimed.files.testFeatures.rows === rows.test &&
    claimed.files.testGroups.rows === rows.test;
  if (!consistent) {
    throw new VeritrailError(
      'DIGEST_MISMATCH',
      `processing job ${job.executor.jobName}: its row counts (${rows.train} train, ${rows.validation} validation, ${rows.test} test) do not match the files it wrote; start a new run`,
    );
  }
  return { files, rows, codeDigest: job.code.digest, executor: job.executor };
}
