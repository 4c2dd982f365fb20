// Worker thread of leaf-pool.ts: hashes the bundle in a slot of shared memory with `hashTile` and
// leaves the hashes in the slot. Plain JavaScript, loaded by URL, so it runs the same from
// source (vitest, tsx) and from dist/ without a loader.
import { parentPort } from 'node:worker_threads';
import { hashTile, SLOT_BYTES, SLOT_FIRST_PREV, SLOT_LENGTHS, SLOT_OFFSETS } from './tile-hash.mjs';

/** Each slot's memory, sent once per worker and kept. */
const slots = [];

parentPort.on('message', ({ id, slot, sab, n, len, seq0 }) => {
  if (sab !== undefined) slots[slot] = sab;
  const m = slots[slot];
  const out = Buffer.from(m, 0, SLOT_OFFSETS);
  const r = hashTile(
    new Uint8Array(m, SLOT_BYTES, len),
    new Uint32Array(m, SLOT_OFFSETS, n),
    new Uint32Array(m, SLOT_LENGTHS, n),
    seq0,
    out,
  );
  if (r.firstPrev !== undefined) out.set(r.firstPrev, SLOT_FIRST_PREV);
  parentPort.postMessage({ id, firstBad: r.firstBad, firstPrev: r.firstPrev !== undefined });
});
