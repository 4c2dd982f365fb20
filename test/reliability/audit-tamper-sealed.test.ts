/**
 * Tampering with the sealed part of a log (entries copied into c2sp.org/tlog-tiles entry bundles,
 * hash tiles above level 0, successive checkpoints): `verify` must still name the right problem at
 * the right sequence number (invariant 3), and reads must never serve an altered entry object.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { ObjectAuditLog } from '../../src/audit/log.js';
import { verifyLog } from '../../src/audit/verify/log-verifier.js';
import { verifyProofBundle } from '../../src/audit/verify/proof.js';
import { encodeEntryBundle } from '../../src/core/tiles.js';
import type { AuditEntry } from '../../src/ports.js';
import { event, MemoryObjectStore, testSigner } from './helpers.js';

// Four full bundles (0..1023), so verify hashes the last on a worker thread, and a tail of 76.
const N = 1100;
const signer = testSigner();
let template: MemoryObjectStore;

beforeAll(async () => {
  template = new MemoryObjectStore();
  const log = new ObjectAuditLog({ store: template, signer });
  for (let i = 0; i < 300; i++) await log.append(event(i));
  await log.checkpoint();
  for (let i = 300; i < N; i++) await log.append(event(i));
  await log.checkpoint();
});

/** A private copy of the sealed log to tamper with. */
function fresh(): { store: MemoryObjectStore; log: ObjectAuditLog } {
  const store = new MemoryObjectStore();
  for (const [k, v] of template.objects) store.objects.set(k, new Uint8Array(v));
  return { store, log: new ObjectAuditLog({ store, signer }) };
}

const id = (log: ObjectAuditLog, seq: number) => `audit/${log.entryKey(seq)}`;

function edit(store: MemoryObjectStore, key: string, change: (text: string) => string): void {
  const bytes = store.objects.get(key);
  if (bytes === undefined) throw new Error(`no object ${key}`);
  const after = change(Buffer.from(bytes).toString('utf8'));
  expect(after).not.toBe(Buffer.from(bytes).toString('utf8'));
  store.objects.set(key, new TextEncoder().encode(after));
}

async function problems(log: ObjectAuditLog, options: { entryObjects?: boolean } = {}) {
  const r = await verifyLog(log.reader, options);
  return r.problems.map((p) => [p.code, p.seq]);
}

async function codeOf(p: Promise<unknown>): Promise<[string, unknown]> {
  try {
    await p;
    return ['NO_ERROR', undefined];
  } catch (e) {
    const err = e as { code?: string; details?: { problem?: unknown } };
    return [err.code ?? String(e), err.details?.problem];
  }
}

describe('when nothing was touched', () => {
  it('verifies ok, with and without the entry-object cross-check', async () => {
    const { log } = fresh();
    expect(await verifyLog(log.reader)).toEqual({ ok: true, entries: N, checkpoints: 2, problems: [] });
    expect((await verifyLog(log.reader, { entryObjects: false })).ok).toBe(true);
  });
});

describe('when a sealed entry object is edited (its bundle copy intact)', () => {
  // Same length on purpose: a size check alone would not see it.
  const toFailure = (t: string) => t.replace('"outcome":"success"', '"outcome":"failure"');

  it('verify reports ENTRY_ALTERED at that seq', async () => {
    const { store, log } = fresh();
    edit(store, id(log, 100), toFailure);
    expect(await problems(log)).toEqual([['ENTRY_ALTERED', 100]]);
  });

  it('prove refuses the entry with AUDIT_CORRUPT / ENTRY_ALTERED', async () => {
    const { store, log } = fresh();
    edit(store, id(log, 300), toFailure);
    expect(await codeOf(log.prove(300))).toEqual(['AUDIT_CORRUPT', 'ENTRY_ALTERED']);
    // Other entries of the same bundle still prove.
    verifyProofBundle(await log.prove(301), await signer.publicKeyPem());
  });

  it('show and entriesOf serve the sealed copy, never the altered object', async () => {
    const { store, log } = fresh();
    edit(store, id(log, 7), toFailure);
    const seen: AuditEntry[] = [];
    for await (const e of log.entriesOf('run-1')) if (e.seq === 7) seen.push(e);
    expect(seen.map((e) => e.outcome)).toEqual(['success']);
  });
});

describe('when a sealed entry object is deleted', () => {
  it('verify reports ENTRY_MISSING at that seq', async () => {
    const { store, log } = fresh();
    store.objects.delete(id(log, 511));
    expect(await problems(log)).toEqual([['ENTRY_MISSING', 511]]);
  });
});

/** Rewrites entry `seq` inside its entry bundle (the entry object is left as it was). */
function editInBundle(store: MemoryObjectStore, seq: number, change: (text: string) => string): void {
  const key = `audit/log/tile/entries/${String(Math.floor(seq / 256)).padStart(3, '0')}`;
  const bytes = store.objects.get(key) as Uint8Array;
  const items: Uint8Array[] = [];
  for (let at = 0; at < bytes.length; ) {
    const len = ((bytes[at] as number) << 8) | (bytes[at + 1] as number);
    items.push(bytes.subarray(at + 2, at + 2 + len));
    at += 2 + len;
  }
  const text = Buffer.from(items[seq % 256] as Uint8Array).toString('utf8');
  const after = change(text);
  expect(after).not.toBe(text);
  items[seq % 256] = new TextEncoder().encode(after);
  store.objects.set(key, encodeEntryBundle(items));
}

describe('when an entry inside a bundle is edited', () => {
  it('reports ENTRY_ALTERED at that seq, not the (correct) hash tiles that now disagree with it', async () => {
    const { store, log } = fresh();
    editInBundle(store, 300, (t) => t.replace('tester@host', 'mallory@hst'));
    expect(await problems(log)).toEqual([['ENTRY_ALTERED', 300]]);
  });

  it('reports ENTRY_ALTERED in a bundle hashed on a worker thread (the 4th)', async () => {
    const { store, log } = fresh();
    editInBundle(store, 800, (t) => t.replace(/"prev":"[0-9a-f]{64}"/, `"prev":"${'e'.repeat(64)}"`));
    expect(await problems(log)).toEqual([['ENTRY_ALTERED', 800]]);
  });

  it('reports ENTRY_REORDERED when two entries of a bundle are swapped', async () => {
    const { store, log } = fresh();
    let nine00 = '';
    let nine01 = '';
    editInBundle(store, 900, (t) => {
      nine00 = t;
      return `${t} `;
    });
    editInBundle(store, 901, (t) => {
      nine01 = t;
      return nine00;
    });
    editInBundle(store, 900, () => nine01);
    // The bundle is what is chained; the entry objects, left in place, now also differ from it.
    expect(await problems(log, { entryObjects: false })).toEqual([
      ['ENTRY_REORDERED', 900],
      ['ENTRY_REORDERED', 901],
    ]);
    expect(await problems(log)).toEqual([
      ['ENTRY_REORDERED', 900],
      ['ENTRY_ALTERED', 900],
      ['ENTRY_REORDERED', 901],
      ['ENTRY_ALTERED', 901],
    ]);
  });
});

describe('when a hash tile is altered', () => {
  it('reports TILE_ALTERED for a level-0 tile at the entry whose leaf hash changed', async () => {
    const { store, log } = fresh();
    const tile = store.objects.get('audit/log/tile/0/000') as Uint8Array;
    (tile[32 * 9] as number) ^= 1;
    expect(await problems(log)).toEqual([['TILE_ALTERED', 9]]);
  });

  it('reports TILE_ALTERED for a level-1 partial tile at the first entry under the altered hash', async () => {
    const { store, log } = fresh();
    const tile = store.objects.get('audit/log/tile/1/000.p/2') as Uint8Array;
    expect(tile.length).toBe(64);
    (tile[40] as number) ^= 1;
    const found = await problems(log);
    expect(found).toContainEqual(['TILE_ALTERED', 256]);
    expect(found.every(([code]) => code === 'TILE_ALTERED')).toBe(true);
  });

  it('reports TILE_ALTERED when an older, narrower partial tile is altered', async () => {
    const { store, log } = fresh();
    const tile = store.objects.get('audit/log/tile/1/000.p/1') as Uint8Array;
    (tile[0] as number) ^= 1;
    expect(await problems(log)).toEqual([['TILE_ALTERED', 0]]);
  });
});

describe('when successive checkpoints are not consistent (RFC 9162 §2.1.4)', () => {
  it('reports CHECKPOINT_INCONSISTENT for the later one even when entry problems hide its root', async () => {
    const { store, log } = fresh();
    // The log key signs a 512-entry tree of another history (a key compromise, or a fork) …
    const fork = new ObjectAuditLog({ store: new MemoryObjectStore(), signer });
    for (let i = 0; i < 512; i++) await fork.append(event(`fork-${i}`));
    const forked = await fork.checkpoint();
    store.objects.set(`audit/${log.checkpointKey(512)}`, new TextEncoder().encode(forked.note));
    // … and entry 10 of the stored log is altered, so roots after it cannot be recomputed.
    const key = 'audit/log/tile/entries/000';
    const bundle = store.objects.get(key) as Uint8Array;
    const at = Buffer.from(bundle).indexOf('"outcome":"success"', 0);
    expect(at).toBeGreaterThan(0);
    bundle.set(new TextEncoder().encode('"outcome":"failure"'), at);
    const found = await problems(log);
    expect(found).toContainEqual(['ENTRY_ALTERED', 0]);
    expect(found).toContainEqual(['CHECKPOINT_INCONSISTENT', 511]);
  });
});
