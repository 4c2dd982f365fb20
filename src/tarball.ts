import { createWriteStream } from 'node:fs';
import { readdir } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as tar from 'tar';

/**
 * Packs a folder into a gzip'd tar with fixed metadata (sorted names, mtime 0, no owner names), so
 * the same model files always give the same model.tar.gz bytes and hence the same model digest.
 */
export async function packDeterministic(dir: string, outFile: string): Promise<void> {
  const files = (await readdir(dir, { recursive: true, withFileTypes: true }))
    .filter((e) => e.isFile())
    .map((e) => {
      const parent = (e as unknown as { parentPath?: string; path?: string }).parentPath ?? '';
      const rel = parent.length > dir.length ? `${parent.slice(dir.length + 1)}/${e.name}` : e.name;
      return rel;
    })
    .sort();
  const stream = tar.c(
    { cwd: dir, gzip: { level: 9 }, portable: true, mtime: new Date(0), noDirRecurse: true },
    files,
  ) as unknown as Readable;
  await pipeline(stream, createWriteStream(outFile));
}

/** Reads one member of a gzip'd tar stream into memory (small members only: predictions, reports). */
export async function readTarMember(
  source: Readable,
  name: string,
  limitBytes = 512 * 1024 * 1024,
): Promise<Buffer | undefined> {
  let found: Buffer | undefined;
  const parser = new tar.Parser({
    onReadEntry: (entry) => {
      const path = entry.path.replace(/^\.\//, '');
      if (path !== name || entry.type !== 'File') {
        entry.resume();
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      entry.on('data', (c: Buffer) => {
        size += c.length;
        if (size > limitBytes) entry.destroy(new Error(`${name} is larger than ${limitBytes} bytes`));
        chunks.push(c);
      });
      entry.on('end', () => {
        found = Buffer.concat(chunks);
      });
    },
  });
  await pipeline(source, parser as unknown as NodeJS.WritableStream);
  return found;
}
