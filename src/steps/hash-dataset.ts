import { z } from 'zod';
import { hashStream, putJsonCas, readCasVerified, readObject } from '../cas.js';
import { type Digest, digestFromHex, digestOf, digestsEqual } from '../core/digest.js';
import { type ErrorInfo, VeritrailError } from '../core/errors.js';
import type { ExecState, HashResult } from '../core/exec-state.js';
import { buildManifest, datasetDigest, type Manifest, manifestDigest } from '../core/manifest.js';
import { describeIssues } from '../core/pipeline.js';
import type { DatasetFile, DatasetSource, ObjectStore } from '../ports.js';
import type { Runtime } from '../runtime.js';
import { DatasetFileSchema, HashProgressSchema, type ListingRef, PinnedFileSchema } from './hashing.js';
import { readMapResults } from './map-results.js';
import type { StepOutcome } from './step.js';

/** A pinned dataset file with its digest: the list Preprocess re-reads, byte for byte. */
export interface PinnedFile extends DatasetFile {
  digest: Digest;
}

/**
 * HashDataset: content addressing of the raw data, the fold of a Distributed Map. ListDataset
 * pinned the listing, each HashBatches child hashed a batch of it (every file streamed in constant
 * memory; a single file's digest is the plain SHA-256 of its bytes, as sha256sum prints it) and the
 * Map's ResultWriter exported the children's results to S3; here those results are read back and
 * checked (src/steps/map-results.ts), the batches they name are read (content-addressed, verified),
 * checked to cover the listing exactly, in order, and folded into the pinned file list, the RFC 8785 manifest and the dataset digest (a
 * folder's is its manifest's). The pinned list (with VersionIds on S3) is stored content-addressed
 * so later steps read exactly these bytes. The output, digests, facts and audit detail are those of
 * the one-Lambda HashDataset this replaces: nothing downstream sees how the work was split.
 */
export async function hashDataset(
  rt: Pick<Runtime, 'objects'>,
  state: ExecState,
): Promise<StepOutcome<HashResult & { pinsKey: string }>> {
  const progress = HashProgressSchema.safeParse(state.results?.hash);
  if (!progress.success) {
    throw new VeritrailError(
      'INTERNAL',
      `results.hash is not ListDataset's listing and HashBatches' results: ${describeIssues(progress.error)}`,
    );
  }
  if ('error' in progress.data) throw refused(progress.data.error);
  const listed = await readListing(rt.objects, progress.data.listing);
  const results = await readMapResults(rt.objects, progress.data.batches, state.runId, listed);
  const keys: string[] = [];
  for (const batch of results) {
    // The first refusal in listing order, whichever child finished first.
    if ('error' in batch) throw refused(batch.error);
    keys.push(batch.key);
  }
  const hashed = await mapLimit(keys, 8, (key) => readBatch(rt.objects, key));
  checkCoverage(listed, hashed);
  const { pinned, totalSize, manifest, manifestDigest: mDigest, digest } = foldBatches(hashed);
  if (totalSize === 0) {
    throw new VeritrailError(
      'DATASET_EMPTY',
      `dataset ${state.dataset.uri} is empty (0 bytes); upload the data file`,
    );
  }
  const stored = await putJsonCas(rt.objects, manifest);
  const pins = await putJsonCas(rt.objects, pinned);
  return {
    output: {
      digest,
      size: totalSize,
      files: pinned.length,
      manifestKey: stored.key,
      manifestDigest: mDigest,
      pinsKey: pins.key,
    },
    digests: { raw: digest, rawManifest: mDigest },
    facts: {
      rawDigest: digest,
      rawSize: totalSize,
      rawFiles: pinned.length,
      rawManifestKey: stored.key,
      rawPinsKey: pins.key,
    },
    detail: { files: pinned.length, size: totalSize },
  };
}

/** A refusal of ListDataset or HashBatch, thrown as the step's own failure (same code and message). */
const refused = (error: ErrorInfo) => new VeritrailError(error.code, error.message);

/** The listing ListDataset stored, its bytes checked against the digest it returned. */
async function readListing(objects: ObjectStore, ref: ListingRef): Promise<DatasetFile[]> {
  const bytes = await readObject(objects, 'artifacts', ref.key);
  const actual = digestOf(bytes);
  if (!digestsEqual(actual, ref.digest)) {
    throw new VeritrailError(
      'DIGEST_MISMATCH',
      `dataset listing ${ref.key}: stored bytes hash to ${actual}, ListDataset recorded ${ref.digest}`,
    );
  }
  const parsed = z.array(DatasetFileSchema).safeParse(JSON.parse(new TextDecoder().decode(bytes)));
  if (!parsed.success || parsed.data.length !== ref.files) {
    throw new VeritrailError(
      'INTERNAL',
      `dataset listing ${ref.key} is not the listing of ${ref.files} files`,
    );
  }
  return parsed.data;
}

/** One HashBatch child's hashed files, read back by content address and verified. */
async function readBatch(objects: ObjectStore, key: string): Promise<PinnedFile[]> {
  const digest = digestFromHex(key.slice(key.lastIndexOf('/') + 1));
  const bytes = await readCasVerified(objects, digest, `hashed batch ${key}`);
  const parsed = z.array(PinnedFileSchema).safeParse(JSON.parse(new TextDecoder().decode(bytes)));
  if (!parsed.success) {
    throw new VeritrailError('INTERNAL', `hashed batch ${key} is not a list of hashed files`);
  }
  return parsed.data as PinnedFile[];
}

/**
 * The batches, concatenated in the Map's result order, must be the listing itself: the same files,
 * pinned to the same versions, with the sizes listed, none lost, repeated or moved. Otherwise the
 * fold would digest something else than what was listed.
 */
function checkCoverage(listed: readonly DatasetFile[], batches: readonly (readonly PinnedFile[])[]): void {
  const hashed = batches.flat();
  if (hashed.length !== listed.length) {
    throw new VeritrailError(
      'PROVENANCE_BROKEN',
      `the hashed batches hold ${hashed.length} files, the pinned listing ${listed.length}; start the run again`,
    );
  }
  listed.forEach((f, i) => {
    const h = hashed[i] as PinnedFile;
    if (h.uri !== f.uri || h.path !== f.path || h.size !== f.size || h.versionId !== f.versionId) {
      throw new VeritrailError(
        'PROVENANCE_BROKEN',
        `the hashed batches differ from the pinned listing at file ${i} (${f.path}); start the run again`,
      );
    }
  });
}

/**
 * Hashes one batch of the listing (the whole listing in one Lambda, or one Distributed Map child's
 * items): each file streamed and hashed, `concurrency` at a time, its size checked against the
 * listing. Returns the files in the order given.
 */
export async function hashBatch(
  rt: Pick<Runtime, 'datasets'>,
  files: readonly DatasetFile[],
  concurrency = 4,
): Promise<PinnedFile[]> {
  return mapLimit(files, concurrency, async (f): Promise<PinnedFile> => {
    const { hex, size } = rt.datasets.hash
      ? await rt.datasets.hash(f)
      : await hashStream(await rt.datasets.open(f));
    if (size !== f.size) {
      throw new VeritrailError(
        'DATASET_UNREADABLE',
        `${f.path} changed size while it was being hashed; upload it again`,
      );
    }
    return { ...f, digest: digestFromHex(hex) };
  });
}

/**
 * Folds the hashed batches of a listing, in listing order, into the pinned list, the RFC 8785
 * manifest and the dataset digest (a single file's own SHA-256, else the manifest's). The manifest
 * sorts its entries and the pinned list is the batches concatenated, so neither depends on how the
 * listing was cut into batches (test/property/hash-fold.property.test.ts).
 */
export function foldBatches(batches: readonly (readonly PinnedFile[])[]): {
  pinned: PinnedFile[];
  totalSize: number;
  manifest: Manifest;
  manifestDigest: Digest;
  digest: Digest;
} {
  const pinned = batches.flat();
  const totalSize = pinned.reduce((n, f) => n + f.size, 0);
  const manifest = buildManifest(pinned.map((f) => ({ path: f.path, size: f.size, digest: f.digest })));
  return {
    pinned,
    totalSize,
    manifest,
    manifestDigest: manifestDigest(manifest),
    digest: datasetDigest(manifest),
  };
}

/**
 * The dataset digest HashDataset records for a listing, computed in one pass with the very hashing
 * (hashBatch) and fold (foldBatches) of the Distributed Map. The start service needs it before a
 * run exists: to pin an operator's local dataset, and when a scheduled retrain compares the newest
 * data with the last successful run's (src/app/start/retrain.ts). test/unit/start-service.test.ts
 * holds the two to the same value.
 */
export async function datasetDigestOf(
  datasets: DatasetSource,
  files: readonly DatasetFile[],
): Promise<Digest> {
  return foldBatches([await hashBatch({ datasets }, files)]).digest;
}

/** Maps with at most `limit` promises in flight, keeping order. */
async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T);
    }
  });
  await Promise.all(workers);
  return out;
}
