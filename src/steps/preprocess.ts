import { createHash } from 'node:crypto';
import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadPipeline, putFileCas, putJsonCas, readObject } from '../cas.js';
import { buildTransformStatement } from '../core/attest/index.js';
import { type CsvRecord, csvLine } from '../core/csv.js';
import { type ColumnIndex, resolveHeader, validateRow } from '../core/dataset-schema.js';
import { type Digest, digestOf, digestsEqual } from '../core/digest.js';
import { VeritrailError } from '../core/errors.js';
import { canonicalDigest } from '../core/jcs.js';
import { buildManifest, manifestDigest } from '../core/manifest.js';
import type { PipelineDefinition } from '../core/pipeline.js';
import { makeSplitter } from '../core/split.js';
import type { Runtime } from '../runtime.js';
import { signAndStore } from './attest.js';
import { streamCsvRecords } from './csv-stream.js';
import type { PinnedFile } from './hash-dataset.js';
import { type ExecState, HashResultSchema, type PreprocessResult, resultOf } from './state.js';
import type { StepOutcome } from './step.js';

export const TRANSFORM_NAME = 'veritrail/preprocess';
export const TRANSFORM_VERSION = '1';

/** The column layout of the processed channels, fixed by the definition. */
export function processedColumns(def: PipelineDefinition): { channel: string[]; groups: string[] } {
  return {
    channel: [...def.dataset.features, def.dataset.label.column],
    groups: def.dataset.protected.map((p) => p.column),
  };
}

/**
 * Preprocess: re-reads exactly the pinned raw bytes (refusing them if their digest moved), validates
 * the schema row by row, and writes a deterministic train/validation split seeded by the raw digest.
 * Channels carry features and a 0/1 label only: the trainer never sees protected attributes; they go
 * to validation-groups.csv, row-aligned with validation.csv, for the fairness evaluation.
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
  const split = makeSplitter(hash.digest, def.dataset.validationFraction);

  const dir = await mkdtemp(join(tmpdir(), 'veritrail-pre-'));
  try {
    const out = {
      train: createWriteStream(join(dir, 'train.csv')),
      validation: createWriteStream(join(dir, 'validation.csv')),
      groups: createWriteStream(join(dir, 'validation-groups.csv')),
    };
    await write(out.train, csvLine(cols.channel));
    await write(out.validation, csvLine(cols.channel));
    await write(out.groups, csvLine(cols.groups));
    const rows = { train: 0, validation: 0 };
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
        const row = validateRow(r.fields, index, def, { file: file.path, line: r.line });
        const side = split();
        rows[side]++;
        await write(side === 'train' ? out.train : out.validation, csvLine([...row.features, row.label]));
        if (side === 'validation') await write(out.groups, csvLine(row.groups));
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
    if (rows.train < 2 || rows.validation < 1) {
      throw new VeritrailError(
        'DATASET_EMPTY',
        `dataset has too few rows to train and validate (${rows.train} train, ${rows.validation} validation); supply more data`,
      );
    }

    const train = await putFileCas(rt.objects, join(dir, 'train.csv'));
    const validation = await putFileCas(rt.objects, join(dir, 'validation.csv'));
    const groups = await putFileCas(rt.objects, join(dir, 'validation-groups.csv'));
    const manifest = buildManifest([
      { path: 'train.csv', size: train.size, digest: train.digest },
      { path: 'validation-groups.csv', size: groups.size, digest: groups.digest },
      { path: 'validation.csv', size: validation.size, digest: validation.digest },
    ]);
    const processedDigest = manifestDigest(manifest);
    const storedManifest = await putJsonCas(rt.objects, manifest);

    const codeDigest = digestOf(await readFile(fileURLToPath(import.meta.url)));
    const parameters = {
      validationFraction: def.dataset.validationFraction,
      splitSeed: hash.digest,
      label: def.dataset.label,
      features: def.dataset.features,
      protected: cols.groups,
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
      groups: { key: groups.key, digest: groups.digest },
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
      },
      detail: { trainRows: rows.train, validationRows: rows.validation },
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function write(stream: WriteStream, text: string): Promise<void> | void {
  if (!stream.write(text)) return new Promise((r) => stream.once('drain', () => r()));
}
