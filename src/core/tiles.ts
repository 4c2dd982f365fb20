/**
 * The c2sp.org/tlog-tiles layout: hash tiles and entry bundles of 256, written once when full.
 *
 * - `tile/<L>/<N>` holds the 256 hashes (32 bytes each) of Merkle level 8·L, nodes 256·N to
 *   256·N+255; level 0 tiles hold leaf hashes.
 * - `tile/<L>/<N>.p/<W>` is a partial tile of W (1-255) hashes.
 * - `tile/entries/<N>` holds entries 256·N to 256·N+255, each prefixed by its 16-bit big-endian
 *   length.
 * - `<N>` is written in groups of three decimal digits, every group but the last prefixed by "x":
 *   1234067 → `x001/x234/067`.
 */
export const TILE_WIDTH = 256;

/** The "tlog-tiles" path encoding of a tile index. */
export function encodeTileIndex(n: number): string {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError('tile index must be a non-negative integer');
  const groups: string[] = [];
  let rest = n;
  do {
    groups.unshift(String(rest % 1000).padStart(3, '0'));
    rest = Math.floor(rest / 1000);
  } while (rest > 0);
  return groups.map((g, i) => (i < groups.length - 1 ? `x${g}` : g)).join('/');
}

function widthSuffix(width: number): string {
  if (!Number.isInteger(width) || width < 1 || width > TILE_WIDTH)
    throw new RangeError('tile width must be 1-256');
  return width === TILE_WIDTH ? '' : `.p/${width}`;
}

export function hashTilePath(level: number, index: number, width = TILE_WIDTH): string {
  return `tile/${level}/${encodeTileIndex(index)}${widthSuffix(width)}`;
}

export function entryBundlePath(index: number, width = TILE_WIDTH): string {
  return `tile/entries/${encodeTileIndex(index)}${widthSuffix(width)}`;
}

/** Concatenates 32-byte hashes into a tile. */
export function encodeHashTile(hashes: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(hashes.length * 32);
  hashes.forEach((h, i) => {
    out.set(h, i * 32);
  });
  return out;
}

/** Splits a hash tile; undefined when its length is not a whole number of hashes. */
export function decodeHashTile(bytes: Uint8Array): Uint8Array[] | undefined {
  if (bytes.length % 32 !== 0 || bytes.length > TILE_WIDTH * 32) return undefined;
  const out: Uint8Array[] = [];
  for (let i = 0; i < bytes.length; i += 32) out.push(bytes.subarray(i, i + 32));
  return out;
}

export function encodeEntryBundle(entries: readonly Uint8Array[]): Uint8Array {
  const total = entries.reduce((n, e) => n + 2 + e.length, 0);
  const out = new Uint8Array(total);
  let at = 0;
  for (const e of entries) {
    if (e.length > 0xffff) throw new RangeError('an entry in a bundle must be below 64 KiB');
    out[at] = e.length >> 8;
    out[at + 1] = e.length & 0xff;
    out.set(e, at + 2);
    at += 2 + e.length;
  }
  return out;
}

/** Splits an entry bundle; undefined when the framing is broken. */
export function decodeEntryBundle(bytes: Uint8Array): Uint8Array[] | undefined {
  const out: Uint8Array[] = [];
  let at = 0;
  while (at < bytes.length) {
    if (at + 2 > bytes.length) return undefined;
    const len = ((bytes[at] as number) << 8) | (bytes[at + 1] as number);
    if (at + 2 + len > bytes.length) return undefined;
    out.push(bytes.subarray(at + 2, at + 2 + len));
    at += 2 + len;
  }
  return out.length > TILE_WIDTH ? undefined : out;
}
