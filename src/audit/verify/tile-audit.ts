/**
 * The hash tiles part of `audit verify`: stored tiles above level 0 against the hashes recomputed
 * from the entries, and which of their disagreements no entry problem explains.
 */
import { TILE_WIDTH } from '../../core/tiles.js';
import type { LogReader } from '../reader.js';
import type { ChainVerifier } from './chain-verifier.js';

/**
 * Checks stored hash tiles above level 0 (full and partial, c2sp.org/tlog-tiles) against the
 * hashes recomputed from the entries, one tile group at a time: memory is ≤ 256 hashes a level.
 */
export class TileAudit {
  private readonly open = new Map<number, { group: number; hashes: Uint8Array[] }>();
  private readonly done: { level: number; group: number; hashes: Uint8Array[] }[] = [];
  private readonly suspects: { seq: number; span: number; detail: string }[] = [];

  constructor(private readonly log: LogReader) {}

  /** A tile hash over entries [seq, seq + span) disagrees with the recomputed one. */
  suspect(seq: number, span: number, detail: string): void {
    if (this.suspects.length < 1000) this.suspects.push({ seq, span, detail });
  }

  /**
   * Reports the tile problems no entry problem explains: hashes recomputed over an altered entry
   * differ from the (correct) stored tile, and that is the entry's problem.
   */
  reportTo(judge: ChainVerifier): void {
    for (const s of this.suspects) {
      if (!judge.entryProblemIn(s.seq, s.seq + s.span)) judge.note(s.seq, 'TILE_ALTERED', s.detail);
    }
  }

  readonly onNode = (level: number, index: number, hash: Uint8Array): void => {
    const tileLevel = level / 8;
    const group = Math.floor(index / TILE_WIDTH);
    let g = this.open.get(tileLevel);
    if (g !== undefined && g.group !== group) {
      this.done.push({ level: tileLevel, ...g });
      g = undefined;
    }
    if (g === undefined) {
      g = { group, hashes: [] };
      this.open.set(tileLevel, g);
    }
    g.hashes.push(hash);
    if (g.hashes.length === TILE_WIDTH) {
      this.done.push({ level: tileLevel, ...g });
      this.open.delete(tileLevel);
    }
  };

  async drain(): Promise<void> {
    for (let d = this.done.shift(); d !== undefined; d = this.done.shift()) await this.check(d);
  }

  async finish(): Promise<void> {
    for (const [level, g] of this.open) this.done.push({ level, ...g });
    this.open.clear();
    await this.drain();
  }

  private async check(d: { level: number; group: number; hashes: Uint8Array[] }): Promise<void> {
    const span = TILE_WIDTH ** d.level;
    for (const t of await this.log.hashTiles(d.level, d.group)) {
      // Widths beyond what was recomputed belong to entries that are missing: reported as such.
      if (t.width > d.hashes.length) continue;
      for (let i = 0; i < t.width; i++) {
        const stored = t.bytes.subarray(i * 32, i * 32 + 32);
        const h = d.hashes[i] as Uint8Array;
        if (t.bytes.length !== t.width * 32 || !Buffer.from(h).equals(stored)) {
          const seq = (d.group * TILE_WIDTH + i) * span;
          this.suspect(
            seq,
            span,
            `hash tile ${t.key.slice(t.key.indexOf('tile/'))} disagrees with the hash recomputed over entries ${seq}..${seq + span - 1}`,
          );
          break;
        }
      }
    }
  }
}
