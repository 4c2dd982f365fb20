/**
 * Integration, behind the appends: sealing the c2sp.org/tlog-tiles objects of the log. When the
 * log reaches a multiple of 256 entries, the tile just completed gets its entry bundle, its
 * level-0 hash tile and one more hash in each tile above (`sealTiles`); each checkpoint adds the
 * partial level-0 tile and partial entry bundle of its size (`writePartials`). Every object is
 * WORM and written once; a seal lost to a crash is made again by the next seal or checkpoint.
 */
import { hashLeaf, rootOf } from '../core/merkle.js';
import { decodeHashTile, encodeEntryBundle, encodeHashTile, TILE_WIDTH } from '../core/tiles.js';
import type { LogLayout } from './layout.js';
import type { LogObjects } from './objects.js';
import type { LogReader } from './reader.js';

export class Integrator {
  private readonly layout: LogLayout;

  constructor(
    private readonly objects: LogObjects,
    private readonly reader: LogReader,
    /** Entries of full tile `t` from the batches the appender holds in memory, if they cover it. */
    private readonly recentTile: (t: number) => (Uint8Array | undefined)[] | undefined,
  ) {
    this.layout = objects.layout;
  }

  /** Writes the entry bundle and hash tiles completed when the log reached `size` (a multiple of 256). */
  async sealTiles(size: number): Promise<void> {
    const t = size / TILE_WIDTH - 1;
    if (!Number.isInteger(t) || t < 0) return;
    // A sealed tile implies every tile before it is sealed (the checkpoint's repair relies on it):
    // a seal lost when its process was killed is made here by whoever seals the next tile.
    if (t > 0 && !(await this.sealed(t - 1))) await this.sealTiles(t * TILE_WIDTH);
    const entries = this.recentTile(t) ?? (await this.reader.tileEntries(t, size));
    if (entries.some((e) => e === undefined)) return;
    const leaves = (entries as Uint8Array[]).map((e) => hashLeaf(e));
    await Promise.all([
      this.objects.putOnce(this.layout.entryBundleKey(t), encodeEntryBundle(entries as Uint8Array[])),
      this.objects.putOnce(this.layout.hashTileKey(0, t), encodeHashTile(leaves)),
    ]);
    // Each tile above is the one written at the previous seal plus one hash: the root of the
    // tile just completed below it. Read that one tile instead of recomputing the level.
    let below = leaves;
    let level = 1;
    let idx = t;
    for (;;) {
      const parent = Math.floor(idx / TILE_WIDTH);
      const width = (idx % TILE_WIDTH) + 1;
      let hashes: Uint8Array[] | undefined;
      if (width === 1) hashes = [];
      else {
        const prev = await this.objects.read(this.layout.hashTileKey(level, parent, width - 1));
        hashes = prev === undefined ? undefined : decodeHashTile(prev);
        if (hashes?.length !== width - 1) hashes = undefined;
      }
      if (hashes === undefined) {
        // The previous partial tile is missing (a seal lost to a crash): from the levels below.
        const nodes = this.reader.nodes(size);
        hashes = [];
        for (let i = 0; i < width - 1; i++) hashes.push(await nodes.node(level * 8, parent * TILE_WIDTH + i));
      }
      hashes.push(rootOf(below));
      await this.objects.putOnce(this.layout.hashTileKey(level, parent, width), encodeHashTile(hashes));
      if (width < TILE_WIDTH) break;
      below = hashes;
      idx = parent;
      level += 1;
    }
  }

  /** Tile `t` is sealed: its entry bundle and its level-0 hash tile are both stored. */
  async sealed(t: number): Promise<boolean> {
    return (
      (await this.objects.exists(this.layout.entryBundleKey(t))) &&
      (await this.objects.exists(this.layout.hashTileKey(0, t)))
    );
  }

  /** tlog-tiles partial level-0 tile and partial entry bundle for a size that is not a multiple of 256. */
  async writePartials(size: number): Promise<void> {
    const t = Math.floor(size / TILE_WIDTH);
    const w = size % TILE_WIDTH;
    if (w === 0) return;
    const entries = await this.reader.tileEntries(t, size);
    if (entries.some((e) => e === undefined)) return;
    const items = entries as Uint8Array[];
    await this.objects.putOnce(this.layout.entryBundleKey(t, w), encodeEntryBundle(items));
    await this.objects.putOnce(
      this.layout.hashTileKey(0, t, w),
      encodeHashTile(items.map((e) => hashLeaf(e))),
    );
  }
}
