import { lstat } from 'node:fs/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { type Digest, digestFromHex } from '../core/digest.js';
import { VeritrailError } from '../core/errors.js';
import { buildManifest, type Manifest, manifestDigest } from '../core/manifest.js';
import { FsDatasetSource } from '../local/fs-dataset-source.js';
import { hashPool } from '../local/hash-pool.js';

export interface PathDigest {
  kind: 'file' | 'dir';
  /** File: sha256 of its bytes (what sha256sum prints). Folder: sha256 of its canonical manifest. */
  digest: Digest;
  /** Total bytes. */
  size: number;
  files: number;
  /** The folder's manifest; for a file, the one-entry manifest HashDataset stores too. */
  manifest: Manifest;
}

/**
 * Content digest of a local file or folder, exactly as HashDataset computes a dataset's: a file's
 * plain SHA-256, or a folder's manifest digest (docs/attestations.md, "Dataset manifest"). Files
 * hash on the worker pool, so a folder keeps every core busy; symlinks and special files are
 * refused (PATH_REJECTED) by FsDatasetSource, never followed.
 */
export async function hashPath(path: string): Promise<PathDigest> {
  const st = await lstat(path).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT')
      throw new VeritrailError('DATASET_MISSING', `${path} does not exist; check the path`);
    throw new VeritrailError('DATASET_UNREADABLE', `cannot read ${path}: ${e.message}`, { cause: e });
  });
  const source = new FsDatasetSource();
  // list() refuses a symlink or a special file at the root, and anywhere under a folder.
  const listed = await source.list(pathToFileURL(path).href);
  const pool = hashPool();
  const hashed = await Promise.all(
    listed.map(async (f) => {
      const { hex, size } = await pool.hashFile(fileURLToPath(f.uri));
      if (size !== f.size) {
        throw new VeritrailError(
          'DATASET_UNREADABLE',
          `${f.path} changed size while it was being hashed; hash it again`,
        );
      }
      return { path: f.path, size, digest: digestFromHex(hex) };
    }),
  );
  const manifest = buildManifest(hashed);
  const size = hashed.reduce((n, f) => n + f.size, 0);
  const only = hashed[0];
  if (st.isFile() && only !== undefined) {
    return { kind: 'file', digest: only.digest, size, files: 1, manifest };
  }
  return { kind: 'dir', digest: manifestDigest(manifest), size, files: hashed.length, manifest };
}
