/**
 * The layout of the audit log: the key of every object it keeps under its prefix (default `log/`)
 * of the `audit` bucket, and how a batch object holds its entries. Nothing here reads or writes.
 *
 *   entries/000/000/000/001/234   the batch starting at entry 1234: its entries' RFC 8785 bytes,
 *                                 one a line (WORM, created only if absent: the sequencing write)
 *   tile/<L>/<N>[.p/<W>]          c2sp.org/tlog-tiles hash tiles (WORM, written once)
 *   tile/entries/<N>[.p/<W>]      c2sp.org/tlog-tiles entry bundles of 256 (WORM)
 *   checkpoint                    the latest checkpoint (tlog-tiles; overwritten at each checkpoint)
 *   checkpoints/<size, 15 digits> signed C2SP checkpoints (WORM)
 *   head                          {"size"}: a hint only; every reader checks it
 */
import { encodeTileIndex, entryBundlePath, hashTilePath } from '../core/tiles.js';

/** The log's identity when none is given: first line of every checkpoint and the key name. */
export const DEFAULT_ORIGIN = 'veritrail.local/audit';
export const DEFAULT_BUCKET = 'audit';
export const DEFAULT_PREFIX = 'log/';

function pad15(n: number): string {
  return String(n).padStart(15, '0');
}

export class LogLayout {
  constructor(readonly prefix: string) {}

  /** The batch object whose first entry is `seq`. */
  entryKey(seq: number): string {
    return `${this.prefix}entries/${pad15(seq).replace(/(\d{3})(?=\d)/g, '$1/')}`;
  }

  /** Where the batch objects live. */
  get entriesPrefix(): string {
    return `${this.prefix}entries/`;
  }

  /** The folder of the batch objects starting in [1000·group, 1000·(group+1)). */
  entryGroupPrefix(group: number): string {
    return `${this.entryKey(group * 1000).slice(0, -3)}`;
  }

  checkpointKey(size: number): string {
    return `${this.prefix}checkpoints/${pad15(size)}`;
  }

  get checkpointsPrefix(): string {
    return `${this.prefix}checkpoints/`;
  }

  /** The latest checkpoint, which c2sp.org/tlog-tiles requires. */
  get checkpointObjectKey(): string {
    return `${this.prefix}checkpoint`;
  }

  get headKey(): string {
    return `${this.prefix}head`;
  }

  /** The key of a tlog-tiles path (`tile/…`, `checkpoint`). */
  key(path: string): string {
    return `${this.prefix}${path}`;
  }

  get tilesPrefix(): string {
    return `${this.prefix}tile/`;
  }

  entryBundleKey(index: number, width?: number): string {
    return `${this.prefix}${entryBundlePath(index, width)}`;
  }

  hashTileKey(level: number, index: number, width?: number): string {
    return `${this.prefix}${hashTilePath(level, index, width)}`;
  }

  /** The folder of the partial hash tiles of tile `group` at tile level `level`. */
  partialTilesPrefix(level: number, group: number): string {
    return `${this.prefix}tile/${level}/${encodeTileIndex(group)}.p/`;
  }
}

/** A batch object: the canonical bytes of its entries, one per line (RFC 8785 output has no raw newline). */
export function splitBatch(bytes: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  let at = 0;
  for (;;) {
    const nl = bytes.indexOf(0x0a, at);
    if (nl < 0) {
      out.push(bytes.subarray(at));
      return out;
    }
    out.push(bytes.subarray(at, nl));
    at = nl + 1;
  }
}

export function joinBatch(items: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(items.reduce((n, e) => n + e.length + 1, -1));
  let at = 0;
  for (const [i, e] of items.entries()) {
    if (i > 0) out[at++] = 0x0a;
    out.set(e, at);
    at += e.length;
  }
  return out;
}
