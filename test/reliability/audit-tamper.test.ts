/**
 * Tampering with a stored log (as an administrator with write access to the folder could):
 * `verify` must name the right problem at the right sequence number.
 */
import { chmod, mkdtemp, readFile, rename, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ObjectAuditLog } from '../../src/audit/log.js';
import { verifyLog } from '../../src/audit/verify/log-verifier.js';
import { FsObjectStore } from '../../src/local/fs-object-store.js';
import type { Signer } from '../../src/ports.js';
import { event, MemoryObjectStore, testSigner } from './helpers.js';

let root: string;
let log: ObjectAuditLog;
let signer: Signer;
const N = 10;

const path = (seq: number) => join(root, 'audit', log.entryKey(seq));

async function overwrite(p: string, text: string | Buffer) {
  await chmod(p, 0o644);
  await writeFile(p, text);
}

async function editEntry(seq: number, change: (e: Record<string, unknown>) => void) {
  const e = JSON.parse(await readFile(path(seq), 'utf8')) as Record<string, unknown>;
  change(e);
  const canonicalize = (await import('canonicalize')).default;
  await overwrite(path(seq), canonicalize(e) ?? '');
}

async function problems() {
  const r = await verifyLog(log.reader);
  return r.problems.map((p) => [p.code, p.seq]);
}

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'vt-tamper-'));
  signer = testSigner();
  log = new ObjectAuditLog({ store: new FsObjectStore(root), signer });
  for (let i = 0; i < N; i++) await log.append(event(i));
  await log.checkpoint();
});
afterEach(async () => rm(root, { recursive: true, force: true }));

describe('when nothing was touched', () => {
  it('verifies ok', async () => {
    expect(await verifyLog(log.reader)).toEqual({ ok: true, entries: N, checkpoints: 1, problems: [] });
  });
});

describe('when an entry is edited', () => {
  it('reports ENTRY_ALTERED at that seq (content only)', async () => {
    await editEntry(4, (e) => {
      e.outcome = 'failure';
    });
    expect(await problems()).toEqual([['ENTRY_ALTERED', 4]]);
  });

  it('reports ENTRY_ALTERED at that seq (prev rewritten too)', async () => {
    await editEntry(6, (e) => {
      e.prev = 'f'.repeat(64);
    });
    expect(await problems()).toEqual([['ENTRY_ALTERED', 6]]);
  });

  it('reports ENTRY_ALTERED when the bytes are garbage', async () => {
    await overwrite(path(2), 'garbage');
    expect(await problems()).toEqual([['ENTRY_ALTERED', 2]]);
  });

  it('reports ENTRY_ALTERED at entry 0', async () => {
    await editEntry(0, (e) => {
      e.actor = 'mallory';
    });
    expect(await problems()).toEqual([['ENTRY_ALTERED', 0]]);
  });

  it('reports CHAIN_BROKEN at the last entry (nothing after it tells which side changed)', async () => {
    await editEntry(9, (e) => {
      e.prev = '0'.repeat(64);
    });
    const p = await problems();
    expect(p[0]).toEqual(['CHAIN_BROKEN', 9]);
  });
});

describe('when an entry is deleted', () => {
  it('reports ENTRY_MISSING at that seq', async () => {
    await unlink(path(5));
    expect(await problems()).toEqual([['ENTRY_MISSING', 5]]);
  });
});

describe('when two entries are swapped', () => {
  it('reports ENTRY_REORDERED at both seqs', async () => {
    const a = await readFile(path(3));
    const b = await readFile(path(6));
    await overwrite(path(3), b);
    await overwrite(path(6), a);
    expect(await problems()).toEqual([
      ['ENTRY_REORDERED', 3],
      ['ENTRY_REORDERED', 6],
    ]);
  });

  it('reports ENTRY_REORDERED for adjacent entries', async () => {
    const a = await readFile(path(3));
    const b = await readFile(path(4));
    await overwrite(path(3), b);
    await overwrite(path(4), a);
    expect(await problems()).toEqual([
      ['ENTRY_REORDERED', 3],
      ['ENTRY_REORDERED', 4],
    ]);
  });
});

describe('when the log is truncated', () => {
  it('reports ENTRY_MISSING for every entry the signed checkpoint covers', async () => {
    await unlink(path(9));
    await unlink(path(8));
    expect(await problems()).toEqual([
      ['ENTRY_MISSING', 8],
      ['ENTRY_MISSING', 9],
    ]);
  });
});

describe('when an entry is inserted', () => {
  it('reports ENTRY_INSERTED at the forged entry (later files renumbered)', async () => {
    // Shift entries 4..9 up by one file, and forge entry 4 chained to entry 3.
    for (let s = N - 1; s >= 4; s--) {
      const bytes = await readFile(path(s));
      await writeFile(join(root, 'tmp-move'), bytes);
      const { mkdir } = await import('node:fs/promises');
      await mkdir(join(path(s + 1), '..'), { recursive: true });
      await rename(join(root, 'tmp-move'), path(s + 1)).catch(async () => overwrite(path(s + 1), bytes));
    }
    await editEntry(4, (e) => {
      e.eventId = 'forged';
      e.outcome = 'success';
    });
    const { createHash } = await import('node:crypto');
    const three = await readFile(path(3));
    await editEntry(4, (e) => {
      e.prev = createHash('sha256')
        .update(Buffer.concat([Buffer.from([0]), three]))
        .digest('hex');
    });
    expect(await problems()).toEqual([['ENTRY_INSERTED', 4]]);
  });
});

describe('when a checkpoint is forged', () => {
  it('reports CHECKPOINT_FORGED when its text was edited', async () => {
    const p = join(root, 'audit', log.checkpointKey(N));
    const note = await readFile(p, 'utf8');
    const lines = note.split('\n');
    lines[2] = Buffer.alloc(32, 1).toString('base64');
    await overwrite(p, lines.join('\n'));
    expect(await problems()).toEqual([['CHECKPOINT_FORGED', N - 1]]);
  });

  it('reports CHECKPOINT_FORGED when signed by another key', async () => {
    const mallory = new ObjectAuditLog({ store: new MemoryObjectStore(), signer: testSigner() });
    for (let i = 0; i < 12; i++) await mallory.append(event(i));
    const forged = await mallory.checkpoint();
    const { mkdir } = await import('node:fs/promises');
    const p = join(root, 'audit', log.checkpointKey(12));
    await mkdir(join(p, '..'), { recursive: true });
    await writeFile(p, forged.note);
    const codes = await problems();
    expect(codes).toContainEqual(['CHECKPOINT_FORGED', 11]);
  });

  it('reports CHECKPOINT_INCONSISTENT when a validly signed root does not match the entries', async () => {
    // The log's own key signs a checkpoint of a different history (a key compromise, or a fork).
    const fork = new ObjectAuditLog({ store: new MemoryObjectStore(), signer });
    for (let i = 0; i < 12; i++) await fork.append(event(`fork-${i}`));
    const forked = await fork.checkpoint();
    for (let i = N; i < 12; i++) await log.append(event(i));
    const p = join(root, 'audit', log.checkpointKey(12));
    await writeFile(p, forked.note);
    expect(await problems()).toEqual([['CHECKPOINT_INCONSISTENT', 11]]);
  });
});
