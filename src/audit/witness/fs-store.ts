/**
 * A witness's state on disk: one JSON file per log origin (named by the SHA-256 of the origin),
 * replaced atomically (temporary file, fsync, rename, fsync of the folder), so a crash leaves the
 * old record or the new one, never a mix. A lock file keeps a second witness process off the
 * same state (two processes could each cosign one branch of a fork); within the process the
 * witness serializes its calls, so the compare in `set` holds until the rename.
 */
import { createHash } from 'node:crypto';
import { appendFile, mkdir, open, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { VeritrailError } from '../../core/errors.js';
import { sameRecord, type WitnessRecord, type WitnessStore } from './core.js';

export function originHash(origin: string): string {
  return createHash('sha256').update(origin).digest('hex');
}

async function fsyncPath(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export class FsWitnessStore implements WitnessStore {
  private constructor(private readonly dir: string) {}

  /** Opens (creating) the state folder and takes its lock; USAGE when another live process holds it. */
  static async open(dir: string): Promise<FsWitnessStore> {
    await mkdir(join(dir, 'logs'), { recursive: true, mode: 0o700 });
    const lock = join(dir, 'LOCK');
    try {
      await writeFile(lock, String(process.pid), { flag: 'wx' });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const pid = Number(await readFile(lock, 'utf8').catch(() => 'x'));
      let alive = false;
      try {
        if (Number.isInteger(pid) && pid > 0 && pid !== process.pid) {
          process.kill(pid, 0);
          alive = true;
        }
      } catch {
        alive = false;
      }
      if (alive) {
        throw new VeritrailError(
          'USAGE',
          `witness state ${dir} is in use by process ${pid}; stop it or use another --state`,
        );
      }
      await writeFile(lock, String(process.pid));
    }
    return new FsWitnessStore(dir);
  }

  async close(): Promise<void> {
    await unlink(join(this.dir, 'LOCK')).catch(() => undefined);
  }

  private path(origin: string): string {
    return join(this.dir, 'logs', `${originHash(origin)}.json`);
  }

  async get(origin: string): Promise<WitnessRecord | undefined> {
    let text: string;
    try {
      text = await readFile(this.path(origin), 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
    const v = JSON.parse(text) as Partial<WitnessRecord> & { origin?: string };
    if (
      v.origin !== origin ||
      !Number.isSafeInteger(v.size) ||
      typeof v.root !== 'string' ||
      typeof v.note !== 'string'
    ) {
      throw new VeritrailError(
        'AUDIT_CORRUPT',
        `witness state for "${origin}" is unreadable: restore it from a backup, never reset it`,
      );
    }
    return { size: v.size as number, root: v.root, note: v.note };
  }

  async set(origin: string, record: WitnessRecord, previous: WitnessRecord | undefined): Promise<boolean> {
    if (!sameRecord(await this.get(origin), previous)) return false;
    const target = this.path(origin);
    const temp = `${target}.${process.pid}.tmp`;
    const fh = await open(temp, 'w', 0o600);
    try {
      await fh.writeFile(JSON.stringify({ origin, ...record }));
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(temp, target);
    await fsyncPath(join(this.dir, 'logs'));
    return true;
  }

  async evidence(origin: string, reason: string, body: string): Promise<void> {
    const line = JSON.stringify({ time: new Date().toISOString(), origin, reason, body });
    await appendFile(join(this.dir, 'refused.jsonl'), `${line}\n`, { mode: 0o600 });
  }
}
