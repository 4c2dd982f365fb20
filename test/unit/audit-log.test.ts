import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ObjectAuditLog } from '../../src/audit/log.js';
import { verifyLog } from '../../src/audit/verify/log-verifier.js';
import { verifyProofBundle } from '../../src/audit/verify/proof.js';
import { entryLeafHash, toHex, ZERO_HASH_HEX } from '../../src/core/audit-entry.js';
import { canonicalBytes } from '../../src/core/jcs.js';
import { rootOf, verifyConsistencyProof } from '../../src/core/merkle.js';
import { FsObjectStore } from '../../src/local/fs-object-store.js';
import { event, MemoryObjectStore, testSigner } from '../reliability/helpers.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function fsLog() {
  const root = await mkdtemp(join(tmpdir(), 'vt-audit-'));
  dirs.push(root);
  const store = new FsObjectStore(root);
  const signer = testSigner();
  return { root, store, signer, log: new ObjectAuditLog({ store, signer }) };
}

function memLog() {
  const store = new MemoryObjectStore();
  const signer = testSigner();
  return { store, signer, log: new ObjectAuditLog({ store, signer }) };
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'NO_ERROR';
  } catch (e) {
    return (e as { code?: string }).code ?? String(e);
  }
}

describe('audit log append', () => {
  it('numbers entries from 0 and chains each to the leaf hash of the previous', async () => {
    const { log, store } = await fsLog();
    const a = await log.append(event(1));
    const b = await log.append(event(2));
    expect(a.seq).toBe(0);
    expect(a.prev).toBe(ZERO_HASH_HEX);
    expect(b.seq).toBe(1);
    expect(b.prev).toBe(toHex(entryLeafHash(canonicalBytes(a))));
    const stored = await store.head('audit', log.entryKey(1));
    expect(stored?.size).toBe(canonicalBytes(b).length);
  });

  it('records the same eventId once and returns the first entry', async () => {
    const { log } = await fsLog();
    const first = await log.append(event(1));
    await log.append(event(2));
    const again = await log.append(event(1));
    expect(again).toEqual(first);
    expect(await log.size()).toBe(2);
  });

  it('stays idempotent in a fresh process (no index in memory) retrying any earlier event', async () => {
    const { log, root } = await fsLog();
    await log.append(event(1));
    await log.append(event(2));
    const fresh = new ObjectAuditLog({ store: new FsObjectStore(root) });
    expect((await fresh.append(event(2))).seq).toBe(1);
    expect((await fresh.append(event(1))).seq).toBe(0);
    expect(await fresh.size()).toBe(2);
  });

  it('gives concurrent appenders one order with no gap or duplicate', async () => {
    const { store } = await fsLog();
    const logs = Array.from({ length: 4 }, () => new ObjectAuditLog({ store }));
    const entries = await Promise.all(
      Array.from({ length: 40 }, (_, i) => (logs[i % 4] as ObjectAuditLog).append(event(i))),
    );
    expect(entries.map((e) => e.seq).sort((a, b) => a - b)).toEqual(Array.from({ length: 40 }, (_, i) => i));
    const all = [];
    for await (const e of (logs[0] as ObjectAuditLog).entries()) all.push(e);
    for (let i = 1; i < all.length; i++) {
      expect(all[i]?.prev).toBe(toHex(entryLeafHash(canonicalBytes(all[i - 1]))));
    }
  });

  it('rejects a malformed event with EVENT_INVALID', async () => {
    const { log } = await fsLog();
    expect(await codeOf(log.append({ ...event(1), outcome: 'maybe' as 'info' }))).toBe('EVENT_INVALID');
    expect(await codeOf(log.append({ ...event(1), eventId: '' }))).toBe('EVENT_INVALID');
  });

  it('writes entries read-only (WORM)', async () => {
    const { log, root } = await fsLog();
    await log.append(event(1));
    const { stat } = await import('node:fs/promises');
    const path = join(root, 'audit', log.entryKey(0));
    expect((await stat(path)).mode & 0o222).toBe(0);
  });
});

describe('audit log tiles, checkpoints and proofs', () => {
  it('writes c2sp tlog-tiles when 256 entries complete, and reads them back in order', async () => {
    const { log, store } = memLog();
    for (let i = 0; i < 600; i++) await log.append(event(i));
    // Integration lags the appends (it runs after the batch that completes a tile is acknowledged).
    await log.settle();
    expect(store.objects.has('audit/log/tile/entries/000')).toBe(true);
    expect(store.objects.has('audit/log/tile/entries/001')).toBe(true);
    expect(store.objects.has('audit/log/tile/0/001')).toBe(true);
    expect(store.objects.get('audit/log/tile/1/000.p/2')?.length).toBe(64);
    const seqs: number[] = [];
    for await (const e of log.entries()) seqs.push(e.seq);
    expect(seqs).toEqual(Array.from({ length: 600 }, (_, i) => i));
  });

  it('signs a checkpoint whose root is the RFC 6962 root of the entries', async () => {
    const { log } = memLog();
    const leaves = [];
    for (let i = 0; i < 300; i++) leaves.push(entryLeafHash(canonicalBytes(await log.append(event(i)))));
    const cp = await log.checkpoint();
    expect(cp.size).toBe(300);
    expect(cp.treeSize).toBe(300);
    expect(Buffer.from(cp.root)).toEqual(Buffer.from(rootOf(leaves)));
    expect(cp.note.startsWith('veritrail.local/audit\n300\n')).toBe(true);
  });

  it('proves any entry with a bundle a third party verifies with the public key only', async () => {
    const { log, signer } = memLog();
    for (let i = 0; i < 530; i++) await log.append(event(i));
    const pem = await signer.publicKeyPem();
    for (const seq of [0, 1, 255, 256, 300, 511, 512, 529]) {
      const bundle = await log.prove(seq);
      const { entry } = verifyProofBundle(JSON.stringify(bundle), pem);
      expect(entry.seq).toBe(seq);
    }
  });

  describe('when a proof bundle is tampered with', () => {
    it('fails with AUDIT_CORRUPT or SIGNATURE_INVALID', async () => {
      const { log, signer } = memLog();
      for (let i = 0; i < 20; i++) await log.append(event(i));
      const pem = await signer.publicKeyPem();
      const good = await log.prove(7);
      const changedEntry = { ...good, entry: { ...good.entry, outcome: 'failure' as const } };
      expect(await codeOf(Promise.resolve().then(() => verifyProofBundle(changedEntry, pem)))).toBe(
        'AUDIT_CORRUPT',
      );
      const otherKey = await testSigner().publicKeyPem();
      expect(await codeOf(Promise.resolve().then(() => verifyProofBundle(good, otherKey)))).toBe(
        'SIGNATURE_INVALID',
      );
      const forgedCp = { ...good, checkpoint: good.checkpoint.replace('\n20\n', '\n21\n') };
      expect(await codeOf(Promise.resolve().then(() => verifyProofBundle(forgedCp, pem)))).toBe(
        'SIGNATURE_INVALID',
      );
      const shortProof = { ...good, inclusionProof: good.inclusionProof.slice(1) };
      expect(await codeOf(Promise.resolve().then(() => verifyProofBundle(shortProof, pem)))).toBe(
        'AUDIT_CORRUPT',
      );
      expect(await codeOf(Promise.resolve().then(() => verifyProofBundle('{not json', pem)))).toBe(
        'AUDIT_CORRUPT',
      );
    });
  });

  it('proves consistency between two checkpoints (RFC 9162 §2.1.4)', async () => {
    const { log } = memLog();
    for (let i = 0; i < 100; i++) await log.append(event(i));
    const cp1 = await log.checkpoint();
    for (let i = 100; i < 700; i++) await log.append(event(i));
    const cp2 = await log.checkpoint();
    const proof = (await log.proveConsistency(cp1.size, cp2.size)).map(
      (h) => new Uint8Array(Buffer.from(h, 'base64')),
    );
    verifyConsistencyProof({ size1: 100n, size2: 700n, proof, root1: cp1.root, root2: cp2.root });
  });

  it('lists the entries of one run', async () => {
    const { log } = memLog();
    for (let i = 0; i < 10; i++) await log.append(event(i, i % 2 === 0 ? 'run-a' : 'run-b'));
    const seqs: number[] = [];
    for await (const e of log.entriesOf('run-b')) seqs.push(e.seq);
    expect(seqs).toEqual([1, 3, 5, 7, 9]);
  });

  it('verifies a clean log with no problem', async () => {
    const { log } = memLog();
    for (let i = 0; i < 300; i++) await log.append(event(i));
    await log.checkpoint();
    for (let i = 300; i < 310; i++) await log.append(event(i));
    await log.checkpoint();
    expect(await verifyLog(log.reader)).toEqual({ ok: true, entries: 310, checkpoints: 2, problems: [] });
  });
});

describe('when the store ends an object stream early', () => {
  it('fails the read with TRANSIENT instead of hanging', async () => {
    const { store, log } = memLog();
    await log.append(event(0));
    const open = store.open.bind(store);
    store.open = async (bucket, key) => {
      const r = await open(bucket, key);
      // Destroyed without an error before any data: no 'end' will ever come.
      r.destroy();
      return r;
    };
    expect(await codeOf(log.readEntry(0))).toBe('TRANSIENT');
  });
});

describe('a tile seal lost when its process was killed', () => {
  it('is made by the process that seals the next tile, so the checkpoint covers whole tiles', async () => {
    const { store, signer, log } = memLog();
    for (let i = 0; i < 256; i++) await log.append(event(i));
    await log.settle();
    // Killed between the entry bundle and the hash tile of tile 0: the bundle is there, the tile is not.
    expect(store.objects.delete('audit/log/tile/0/000')).toBe(true);
    // Another process goes on and seals tile 1; nobody appends at the end of tile 0 again.
    const other = new ObjectAuditLog({ store, signer });
    for (let i = 256; i < 520; i++) await other.append(event(i));
    await other.settle();
    expect(store.objects.has('audit/log/tile/0/000')).toBe(true);
    await other.checkpoint();
    expect((await verifyLog(other.reader)).problems).toEqual([]);
  });
});
