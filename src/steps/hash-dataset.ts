import { hashStream, putJsonCas } from '../cas.js';
import { type Digest, digestFromHex } from '../core/digest.js';
import { VeritrailError } from '../core/errors.js';
import { buildManifest, type Manifest, manifestDigest } from '../core/manifest.js';
import type { DatasetFile } from '../ports.js';
import type { Runtime } from '../runtime.js';
import type { ExecState, HashResult } from './state.js';
import type { StepOutcome } from './step.js';

/** A pinned dataset file with its digest: the list Preprocess re-reads, byte for byte. */
export interface PinnedFile extends DatasetFile {
  digest: Digest;
}

/**
 * HashDataset: content addressing of the raw data. Every file is streamed (constant memory) and
 * hashed, files in parallel; a single file's digest is the plain SHA-256 of its bytes (as sha256sum
 * prints it), a folder's is the digest of its canonical manifest. The pinned file list (with
 * VersionIds on S3) is stored content-addressed so later steps read exactly these bytes.
 */
export async function hashDataset(
  rt: Runtime,
  state: ExecState,
): Promise<StepOutcome<HashResult & { pinsKey: string }>> {
  const files = await rt.datasets.list(
    state.dataset.uri,
    state.dataset.versionId ? { versionId: state.dataset.versionId } : {},
  );
  if (files.length === 0) {
    throw new VeritrailError('DATASET_EMPTY', `dataset ${state.dataset.uri} holds no files`);
  }
  const {
    pinned,
    totalSize,
    manifest,
    manifestDigest: mDigest,
    digest,
  } = foldBatches([await hashBatch(rt, files)]);
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
  const mDigest = manifestDigest(manifest);
  const first = pinned[0];
  const digest: Digest = pinned.length === 1 && first ? first.digest : mDigest;
  return { pinned, totalSize, manifest, manifestDigest: mDigest, digest };
}

/** Maps with at most `limit` promises in flight, keeping order. */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (t: T) => Promise<R>,
): Promise<R[]> {
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
