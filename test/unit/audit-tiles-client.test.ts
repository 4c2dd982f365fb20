/**
 * c2sp.org/tlog-tiles conformance, checked by a client that reads only `checkpoint`, the hash
 * tiles and the entry bundles: every checkpoint of a growing log verifies, whatever its size.
 */
import { describe, expect, it } from 'vitest';
import { ObjectAuditLog } from '../../src/audit/log.js';
import { TilesClientError, verifyFromTiles } from '../../src/audit/verify/tiles-client.js';
import { event, MemoryObjectStore, testSigner } from '../reliability/helpers.js';

function setup() {
  const store = new MemoryObjectStore();
  const signer = testSigner();
  const log = new ObjectAuditLog({ store, signer });
  const get = async (path: string) => store.objects.get(`audit/log/${path}`);
  return { store, signer, log, get };
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'NO_ERROR';
  } catch (e) {
    return e instanceof TilesClientError ? e.code : String(e);
  }
}

describe('a tiles-only client', () => {
  it('verifies every checkpoint of a log growing across tile boundaries, the latest and the earlier ones', async () => {
    const { log, signer, get } = setup();
    const keys = [await signer.publicKeyPem()];
    const seen: string[] = [];
    let n = 0;
    for (const size of [1, 5, 255, 256, 257, 300, 512, 513, 700]) {
      // Concurrent appends, so that batches of several entries are sealed into the bundles.
      await Promise.all(Array.from({ length: size - n }, (_, i) => log.append(event(`e${n + i}`))));
      n = size;
      const cp = await log.checkpoint();
      expect(cp.size).toBe(size);
      const read = await verifyFromTiles(get, { origin: log.origin, keys });
      expect(read.size).toBe(size);
      seen.push(cp.note);
    }
    for (const note of seen)
      expect((await verifyFromTiles(get, { origin: log.origin, keys }, note)).note).toBe(note);
  }, 60_000);

  it('still gets a right level-1 tile when the seal before it was lost (recomputed from level 0)', async () => {
    const { log, signer, store, get } = setup();
    await Promise.all(Array.from({ length: 256 }, (_, i) => log.append(event(i))));
    await log.settle();
    expect(store.objects.delete('audit/log/tile/1/000.p/1')).toBe(true);
    await Promise.all(Array.from({ length: 256 }, (_, i) => log.append(event(256 + i))));
    await log.settle();
    expect(store.objects.get('audit/log/tile/1/000.p/2')?.length).toBe(64);
    await log.checkpoint();
    expect(
      (await verifyFromTiles(get, { origin: log.origin, keys: [await signer.publicKeyPem()] })).size,
    ).toBe(512);
  });

  it('fails with TILE_MISSING when a partial level-0 tile is deleted', async () => {
    const { log, signer, store, get } = setup();
    for (let i = 0; i < 10; i++) await log.append(event(i));
    await log.checkpoint();
    store.objects.delete('audit/log/tile/0/000.p/10');
    expect(
      await codeOf(verifyFromTiles(get, { origin: log.origin, keys: [await signer.publicKeyPem()] })),
    ).toBe('TILE_MISSING');
  });

  it('fails with BUNDLE_MISMATCH when a partial entry bundle is altered', async () => {
    const { log, signer, store, get } = setup();
    for (let i = 0; i < 10; i++) await log.append(event(i));
    await log.checkpoint();
    const key = 'audit/log/tile/entries/000.p/10';
    const b = Buffer.from(store.objects.get(key) as Uint8Array);
    b.writeUInt8((b.at(-3) ?? 0) ^ 1, b.length - 3);
    store.objects.set(key, b);
    expect(
      await codeOf(verifyFromTiles(get, { origin: log.origin, keys: [await signer.publicKeyPem()] })),
    ).toBe('BUNDLE_MISMATCH');
  });

  it('fails with CHECKPOINT_INVALID under a key it does not trust', async () => {
    const { log, get } = setup();
    await log.append(event(1));
    await log.checkpoint();
    expect(
      await codeOf(verifyFromTiles(get, { origin: log.origin, keys: [await testSigner().publicKeyPem()] })),
    ).toBe('CHECKPOINT_INVALID');
  });
});
