/**
 * Deleting what c2sp.org/tlog-tiles requires (entry bundles, hash tiles, partial ones, the
 * `checkpoint` object) is tampering too: `verify` names it TILE_MISSING at the first entry under
 * the missing object, even though the batches still hold every entry.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { ObjectAuditLog } from '../../src/audit/log.js';
import { verifyLog } from '../../src/audit/verify/log-verifier.js';
import { event, MemoryObjectStore, testSigner } from './helpers.js';

let store: MemoryObjectStore;
let log: ObjectAuditLog;

beforeEach(async () => {
  store = new MemoryObjectStore();
  log = new ObjectAuditLog({ store, signer: testSigner() });
  await Promise.all(Array.from({ length: 600 }, (_, i) => log.append(event(i))));
  await log.checkpoint();
});

async function problems() {
  return (await verifyLog(log.reader)).problems.map((p) => [p.code, p.seq]);
}

describe('when nothing was deleted', () => {
  it('verifies ok', async () => {
    expect(await problems()).toEqual([]);
  });
});

describe('when a tlog-tiles object is deleted', () => {
  it.each([
    ['a full entry bundle', 'tile/entries/001', 256],
    ['a full level-0 hash tile', 'tile/0/000', 0],
    ['the partial level-1 hash tile', 'tile/1/000.p/2', 0],
    ['the partial level-0 hash tile of the checkpoint', 'tile/0/002.p/88', 512],
    ['the partial entry bundle of the checkpoint', 'tile/entries/002.p/88', 512],
    ['the latest `checkpoint`', 'checkpoint', 599],
  ])('reports TILE_MISSING for %s', async (_what, path, seq) => {
    expect(store.objects.delete(`audit/log/${path}`)).toBe(true);
    expect(await problems()).toEqual([['TILE_MISSING', seq]]);
  });
});
