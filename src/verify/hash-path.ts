import { lstat, readdir } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { type Digest, digestFromHex } from '../core/digest.js';
import { VeritrailError } from '../core/errors.js';
import { buildManifest, type Manifest, manifestDigest } from '../core/manifest.js';
import { hashPool } from '../hash-pool.js';

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
 * hash on the worker pool, so a folder keeps every core busy. The same refusals as FsDatasetSource:
 * a symlink or a special file anywhere is PATH_REJECTED, never followed (the worker also opens with
 * O_NOFOLLOW and checks it read a regular file), an empty folder is DATASET_EMPTY.
 */
export async function hashPath(path: string): Promise<PathDigest> {
  const st = await lstat(path).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT')
      throw new VeritrailError('DATASET_MISSING', `${path} does not exist; check the path`);
    throw new VeritrailError('DATASET_UNREADABLE', `cannot read ${path}: ${e.message}`, { cause: e });
  });
  if (st.isSymbolicLink()) {
    throw new VeritrailError('PATH_REJECTED', `${path} is a symbolic link; pass the real file or folder`);
  }
  const pool = hashPool();
  if (st.isFile()) {
    const { hex, size } = await pool.hashFile(path);
    const digest = digestFromHex(hex);
    return {
      kind: 'file',
      digest,
      size,
      files: 1,
      manifest: buildManifest([{ path: basename(path), size, digest }]),
    };
  }
  if (!st.isDirectory()) throw new VeritrailError('PATH_REJECTED', `${path} is not a regular file or folder`);
  const listed: { abs: string; rel: string }[] = [];
  await walk(path, '', listed);
  if (listed.length === 0) {
    throw new VeritrailError('DATASET_EMPTY', `folder ${path} holds no files; a dataset needs at least one`);
  }
  // Every file at once, in batches: the pool keeps each worker busy to the end.
  const digests = await pool.hashFiles(listed.map((f) => f.abs));
  const hashed = listed.map((f, i) => {
    const { hex, size } = digests[i] as { hex: string; size: number };
    return { path: f.rel, size, digest: digestFromHex(hex) };
  });
  const manifest = buildManifest(hashed);
  const size = hashed.reduce((n, f) => n + f.size, 0);
  return { kind: 'dir', digest: manifestDigest(manifest), size, files: hashed.length, manifest };
}

/** Lists regular files under `dir`, sub-folders concurrently; no stat per file (the worker reads the size). */
async function walk(dir: string, rel: string, out: { abs: string; rel: string }[]): Promise<void> {
  const entries = await readdir(dir, { withFileTypes: true }).catch((e: NodeJS.ErrnoException) => {
    throw new VeritrailError('DATASET_UNREADABLE', `cannot read folder ${dir}: ${e.message}`, { cause: e });
  });
  const subdirs: Promise<void>[] = [];
  for (const e of entries) {
    const relPath = rel ? `${rel}/${e.name}` : e.name;
    if (e.name.includes('\\') || e.name.includes('\0')) {
      throw new VeritrailError(
        'PATH_REJECTED',
        `dataset entry "${relPath}" has a name that cannot be used safely`,
      );
    }
    if (e.isSymbolicLink()) {
      throw new VeritrailError(
        'PATH_REJECTED',
        `dataset entry ${relPath} is a symbolic link; symlinks are refused`,
      );
    }
    if (e.isDirectory()) subdirs.push(walk(join(dir, e.name), relPath, out));
    else if (e.isFile()) out.push({ abs: join(dir, e.name), rel: relPath });
    else
      throw new VeritrailError(
        'PATH_REJECTED',
        `dataset entry ${relPath} is not a regular file (device, socket or FIFO)`,
      );
  }
  await Promise.all(subdirs);
}
