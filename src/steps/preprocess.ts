import { createHash } from 'node:crypto';
import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadPipeline, putFileCas, putJsonCas, readObject } from '../cas.js';
import { buildTransformStatement } from '../core/attest/index.js';
import { type CsvRecord, csvLine } from '../core/csv.js';
import {
  type ColumnIndex,
  DatasetChecks,
  encodedFeatureColumns,
  featureEncoding,
  resolveHeader,
  validateRow,
} from '../core/dataset-schema.js';
import { type Digest, digestOf, digestsEqual } from '../core/digest.js';
import { VeritrailError } from '../core/errors.js';
import { type ExecState, HashResultSchema, type PreprocessResult, resultOf } from '../core/exec-state.js';
import { canonicalDigest } from '../core/jcs.js';
import { buildManifest, manifestDigest } from '../core/manifest.js';
import type { PipelineDefinition } from '../core/pipeline.js';
import { secretKindsIn } from '../core/redact.js';
import { makeSplitter } from '../core/split.js';
import type { Runtime } from '../runtime.js';
import { signAndStore } from './attest.js';
import { streamCsvRecords } from './csv-stream.js';
import type { PinnedFile } from './hash-dataset.js';
import type { StepOutcome } from './step.js';

const TRANSFORM_NAME = 'veritrail/preprocess';
const TRANSFORM_VERSION = '1';

/** The column layout of the processed channels, fixed by the definition. */
function processedColumns(def: PipelineDefinition): {
  channel: string[];
  features: string[];
  groups: string[];
} {
  const features = encodedFeatureColumns(def);
  return {
    channel: [...features, def.dataset.label.column],
    features,
    groups: def.dataset.protected.map((p) => p.column),
  };
}

/**
 * Preprocess: re-reads exactly the pinned raw bytes (refusing them if their digest moved), validates
 * the schema row by row (two label values, privileged values present, declared categories and
 * missing-value policy), encodes the features, and writes a deterministic train/validation/test
 * split seeded by the raw digest. The train and validation channels carry features and a 0/1 label
 * only: the trainer never sees protected attributes, and never receives the test split at all. The
 * test split is kept as test.csv (features and label, the control plane's), test-features.csv
 * (what the inference contract is given) and test-groups.csv (protected attributes, row-aligned).
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
  const cols = processedColumns(def);
  const split = makeSplitter(hash.digest, def.dataset.validationFraction, def.dataset.testFraction);
  const checks = new DatasetChecks(def);

  const dir = await mkdtemp(join(tmpdir(), 'veritrail-pre-'));
  try {
    const out = {
      train: createWriteStream(join(dir, 'train.csv')),
      validation: createWriteStream(join(dir, 'validation.csv')),
      test: createWriteStream(join(dir, 'test.csv')),
      testFeatures: createWriteStream(join(dir, 'test-features.csv')),
      testGroups: createWriteStream(join(dir, 'test-groups.csv')),
    };
    await write(out.train, csvLine(cols.channel));
    await write(out.validation, csvLine(cols.channel));
    await write(out.test, csvLine(cols.channel));
    await write(out.testFeatures, csvLine(cols.features));
    await write(out.testGroups, csvLine(cols.groups));
    const rows = { train: 0, validation: 0, test: 0, dropped: 0 };
    let header: string[] | undefined;

    for (const file of pins) {
      const hasher = createHash('sha256');
      let index: ColumnIndex | undefined;
      const onRecord = async (r: CsvRecord) => {
        if (!index) {
          index = resolveHeader(r.fields, def, file.path);
          if (header && header.join(',') !== r.fields.join(',')) {
            throw new VeritrailError(
              'DATASET_SCHEMA',
              `${file.path}: header differs from the first file's; all files of a dataset must share one header`,
            );
          }
          header = r.fields;
          return;
        }
        const where = { file: file.path, line: r.line };
        // A credential in a cell would be copied into the processed data, the group counts and the
        // signed fairness report, however the run was started (serve, a schedule, AWS): refused
        // here, named by kind and line only, never echoed (invariant 7).
        const kinds = secretKindsIn(r.fields.join('\n'));
        if (kinds.length > 0) {
          throw new VeritrailError(
            'DATASET_VALUE',
            `${file.path}:${r.line}: a cell looks like a credential (${kinds[0]}); remove it from the data`,
          );
        }
        const row = validateRow(r.fields, index, def, where);
        if (!row) {
          rows.dropped++;
          return;
        }
        checks.observe(row, where);
        const side = split();
        rows[side]++;
        await write(out[side], csvLine([...row.features, row.label]));
        if (side === 'test') {
          await write(out.testFeatures, csvLine(row.features));
          await write(out.testGroups, csvLine(row.groups));
        }
      };
      const stream = await rt.datasets.open(file);
      const checkDigest = () => {
        // Invariant 2: what was processed is byte for byte what HashDataset recorded.
        const actual: Digest = `sha256:${hasher.digest('hex')}`;
        if (!digestsEqual(actual, file.digest)) {
          throw new VeritrailError(
            'DIGEST_MISMATCH',
            `raw file ${file.path} changed after it was hashed (recorded ${file.digest}, now ${actual}); start a new run for the new data`,
          );
        }
      };
      try {
        await streamCsvRecords(stream, file.path, onRecord, hasher);
      } catch (e) {
        // Bytes that changed after hashing explain any parse error: report the mismatch, not its symptom.
        const again = createHash('sha256');
        for await (const chunk of await rt.datasets.open(file)) again.update(chunk as Buffer);
        const now: Digest = `sha256:${again.digest('hex')}`;
        if (!digestsEqual(now, file.digest)) {
          throw new VeritrailError(
            'DIGEST_MISMATCH',
            `raw file ${file.path} changed after it was hashed (recorded ${file.digest}, now ${now}); start a new run for the new data`,
            { cause: e },
          );
        }
        throw e;
      }
      checkDigest();
      if (!index)
        throw new VeritrailError(
          'DATASET_EMPTY',
          `${file.path} has no header row; the first row must name the columns`,
        );
    }
    await Promise.all(
      Object.values(out).map(
        (s) => new Promise<void>((res, rej) => s.end((e?: Error | null) => (e ? rej(e) : res()))),
      ),
    );
    checks.finish();
    if (rows.train < 2 || rows.validation < 1 || rows.test < 1) {
      throw new VeritrailError(
        'DATASET_EMPTY',
        `dataset has too few rows to train, validate and test (${rows.train} train, ${rows.validation} validation, ${rows.test} test${rows.dropped ? `, ${rows.dropped} dropped for missing values` : ''}); supply more data`,
      );
    }

    const train = await putFileCas(rt.objects, join(dir, 'train.csv'));
    const validation = await putFileCas(rt.objects, join(dir, 'validation.csv'));
    const test = await putFileCas(rt.objects, join(dir, 'test.csv'));
    const testFeatures = await putFileCas(rt.objects, join(dir, 'test-features.csv'));
    const testGroups = await putFileCas(rt.objects, join(dir, 'test-groups.csv'));
    const manifest = buildManifest([
      { path: 'test-features.csv', size: testFeatures.size, digest: testFeatures.digest },
      { path: 'test-groups.csv', size: testGroups.size, digest: testGroups.digest },
      { path: 'test.csv', size: test.size, digest: test.digest },
      { path: 'train.csv', size: train.size, digest: train.digest },
      { path: 'validation.csv', size: validation.size, digest: validation.digest },
    ]);
    const processedDigest = manifestDigest(manifest);
    const storedManifest = await putJsonCas(rt.objects, manifest);

    const codeDigest = digestOf(await readFile(fileURLToPath(import.meta.url)));
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

    const result: PreprocessResult = {
      digest: processedDigest,
      manifestKey: storedManifest.key,
      train: { key: train.key, digest: train.digest, rows: rows.train, fileName: 'train.csv' },
      validation: {
        key: validation.key,
        digest: validation.digest,
        rows: rows.validation,
        fileName: 'validation.csv',
      },
      test: { key: test.key, digest: test.digest, rows: rows.test, fileName: 'test.csv' },
      testFeatures: { key: testFeatures.key, digest: testFeatures.digest },
      testGroups: { key: testGroups.key, digest: testGroups.digest },
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
      detail: { trainRows: rows.train, validationRows: rows.validation, testRows: rows.test },
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function write(stream: WriteStream, text: string): Promise<void> | void {
  if (!stream.write(text)) return new Promise((r) => stream.once('drain', () => r()));
}
