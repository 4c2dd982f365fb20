import { createReadStream } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import { basename, join, resolve, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { VeritrailError } from '../core/errors.js';
import { hashPool } from '../hash-pool.js';
import type { DatasetFile, DatasetSource } from '../ports.js';

/** Turns a user's path or a file: URI into an absolute file: URI. */
export function toFileUri(pathOrUri: string, cwd = process.cwd()): string {
  if (pathOrUri.startsWith('file://')) return pathOrUri;
  return pathToFileURL(resolve(cwd, pathOrUri)).href;
}

function pathOf(uri: string): string {
  if (!uri.startsWith('file://')) {
    throw new VeritrailError(
      'DATASET_MISSING',
      `the embedded runtime reads local datasets only (file paths); got ${uri}. Use --stage to run on AWS.`,
    );
  }
  return fileURLToPath(uri);
}

/**
 * Local datasets: one regular file, or every regular file under a folder. Symlinks, devices, sockets
 * and FIFOs are refused rather than followed: a dataset's bytes must be exactly what was hashed.
 */
export class FsDatasetSource implements DatasetSource {
  async list(uri: string): Promise<DatasetFile[]> {
    const root = pathOf(uri);
    const st = await lstat(root).catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') {
        throw new VeritrailError('DATASET_MISSING', `dataset ${root} does not exist; check the path`);
      }
      throw new VeritrailError('DATASET_UNREADABLE', `cannot read dataset ${root}: ${e.message}`, {
        cause: e,
      });
    });
    if (st.isSymbolicLink()) {
      throw new VeritrailError(
        'PATH_REJECTED',
        `dataset ${root} is a symbolic link; pass the real file or folder`,
      );
    }
    if (st.isFile()) return [{ uri: pathToFileURL(root).href, path: basename(root), size: st.size }];
    if (!st.isDirectory()) {
      throw new VeritrailError('PATH_REJECTED', `dataset ${root} is not a regular file or folder`);
    }
    const files: DatasetFile[] = [];
    await walk(root, '', files);
    files.sort((a, b) => Buffer.compare(Buffer.from(a.path), Buffer.from(b.path)));
    if (files.length === 0) {
      throw new VeritrailError(
        'DATASET_EMPTY',
        `dataset folder ${root} holds no files; add the data files and retry`,
      );
    }
    return files;
  }

  async open(file: DatasetFile): Promise<Readable> {
    const path = pathOf(file.uri);
    const st = await lstat(path).catch(() => undefined);
    if (!st?.isFile()) {
      throw new VeritrailError('DATASET_MISSING', `dataset file ${path} is gone or no longer a regular file`);
    }
    return createReadStream(path, { highWaterMark: 1024 * 1024 });
  }

  /** SHA-256 of one file on a worker thread, so many files hash on every core. */
  async hash(file: DatasetFile): Promise<{ hex: string; size: number }> {
    return hashPool().hashFile(pathOf(file.uri));
  }
}

async function walk(dir: string, rel: string, out: DatasetFile[]): Promise<void> {
  const entries = await readdir(dir, { withFileTypes: true });
  for (const e of entries) {
    const relPath = rel ? `${rel}/${e.name}` : e.name;
    const abs = join(dir, e.name);
    if (e.name.includes('\\') || e.name.includes('\0') || abs.split(sep).includes('..')) {
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
    if (e.isDirectory()) {
      await walk(abs, relPath, out);
    } else if (e.isFile()) {
      const st = await lstat(abs);
      out.push({ uri: pathToFileURL(abs).href, path: relPath, size: st.size });
    } else {
      throw new VeritrailError(
        'PATH_REJECTED',
        `dataset entry ${relPath} is not a regular file (device, socket or FIFO)`,
      );
    }
  }
}
