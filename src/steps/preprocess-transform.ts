/**
 * The work of Preprocess, wherever it runs: read the pinned raw files (refusing any whose bytes
 * moved since HashDataset), validate them row by row, encode the features and write the
 * deterministic train/validation/test split into a folder. The Preprocess Lambda runs it on its
 * own /tmp (src/steps/preprocess.ts); above the processing threshold a SageMaker Processing job
 * (or its local emulation) runs the very same function inside the container
 * (functions/processing/preprocess.ts). Publishing, the manifest and the signed transform statement
 * stay with the control plane, which re-hashes whatever a job wrote before it signs.
 */
import { createHash } from 'node:crypto';
import { createWriteStream, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { type CsvRecord, csvLine } from '../core/csv.js';
import { DatasetChecks, DatasetRecords, encodedFeatureColumns } from '../core/dataset-schema.js';
import { type Digest, digestsEqual } from '../core/digest.js';
import { VeritrailError } from '../core/errors.js';
import type { PipelineDefinition } from '../core/pipeline.js';
import { makeSplitter } from '../core/split.js';
import { streamCsvRecords } from './csv-stream.js';
import type { PinnedFile } from './hash-dataset.js';

/** The processed files, by their role in PreprocessResult, and the file name each has. */
export const PROCESSED_FILES = {
  train: 'train.csv',
  validation: 'validation.csv',
  test: 'test.csv',
  testFeatures: 'test-features.csv',
  testGroups: 'test-groups.csv',
} as const;
export type ProcessedFile = keyof typeof PROCESSED_FILES;

/** How many data rows went where (header rows not counted). */
export interface SplitRows {
  train: number;
  validation: number;
  test: number;
  dropped: number;
}

/** The column layout of the processed channels, fixed by the definition. */
export function processedColumns(def: PipelineDefinition): {
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
 * Reads exactly the pinned raw bytes (`open` gives a file's bytes; a second `open` is used only to
 * tell a changed file from a malformed one), validates the schema row by row (two label values,
 * privileged values present, declared categories and missing-value policy), encodes the features,
 * and writes a deterministic train/validation/test split seeded by the raw digest into `dir` under
 * PROCESSED_FILES' names. The train and validation channels carry features and a 0/1 label only:
 * the trainer never sees protected attributes, and never receives the test split at all. The test
 * split is kept as test.csv (features and label, the control plane's), test-features.csv (what the
 * inference contract is given) and test-groups.csv (protected attributes, row-aligned).
 */
export async function transformDataset(input: {
  def: PipelineDefinition;
  pins: readonly PinnedFile[];
  splitSeed: Digest;
  open(file: PinnedFile): Promise<Readable>;
  dir: string;
}): Promise<SplitRows> {
  const { def, pins, dir } = input;
  const cols = processedColumns(def);
  const split = makeSplitter(input.splitSeed, def.dataset.validationFraction, def.dataset.testFraction);
  const checks = new DatasetChecks(def);
  const out = {
    train: createWriteStream(join(dir, PROCESSED_FILES.train)),
    validation: createWriteStream(join(dir, PROCESSED_FILES.validation)),
    test: createWriteStream(join(dir, PROCESSED_FILES.test)),
    testFeatures: createWriteStream(join(dir, PROCESSED_FILES.testFeatures)),
    testGroups: createWriteStream(join(dir, PROCESSED_FILES.testGroups)),
  };
  const closeAll = () =>
    Promise.all(
      Object.values(out).map(
        (s) => new Promise<void>((res, rej) => s.end((e?: Error | null) => (e ? rej(e) : res()))),
      ),
    );
  try {
    await write(out.train, csvLine(cols.channel));
    await write(out.validation, csvLine(cols.channel));
    await write(out.test, csvLine(cols.channel));
    await write(out.testFeatures, csvLine(cols.features));
    await write(out.testGroups, csvLine(cols.groups));
    const rows: SplitRows = { train: 0, validation: 0, test: 0, dropped: 0 };
    const records = new DatasetRecords(def);

    for (const file of pins) {
      const hasher = createHash('sha256');
      const record = records.file(file.path);
      let sawHeader = false;
      const onRecord = async (r: CsvRecord) => {
        const row = record(r.fields, r.line);
        if (row === 'header') {
          sawHeader = true;
          return;
        }
        if (!row) {
          rows.dropped++;
          return;
        }
        const where = { file: file.path, line: r.line };
        checks.observe(row, where);
        const side = split();
        rows[side]++;
        await write(out[side], csvLine([...row.features, row.label]));
        if (side === 'test') {
          await write(out.testFeatures, csvLine(row.features));
          await write(out.testGroups, csvLine(row.groups));
        }
      };
      const changed = (now: Digest, cause?: unknown) =>
        new VeritrailError(
          'DIGEST_MISMATCH',
          `raw file ${file.path} changed after it was hashed (recorded ${file.digest}, now ${now}); start a new run for the new data`,
          cause === undefined ? undefined : { cause },
        );
      try {
        await streamCsvRecords(await input.open(file), file.path, onRecord, hasher);
      } catch (e) {
        // Bytes that changed after hashing explain any parse error: report the mismatch, not its symptom.
        const again = createHash('sha256');
        for await (const chunk of await input.open(file)) again.update(chunk as Buffer);
        const now: Digest = `sha256:${again.digest('hex')}`;
        if (!digestsEqual(now, file.digest)) throw changed(now, e);
        throw e;
      }
      // Invariant 2: what was processed is byte for byte what HashDataset recorded.
      const actual: Digest = `sha256:${hasher.digest('hex')}`;
      if (!digestsEqual(actual, file.digest)) throw changed(actual);
      if (!sawHeader)
        throw new VeritrailError(
          'DATASET_EMPTY',
          `${file.path} has no header row; the first row must name the columns`,
        );
    }
    await closeAll();
    checks.finish();
    if (rows.train < 2 || rows.validation < 1 || rows.test < 1) {
      throw new VeritrailError(
        'DATASET_EMPTY',
        `dataset has too few rows to train, validate and test (${rows.train} train, ${rows.validation} validation, ${rows.test} test${rows.dropped ? `, ${rows.dropped} dropped for missing values` : ''}); supply more data`,
      );
    }
    return rows;
  } finally {
    // On a failure the open files are abandoned (the caller removes the folder): closed without
    // reporting the writes they drop.
    for (const s of Object.values(out))
      if (!s.closed) {
        s.on('error', () => {});
        s.destroy();
      }
  }
}

function write(stream: WriteStream, text: string): Promise<void> | void {
  if (!stream.write(text)) return new Promise((r) => stream.once('drain', () => r()));
}
