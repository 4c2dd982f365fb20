/** Types of tile-hash.mjs (plain JavaScript, so that its worker runs without a TypeScript loader). */

/** Byte offsets in a bundle's slot of shared memory (leaf-pool.ts). */
export declare const SLOT_FIRST_PREV: number;
export declare const SLOT_OFFSETS: number;
export declare const SLOT_LENGTHS: number;
export declare const SLOT_BYTES: number;

export interface TileHashes {
  /** 256 leaf hashes. */
  leaves: Uint8Array;
  /** The tile's interior nodes, level 1 (128 hashes) up to level 8 (its root), 255 in all. */
  nodes: Uint8Array;
  /**
   * The first entry whose chain fields are not as the appender writes them (top-level `seq` =
   * its sequence number, top-level `prev` = the hex leaf hash of the entry before, for entries
   * after the first), or -1 when all are.
   */
  firstBad: number;
  /** The 32 bytes the first entry's `prev` spells (to compare with the previous tile), or none. */
  firstPrev: Uint8Array | undefined;
}

/**
 * Hashes and chain-checks one bundle: entry i lies at `bytes[starts[i] + 2, + lens[i])`, its
 * sequence number is `seq0 + i`. Overwrites each entry's low length byte with the leaf prefix
 * 0x00. Writes the hashes into `into` when given (at least (2n − 1) × 32 bytes).
 */
export declare function hashTile(
  bytes: Uint8Array,
  starts: Uint32Array,
  lens: Uint32Array,
  seq0: number,
  into?: Buffer,
): TileHashes;
