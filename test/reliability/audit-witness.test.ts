/**
 * DESIGN invariant 10: an audit log's owner cannot truncate, roll back or fork it unseen. A
 * witness (its state outside the log's state dir) refuses each, and `verify` with the witness
 * names each with a stable code.
 */
import { generateKeyPairSync } from 'node:crypto';
import { cp, mkdtemp, readdir, rm, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ObjectAuditLog } from '../../src/audit/log.js';
import { verifyLog } from '../../src/audit/verify/log-verifier.js';
import { addCheckpointBody, Witness } from '../../src/audit/witness/core.js';
import { FsWitnessStore } from '../../src/audit/witness/fs-store.js';
import { LocalWitnessClient } from '../../src/audit/witness/http.js';
import { formatVkey, parseVkey, verifyCosignatures, witnessKeyOf } from '../../src/core/cosignature.js';
import { FsObjectStore } from '../../src/local/fs-object-store.js';
import type { Signer } from '../../src/ports.js';
import { event, testSigner } from './helpers.js';

let root: string;
let home: string;
let signer: Signer;
let witness: Witness;
let wstore: FsWitnessStore;
let client: LocalWitnessClient;

function openLog() {
  return new ObjectAuditLog({ store: new FsObjectStore(home), signer, witnesses: [client] });
}

async function verifyCodes(log: ObjectAuditLog) {
  const r = await verifyLog(log.reader, { witnesses: [client], quorum: 1 });
  return r.problems.map((p) => p.code);
}

/** Deletes every object for entries ≥ from and every checkpoint above `from` (an owner with root). */
async function truncate(from: number) {
  const log = openLog();
  for (let s = from; s < 10_000; s++)
    await unlink(join(home, 'audit', log.entryKey(s))).catch(() => undefined);
  const cps = join(home, 'audit', 'log', 'checkpoints');
  for (const f of await readdir(cps)) if (Number(f) > from) await unlink(join(cps, f));
  await unlink(join(home, 'audit', 'log', 'head')).catch(() => undefined);
  // The published `checkpoint` is put back to the latest one left, as a careful owner would.
  const latest = join(home, 'audit', 'log', 'checkpoint');
  await unlink(latest);
  const { chmod, copyFile } = await import('node:fs/promises');
  const left = (await readdir(cps)).sort().at(-1) as string;
  await copyFile(join(cps, left), latest);
  await chmod(latest, 0o644);
  const partial = join(home, 'audit', 'log', 'tile', '0', '000.p');
  const bundles = join(home, 'audit', 'log', 'tile', 'entries', '000.p');
  for (const d of [partial, bundles]) {
    for (const f of await readdir(d).catch(() => [] as string[]))
      if (Number(f) > from) await unlink(join(d, f));
  }
}

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'vt-witness-'));
  home = join(root, 'state');
  signer = testSigner();
  const privateKeyPem = generateKeyPairSync('ed25519')
    .privateKey.export({ type: 'pkcs8', format: 'pem' })
    .toString();
  wstore = await FsWitnessStore.open(join(root, 'witness'));
  witness = new Witness({
    name: 'witness.test/w1',
    privateKeyPem,
    logs: new Map([['veritrail.local/audit', [await signer.publicKeyPem()]]]),
    store: wstore,
  });
  client = new LocalWitnessClient(witnessKeyOf('witness.test/w1', privateKeyPem), witness);
  const log = openLog();
  for (let i = 0; i < 10; i++) await log.append(event(i));
  expect((await log.checkpoint()).witnessed).toMatchObject([{ ok: true }]);
  for (let i = 10; i < 15; i++) await log.append(event(i));
  expect((await log.checkpoint()).witnessed).toMatchObject([{ ok: true }]);
});
afterEach(async () => {
  await wstore.close();
  await rm(root, { recursive: true, force: true });
});

describe('when nothing was touched', () => {
  it('every checkpoint is cosigned after a consistency check, and verify with quorum 1 is clean', async () => {
    const log = openLog();
    const latest = await log.latestCheckpoint();
    expect(verifyCosignatures(latest?.note ?? '', [client.key])).toHaveLength(1);
    const r = await verifyLog(log.reader, { witnesses: [client], quorum: 1 });
    expect(r.problems).toEqual([]);
    expect(r.witnesses).toEqual([{ witness: 'witness.test/w1', cosigned: true, witnessSize: 15 }]);
  });

  it('a quorum larger than the witnesses that cosigned is WITNESS_QUORUM_MISSING', async () => {
    const r = await verifyLog(openLog().reader, { witnesses: [client], quorum: 2 });
    expect(r.problems.map((p) => p.code)).toEqual(['WITNESS_QUORUM_MISSING']);
  });

  it('the vkey round-trips (name+keyid+key)', () => {
    expect(parseVkey(formatVkey(client.key))).toEqual(client.key);
  });
});

describe('when the tail is truncated', () => {
  it('verify reports LOG_ROLLED_BACK, and the witness refuses the next checkpoint', async () => {
    await truncate(10);
    expect(await verifyCodes(openLog())).toEqual(['LOG_ROLLED_BACK']);
    const log = openLog();
    await log.append(event('after'));
    const cp = await log.checkpoint();
    expect(cp.witnessed).toMatchObject([{ ok: false, status: 409 }]);
    expect(await verifyCodes(openLog())).toEqual(['WITNESS_QUORUM_MISSING', 'LOG_ROLLED_BACK']);
  });
});

describe('when the whole state dir is rolled back', () => {
  it('verify reports LOG_ROLLED_BACK, and the witness refuses the next checkpoint', async () => {
    const saved = join(root, 'saved');
    await cp(home, saved, { recursive: true });
    const log = openLog();
    for (let i = 15; i < 20; i++) await log.append(event(i));
    expect((await log.checkpoint()).witnessed).toMatchObject([{ ok: true }]);
    await rm(home, { recursive: true, force: true });
    await cp(saved, home, { recursive: true });
    expect(await verifyCodes(openLog())).toEqual(['LOG_ROLLED_BACK']);
    const again = openLog();
    await again.append(event('rolled'));
    expect((await again.checkpoint()).witnessed).toMatchObject([{ ok: false, status: 409 }]);
  });
});

describe('when the log is forked after truncation with the stolen log key', () => {
  it('the witness refuses the fork (422) and verify reports LOG_FORKED', async () => {
    await truncate(10);
    const log = openLog();
    for (let i = 0; i < 5; i++) await log.append(event(`fork-${i}`));
    const forked = await log.checkpoint();
    expect(forked.size).toBe(15);
    expect(forked.witnessed).toMatchObject([{ ok: false, status: 422 }]);
    expect(await verifyCodes(openLog())).toEqual(['WITNESS_QUORUM_MISSING', 'LOG_FORKED']);
    // A longer fork: the consistency proof from 15 cannot hold either.
    for (let i = 5; i < 9; i++) await log.append(event(`fork-${i}`));
    expect((await log.checkpoint()).witnessed).toMatchObject([{ ok: false, status: 422 }]);
  });
});

describe('the witness protocol (c2sp.org/tlog-witness)', () => {
  it('answers 409 with its size as text/x.tlog.size when the old size is not its own', async () => {
    const note = (await openLog().latestCheckpoint())?.note ?? '';
    const r = await witness.addCheckpoint(addCheckpointBody(0, [], note));
    expect(r).toEqual({ status: 409, contentType: 'text/x.tlog.size', body: '15\n' });
  });

  it('answers 404 for an unknown origin and 403 for a checkpoint signed by another key', async () => {
    const other = new ObjectAuditLog({
      store: new FsObjectStore(join(root, 'other')),
      signer,
      origin: 'other.test/log',
    });
    await other.append(event(1));
    const r404 = await witness.addCheckpoint(addCheckpointBody(0, [], (await other.checkpoint()).note));
    expect(r404.status).toBe(404);
    const mallory = new ObjectAuditLog({
      store: new FsObjectStore(join(root, 'mallory')),
      signer: testSigner(),
    });
    await mallory.append(event(1));
    const r403 = await witness.addCheckpoint(addCheckpointBody(0, [], (await mallory.checkpoint()).note));
    expect(r403.status).toBe(403);
  });

  it('answers 400 to a malformed body and keeps its state across a restart', async () => {
    expect((await witness.addCheckpoint('old x\n\nnope')).status).toBe(400);
    expect((await wstore.get('veritrail.local/audit'))?.size).toBe(15);
  });
});

describe('witnessedAt (for verify <runId>)', () => {
  it('names the witnessed checkpoint covering an entry, and none for an entry after the last one', async () => {
    const log = openLog();
    expect(await log.witnessedAt(3, [client.key])).toMatchObject({
      checkpointSize: 15,
      cosignatures: [{ witness: 'witness.test/w1' }],
    });
    await log.append(event('late'));
    expect(await log.witnessedAt(15, [client.key])).toBeUndefined();
    expect(
      await log.witnessedAt(3, [parseVkey(formatVkey({ ...client.key, name: 'other.test/w' }))]),
    ).toBeUndefined();
  });
});
