/**
 * A c2sp.org/tlog-tiles client that reads nothing but the tiles, the entry bundles and the
 * checkpoint (never the log's own objects): it checks a checkpoint's signature, recomputes its
 * root from the hash tiles of exactly the widths that size implies (partial `.p/<W>` tiles
 * included), and checks every entry bundle (full and partial) against its level-0 tile. This is
 * what a third party holding only a copy of the tiles can do, and the test of the layout.
 */
import { CheckpointError, openCheckpoint, type SignedCheckpoint } from '../../core/checkpoint.js';
import { CodedError } from '../../core/errors.js';
import { hashChildren, hashLeaf, rootAt } from '../../core/merkle.js';
import {
  decodeEntryBundle,
  decodeHashTile,
  entryBundlePath,
  hashTilePath,
  TILE_WIDTH,
} from '../../core/tiles.js';

const TilesClientErrorCodes = [
  'CHECKPOINT_INVALID',
  'TILE_MISSING',
  'BUNDLE_MISSING',
  'BUNDLE_MISMATCH',
  'ROOT_MISMATCH',
] as const;
export type TilesClientErrorCode = (typeof TilesClientErrorCodes)[number];

export class TilesClientError extends CodedError<TilesClientErrorCode> {
  override readonly name = 'TilesClientError';
}

/** Reads one object of the log by its tlog-tiles path (`checkpoint`, `tile/…`); undefined when absent. */
export type TileFetch = (path: string) => Promise<Uint8Array | undefined>;

/** The width of tile N at level L for a tree of `size` leaves (tlog-tiles "Partial tiles"). */
function widthAt(size: number, level: number, index: number): number {
  return Math.min(TILE_WIDTH, Math.floor(size / TILE_WIDTH ** level) - index * TILE_WIDTH);
}

/**
 * Verifies the checkpoint `note` (default: the log's `checkpoint` object) from the tiles alone;
 * returns it opened. `keys` are the log keys (PEM) the client trusts.
 */
export async function verifyFromTiles(
  get: TileFetch,
  log: { origin: string; keys: readonly string[] },
  note?: string,
): Promise<SignedCheckpoint> {
  let text = note;
  if (text === undefined) {
    const b = await get('checkpoint');
    if (b === undefined) throw new TilesClientError('CHECKPOINT_INVALID', 'the log publishes no checkpoint');
    text = Buffer.from(b).toString('utf8');
  }
  let cp: SignedCheckpoint | undefined;
  for (const publicKeyPem of log.keys) {
    try {
      cp = openCheckpoint(text, { name: log.origin, publicKeyPem });
      break;
    } catch (e) {
      if (!(e instanceof CheckpointError) || e.code === 'CHECKPOINT_SIGNATURE_INVALID') {
        throw new TilesClientError('CHECKPOINT_INVALID', 'the checkpoint signature does not verify');
      }
    }
  }
  if (cp === undefined)
    throw new TilesClientError('CHECKPOINT_INVALID', 'the checkpoint is not signed by a trusted key');
  const size = cp.size;

  const tiles = new Map<string, Uint8Array[]>();
  const tile = async (level: number, index: number): Promise<Uint8Array[]> => {
    const w = widthAt(size, level, index);
    const path = hashTilePath(level, index, w);
    let hashes = tiles.get(path);
    if (hashes === undefined) {
      const b = await get(path);
      const decoded = b === undefined ? undefined : decodeHashTile(b);
      if (decoded === undefined || decoded.length !== w) {
        throw new TilesClientError('TILE_MISSING', `hash tile ${path} is missing or not ${w} hashes`);
      }
      hashes = decoded;
      tiles.set(path, hashes);
    }
    return hashes;
  };
  const node = async (level: number, index: number): Promise<Uint8Array> => {
    if (level % 8 === 0) {
      const hashes = await tile(level / 8, Math.floor(index / TILE_WIDTH));
      return hashes[index % TILE_WIDTH] as Uint8Array;
    }
    return hashChildren(await node(level - 1, 2 * index), await node(level - 1, 2 * index + 1));
  };
  const root = await rootAt(size, node);
  if (!Buffer.from(root).equals(cp.root)) {
    throw new TilesClientError(
      'ROOT_MISMATCH',
      `the hash tiles give another root than the checkpoint at size ${size}`,
    );
  }
  for (let n = 0; n * TILE_WIDTH < size; n++) {
    const w = widthAt(size, 0, n);
    const path = entryBundlePath(n, w);
    const b = await get(path);
    const items = b === undefined ? undefined : decodeEntryBundle(b);
    if (items === undefined || items.length !== w) {
      throw new TilesClientError('BUNDLE_MISSING', `entry bundle ${path} is missing or not ${w} entries`);
    }
    const leaves = await tile(0, n);
    for (let i = 0; i < w; i++) {
      if (!Buffer.from(hashLeaf(items[i] as Uint8Array)).equals(leaves[i] as Uint8Array)) {
        throw new TilesClientError(
          'BUNDLE_MISMATCH',
          `entry ${n * TILE_WIDTH + i} in ${path} does not hash to its leaf`,
        );
      }
    }
  }
  return cp;
}
