// The hashing of one entry bundle for `audit verify` (leaf-pool.ts): its RFC 9162 §2.1.1 leaf
// hashes, its tile's subtree and the chain check of its entries. Plain JavaScript, so that the
// worker (tile-hash-worker.mjs) loads it from source (vitest, tsx) and from dist/ alike, with no
// TypeScript loader; tile-hash.d.mts gives its types to leaf-pool.ts, which calls it in place for
// small logs. Held to src/core by tests (test/unit/audit-leaf-pool.test.ts: leaves, subtree and
// the chain verdict against `entryLeafHash`, `rootOf` and `chainFields`).
import { hash } from 'node:crypto';

/*
 * A bundle's slot of shared memory (leaf-pool.ts hands bundles to the workers in them): the
 * hashes below SLOT_OFFSETS (256 leaves, 255 nodes, then the 32 bytes the first entry's `prev`
 * spells), the entry offsets, their lengths, then the bundle bytes.
 */
export const SLOT_OFFSETS = 16_384;
export const SLOT_FIRST_PREV = SLOT_OFFSETS - 32;
export const SLOT_LENGTHS = SLOT_OFFSETS + 256 * 4;
export const SLOT_BYTES = SLOT_OFFSETS + 2 * 256 * 4;

/**
 * SHA-256 as a 'binary' (latin1) string, one char per byte: about four times the calls per second
 * of a Buffer result, whose fresh backing store per 32-byte digest costs more than the hash.
 */
const sha256 = (data) => hash('sha256', data, 'binary');

const HEX = new Int8Array(256).fill(-1);
for (let d = 0; d < 16; d++) HEX['0123456789abcdef'.charCodeAt(d)] = d;
// The chain fields as RFC 8785 orders an entry's top-level keys (`chainFields`, src/core/audit-entry.ts).
const PREV_KEY = Buffer.from('"prev":"', 'latin1');
const RUNID_KEY = Buffer.from(',"runId":"', 'latin1');
const SEQ_KEY = Buffer.from(',"seq":', 'latin1');

/**
 * Hashes and chain-checks one bundle: entry i lies at `bytes[starts[i] + 2, + lens[i])`, its
 * sequence number is `seq0 + i`. Overwrites each entry's low length byte with the leaf prefix
 * 0x00 so that entries are hashed where they lie. Writes the hashes into `into` when given
 * (at least (2n − 1) × 32 bytes). The chain fields are found as `chainFields` finds them.
 */
export function hashTile(bytes, starts, lens, seq0, into) {
  const n = starts.length;
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // Leaves, then the nodes level by level, in one buffer: `into` (shared memory) when given.
  const out = into ?? Buffer.alloc((2 * n - 1) * 32);
  const leaves = out.subarray(0, n * 32);
  // Locals, not the module's bindings, in the loop below.
  const hex = HEX;
  const prevKey = PREV_KEY;
  const runKey = RUNID_KEY;
  const seqKey = SEQ_KEY;
  const digest = sha256;
  let firstBad = -1;
  let firstPrev;
  const spelled = new Uint8Array(32);
  for (let i = 0; i < n; i++) {
    const at = starts[i];
    const end = at + 2 + lens[i];
    if (firstBad < 0) {
      // Chain fields: the first `"prev":"` followed by 64 hex digits and `,"runId":"`, then
      // the runId string, then `,"seq":<digits>,`. Byte loops, not Buffer calls: this runs per entry.
      let ok = buf[at + 2] === 0x7b;
      let key = ok ? buf.indexOf(prevKey, at + 2) : -1;
      for (; key >= 0 && key < end; key = buf.indexOf(prevKey, key + 1)) {
        const r = key + 8 + 64;
        let same = r + 1 + runKey.length <= end && buf[r] === 0x22;
        for (let k = 0; same && k < runKey.length; k++) same = buf[r + 1 + k] === runKey[k];
        if (same) break;
      }
      ok = ok && key >= 0 && key < end;
      const p = key + 8;
      if (ok) {
        let j = p + 65 + runKey.length;
        for (; j < end; j++) {
          const c = buf[j];
          if (c === 0x5c) j += 1;
          else if (c === 0x22) break;
        }
        j += 1;
        for (let k = 0; ok && k < seqKey.length; k++) ok = j + k < end && buf[j + k] === seqKey[k];
        let k = j + seqKey.length;
        const digits = k;
        let seq = 0;
        for (; ok && k < end && k - digits < 16; k++) {
          const d = buf[k];
          if (d < 0x30 || d > 0x39) break;
          seq = seq * 10 + (d - 0x30);
        }
        ok =
          ok &&
          k > digits &&
          !(buf[digits] === 0x30 && k - digits > 1) &&
          k < end &&
          buf[k] === 0x2c &&
          seq === seq0 + i;
      }
      for (let b = 0; b < 32 && ok; b++) {
        const hi = hex[buf[p + 2 * b]];
        const lo = hex[buf[p + 2 * b + 1]];
        if (hi < 0 || lo < 0) ok = false;
        spelled[b] = (hi << 4) | lo;
        if (i > 0 && spelled[b] !== leaves[(i - 1) * 32 + b]) ok = false;
      }
      if (ok && i === 0) firstPrev = spelled.slice();
      if (!ok) firstBad = i;
    }
    buf[at + 1] = 0x00;
    // Node's Buffer#latin1Write: one char of a digest string per byte, no Buffer made per digest.
    out.latin1Write(digest(buf.subarray(at + 1, end)), i * 32, 32);
  }
  // The tile's subtree, level by level (RFC 9162 §2.1.1), after the leaves: level L's first
  // node follows level L-1's last.
  const pair = Buffer.alloc(65);
  pair[0] = 0x01;
  let below = 0;
  let level = n * 32;
  for (let width = n / 2; width >= 1; width /= 2) {
    for (let k = 0; k < width; k++) {
      out.copy(pair, 1, below + 2 * k * 32, below + 2 * k * 32 + 64);
      out.latin1Write(digest(pair), level + k * 32, 32);
    }
    below = level;
    level += width * 32;
  }
  return { leaves, nodes: out.subarray(n * 32), firstBad, firstPrev };
}
