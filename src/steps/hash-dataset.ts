import { hashStream, putJsonCas } from '../cas.js';
import { type Digest, digestFromHex } from '../core/digest.js';
import { VeritrailError } from '../core/errors.js';
import { buildManifest, manifestDigest } from '../core/manifest.js';
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
  const pinned = await mapLimit(files, 4, async (f): Promise<PinnedFile> => {
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
  const totalSize = pinned.reduce((n, f) => n + f.size, 0);
  if (totalSize === 0) {
    throw new VeritrailError(
      'DATASET_EMPTY',
      `dataset ${state.dataset.uri} is empty (0 bytes); upload the data file`,
    );
  }
  const manifest = buildManifest(pinned.map((f) => ({ path: f.path, size: f.size, digest: f.digest })));
  const mDigest = manifestDigest(manifest);
  const stored = await putJsonCas(rt.objects, manifest);
  const pins = await putJsonCas(rt.objects, pinned);
  const first = pinned[0];
  const digest: Digest = pinned.length === 1 && first ? first.digest : mDigest;
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
