/**
 * `audit verify` over a stored log: reads it through a LogReader (so with the log's public key,
 * never a signer) and re-derives the chain and the Merkle tree from the stored entries (the fast
 * lane, else ChainVerifier to name each problem), checks every checkpoint's signature and root, the
 * RFC 9162 §2.1.4 consistency of each checkpoint with the one before, every hash tile against
 * recomputed hashes (TileAudit), that every object tlog-tiles requires is there, every sealed
 * entry object against its bundle, and the witnesses' cosignatures and views.
 */
import { CheckpointError, keyIdOf, openCheckpoint, type SignedCheckpoint } from '../../core/checkpoint.js';
import { verifyCosignatures, type WitnessKey } from '../../core/cosignature.js';
import { isVeritrailError, VeritrailError } from '../../core/errors.js';
import { consistencyProof, hashLeaf, ProofError, rootAt, verifyConsistencyProof } from '../../core/merkle.js';
import { entryBundlePath, hashTilePath, TILE_WIDTH } from '../../core/tiles.js';
import { bundleItem, type LogReader, type Segment } from '../reader.js';
import { openWitnessView } from '../witness/http.js';
import { ChainVerifier } from './chain-verifier.js';
import { FastChainCheck } from './fast-chain-check.js';
import { hashTileHere, LeafPool, type TileHashes } from './leaf-pool.js';
import type { AuditProblem, CheckpointInput, VerifyReport } from './report.js';
import { TileAudit } from './tile-audit.js';

export interface VerifyOptions {
  /** The log key, when only one is trusted (default: the reader's). */
  publicKeyPem?: string;
  /** Every log key an auditor trusts (PEM), old and new across rotations; overrides publicKeyPem. */
  trustedKeys?: readonly string[];
  maxProblems?: number;
  entryObjects?: boolean;
  /** Witnesses whose cosignatures count, and (with `latest`) whose own view is compared. */
  witnesses?: readonly WitnessView[];
  /** Cosignatures the latest checkpoint needs (default 1 when witnesses are given). */
  quorum?: number;
}

export interface WitnessView {
  key: WitnessKey;
  latest?(origin: string): Promise<string | undefined>;
}

/** `audit verify` of the log `reader` reads: see `LogVerifier.verify`. */
export function verifyLog(reader: LogReader, options: VerifyOptions = {}): Promise<VerifyReport> {
  return new LogVerifier(reader).verify(options);
}

export class LogVerifier {
  constructor(private readonly log: LogReader) {}

  /**
   * Re-derives the chain and the tree from the stored entries, checks every checkpoint's
   * signature and root, the RFC 9162 §2.1.4 consistency of each checkpoint with the one before,
   * every hash tile against recomputed hashes, and (unless `entryObjects: false`) every sealed
   * entry object against its bundle; names each problem by sequence number. Streams: memory is
   * bounded by the number of checkpoints, not of entries.
   *
   * A fast lane hashes the log without parsing it; only when it meets an anomaly is the log
   * walked again by `ChainVerifier`, which parses every entry to name each problem.
   */
  async verify(options: VerifyOptions = {}): Promise<VerifyReport> {
    const keys =
      options.trustedKeys !== undefined && options.trustedKeys.length > 0
        ? options.trustedKeys
        : [(await this.log.trusted(options.publicKeyPem)).publicKeyPem];
    const open = (note: string): SignedCheckpoint => {
      let first: unknown;
      for (const publicKeyPem of keys) {
        try {
          return openCheckpoint(note, { name: this.log.origin, publicKeyPem });
        } catch (e) {
          if (e instanceof CheckpointError && e.code === 'CHECKPOINT_SIGNATURE_INVALID') throw e;
          first ??= e;
        }
      }
      throw first;
    };
    const checkpoints: CheckpointInput[] = [];
    for await (const size of this.log.checkpointSizes()) {
      const b = await this.log.objects.read(this.log.layout.checkpointKey(size));
      if (b === undefined) continue;
      try {
        checkpoints.push({ size, checkpoint: open(Buffer.from(b).toString('utf8')) });
      } catch (e) {
        checkpoints.push({
          size,
          error: e instanceof CheckpointError ? `${e.code}: ${e.message}` : String(e),
        });
      }
    }
    const maxSize = checkpoints.reduce((m, c) => Math.max(m, c.size), 0);
    const entryObjects = options.entryObjects !== false;

    let judge = new ChainVerifier(options.maxProblems);
    let tiles = new TileAudit(this.log);
    const fast = new FastChainCheck(checkpoints, tiles.onNode);
    const clean = await this.walk(maxSize, entryObjects, judge, tiles, {
      entry: (seq, bytes, leaf) => fast.push(seq, bytes, leaf),
      tile: (start, hashes, entry) => fast.pushTile(start, hashes, entry),
    });
    if (clean && fast.finish()) {
      judge.absorbClean(fast.size, checkpoints.length);
    } else {
      judge = new ChainVerifier(options.maxProblems, (l, i, h) => tiles.onNode(l, i, h));
      tiles = new TileAudit(this.log);
      for (const c of checkpoints) judge.addCheckpoint(c);
      const slow = judge;
      await this.walk(maxSize, entryObjects, judge, tiles, {
        entry: (seq, bytes, leaf) => {
          slow.push(seq, bytes, leaf);
          return true;
        },
        tile: (start, hashes, entry) => {
          // A copy of each leaf hash: the judge keeps them, and the tile's memory is reused.
          for (let i = 0; i < TILE_WIDTH; i++)
            slow.push(start + i, entry(i), hashes.leaves.slice(i * 32, i * 32 + 32));
          return true;
        },
      });
    }
    await tiles.finish();
    judge.settle();
    tiles.reportTo(judge);
    await this.checkConsistency(checkpoints, judge);
    const report = judge.finish();
    const missing = await this.checkTilesPresent(checkpoints, report);
    if (missing.length > 0) {
      report.problems.push(...missing);
      report.problems.sort((a, b) => a.seq - b.seq);
      report.ok = false;
    }
    if (options.trustedKeys !== undefined)
      report.trustedKeys = keys.map((k) => Buffer.from(keyIdOf(k)).toString('hex'));
    if (options.witnesses !== undefined && options.witnesses.length > 0) {
      await this.checkWitnesses(checkpoints, options.witnesses, options.quorum ?? 1, report);
    }
    return report;
  }

  /**
   * Invariant 10: the latest checkpoint must carry `quorum` cosignatures from the given witnesses,
   * and no witness may have cosigned a larger size (truncation, rollback) or another root at a
   * size this log holds (fork).
   */
  private async checkWitnesses(
    checkpoints: readonly CheckpointInput[],
    witnesses: readonly WitnessView[],
    quorum: number,
    report: VerifyReport,
  ): Promise<void> {
    const problems: AuditProblem[] = [];
    let latest: SignedCheckpoint | undefined;
    for (const c of checkpoints)
      if (c.checkpoint !== undefined && c.checkpoint.size === c.size) latest = c.checkpoint;
    const size = latest?.size ?? 0;
    let cosigned: string[] = [];
    if (latest !== undefined) {
      try {
        cosigned = verifyCosignatures(
          latest.note,
          witnesses.map((w) => w.key),
        ).map((c) => c.witness);
      } catch (e) {
        problems.push({
          seq: Math.max(0, size - 1),
          code: 'CHECKPOINT_FORGED',
          detail: e instanceof Error ? e.message : String(e),
        });
      }
    }
    report.witnesses = witnesses.map((w) => ({
      witness: w.key.name,
      cosigned: cosigned.includes(w.key.name),
    }));
    if (cosigned.length < quorum) {
      problems.push({
        seq: Math.max(0, size - 1),
        code: 'WITNESS_QUORUM_MISSING',
        detail: `the latest checkpoint (size ${size}) carries ${cosigned.length} of the ${quorum} witness cosignatures required`,
      });
    }
    for (const [i, w] of witnesses.entries()) {
      if (w.latest === undefined) continue;
      const note = await w.latest(this.log.origin);
      if (note === undefined) continue;
      let view: { size: number; root: Uint8Array };
      try {
        view = openWitnessView(note, w.key);
      } catch (e) {
        problems.push({
          seq: Math.max(0, size - 1),
          code: 'CHECKPOINT_FORGED',
          detail: `witness ${w.key.name}: ${e instanceof Error ? e.message : String(e)}`,
        });
        continue;
      }
      const entry = report.witnesses[i];
      if (entry !== undefined) entry.witnessSize = view.size;
      if (view.size > size) {
        problems.push({
          seq: view.size - 1,
          code: 'LOG_ROLLED_BACK',
          detail: `witness ${w.key.name} cosigned size ${view.size}, but the log's latest checkpoint is at ${size}: entries were truncated or the state was rolled back`,
        });
        continue;
      }
      let root: Uint8Array | undefined;
      try {
        root = await rootAt(view.size, this.log.nodes(size).hash);
      } catch {
        root = undefined;
      }
      if (root === undefined || !Buffer.from(root).equals(view.root)) {
        problems.push({
          seq: Math.max(0, view.size - 1),
          code: 'LOG_FORKED',
          detail: `witness ${w.key.name} cosigned another root at size ${view.size}: this log is a fork of the one it saw`,
        });
      }
    }
    if (problems.length > 0) {
      report.problems.push(...problems);
      report.ok = false;
    }
  }

  /**
   * Streams the log into `push` (false stops the walk: the fast lane gave up). Checks level-0
   * tiles and sealed entry objects against each bundle on the way; returns whether it finished.
   */
  private async walk(
    until: number,
    entryObjects: boolean,
    judge: ChainVerifier,
    tiles: TileAudit,
    sink: {
      entry(seq: number, bytes: Uint8Array, leaf: Uint8Array): boolean;
      tile(start: number, hashes: TileHashes, entry: (i: number) => Uint8Array): boolean;
    },
  ): Promise<boolean> {
    // Bundles are hashed ahead on worker threads once the log is big enough to pay for them
    // (~30 ms to start); the tree here then takes one hash per 256 entries. Once they run,
    // bundles are read straight into the pool's shared memory.
    let pool: LeafPool | undefined;
    const it = this.log.segments(until, (size) => pool?.take(size))[Symbol.asyncIterator]();
    const ahead: { seg: Segment; hashed?: Promise<TileHashes | undefined> }[] = [];
    let bundles = 0;
    let done = false;
    try {
      for (;;) {
        while (!done && ahead.length < LOOKAHEAD) {
          const r = await it.next();
          if (r.done === true) {
            done = true;
            break;
          }
          const seg = r.value;
          let b = seg.bundle;
          if (b === undefined) {
            ahead.push({ seg });
            break;
          }
          bundles += 1;
          if (pool === undefined && bundles === POOL_AFTER_BUNDLES) pool = startPool();
          // Once workers run, this thread only reads, checks and folds (measured faster than taking
          // a share of the hashing: its per-bundle work would hold the workers up). A bundle read
          // before they started is copied into shared memory.
          const workers = pool;
          const slot = workers === undefined || workers.owns(b.buf) ? undefined : workers.take(b.buf.length);
          if (slot !== undefined) {
            slot.set(b.buf);
            b = { ...b, buf: slot };
            seg.bundle = b;
          }
          if (workers === undefined || !workers.owns(b.buf)) {
            ahead.push({ seg });
          } else {
            ahead.push({
              seg,
              hashed: workers.hash(b.buf, b.starts, b.lens, seg.start).catch(() => undefined),
            });
          }
        }
        const next = ahead.shift();
        if (next === undefined) return true;
        const seg = next.seg;
        if (seg.entry !== undefined) {
          if (!sink.entry(seg.start, seg.entry, hashLeaf(seg.entry))) return false;
          continue;
        }
        if (seg.bundle === undefined) continue;
        const objects = entryObjects ? this.readObjects(seg.start) : undefined;
        const bundle = seg.bundle;
        let hashes: TileHashes;
        if (next.hashed !== undefined) {
          const hashed = await next.hashed;
          // A worker that died midway leaves the bundle unchecked: not the log's fault, so stop.
          if (hashed === undefined)
            throw new VeritrailError('TRANSIENT', 'a verification worker failed; retry');
          hashes = hashed;
        } else hashes = hashTileHere(bundle.buf, bundle.starts, bundle.lens, seg.start);
        // The bundle and its hashes may be in a pool slot, reused once released below: what the
        // sink and the checks keep, they copy.
        if (!sink.tile(seg.start, hashes, (i) => bundleItem(bundle, i))) return false;
        if (seg.tile !== undefined) this.checkLeafTile(seg.start, hashes.leaves, seg.tile, tiles);
        if (objects !== undefined) this.checkObjects(seg.start, bundle, await objects, judge);
        pool?.release(bundle.buf);
        await tiles.drain();
      }
    } finally {
      if (!done) await it.return?.(undefined);
      await pool?.close();
    }
  }

  private checkLeafTile(start: number, leaves: Uint8Array, tile: Uint8Array, tiles: TileAudit): void {
    if (Buffer.from(leaves.buffer, leaves.byteOffset, leaves.byteLength).equals(tile)) return;
    for (let i = 0; i < TILE_WIDTH; i++) {
      const a = Buffer.from(leaves.buffer, leaves.byteOffset + i * 32, 32);
      if (tile.length !== TILE_WIDTH * 32 || !a.equals(tile.subarray(i * 32, i * 32 + 32))) {
        tiles.suspect(
          start + i,
          1,
          `the hash tile's leaf hash for entry ${start + i} is not the hash of the entry`,
        );
      }
    }
  }

  private checkObjects(
    start: number,
    bundle: NonNullable<Segment['bundle']>,
    got: (Uint8Array | undefined)[],
    judge: ChainVerifier,
  ): void {
    for (let i = 0; i < got.length; i++) {
      const seq = start + i;
      const o = got[i];
      if (o === undefined) {
        judge.note(
          seq,
          'ENTRY_MISSING',
          `entry object ${seq} was deleted (its copy in entry bundle ${bundle.index} remains)`,
        );
      } else if (!Buffer.from(o.buffer, o.byteOffset, o.byteLength).equals(bundleItem(bundle, i))) {
        judge.note(
          seq,
          'ENTRY_ALTERED',
          `entry object ${seq} differs from its sealed copy in entry bundle ${bundle.index}`,
        );
      }
    }
  }

  private readObjects(start: number): Promise<(Uint8Array | undefined)[]> {
    return this.log.tileEntries(start / TILE_WIDTH, start + TILE_WIDTH);
  }

  /**
   * Every object c2sp.org/tlog-tiles requires for the latest validly signed checkpoint must exist:
   * the full entry bundles and hash tiles below its size (every checkpoint repairs the seals
   * first), the partial ones of its own size, and `checkpoint`. Tiles beyond it may still be
   * on their way (integration lags the appends) and are not required.
   */
  private async checkTilesPresent(
    checkpoints: readonly CheckpointInput[],
    report: VerifyReport,
  ): Promise<AuditProblem[]> {
    // The latest checkpoint that is the log's own: a validly signed root of another history is
    // CHECKPOINT_INCONSISTENT already, and this log never wrote tiles for it.
    const foreign = new Set(
      report.problems.filter((p) => p.code.startsWith('CHECKPOINT_')).map((p) => p.seq + 1),
    );
    let size = 0;
    for (const c of checkpoints) {
      if (c.checkpoint !== undefined && c.checkpoint.size === c.size && !foreign.has(c.size))
        size = Math.max(size, c.size);
    }
    const problems: AuditProblem[] = [];
    if (size === 0) return problems;
    const present = new Set<string>();
    for await (const o of this.log.objects.list(this.log.layout.tilesPrefix))
      present.add(o.key.slice(this.log.layout.prefix.length));
    const missing = (path: string, seq: number, what: string) => {
      if (!present.has(path))
        problems.push({ seq, code: 'TILE_MISSING', detail: `${what} ${path} is missing` });
    };
    for (let level = 0; TILE_WIDTH ** level <= size; level++) {
      const span = TILE_WIDTH ** level;
      const nodes = Math.floor(size / span);
      for (let n = 0; n * TILE_WIDTH < nodes; n++) {
        const w = Math.min(TILE_WIDTH, nodes - n * TILE_WIDTH);
        missing(hashTilePath(level, n, w), n * TILE_WIDTH * span, 'hash tile');
        if (level === 0) missing(entryBundlePath(n, w), n * TILE_WIDTH, 'entry bundle');
      }
    }
    if (!(await this.log.objects.exists(this.log.layout.checkpointObjectKey))) {
      problems.push({
        seq: size - 1,
        code: 'TILE_MISSING',
        detail: 'the latest checkpoint object `checkpoint` is missing',
      });
    }
    return problems;
  }

  /**
   * RFC 9162 §2.1.4: each validly signed checkpoint must extend the one before. The proof comes
   * from the stored tiles; a failure that a tile problem explains is left to that problem, and
   * one that missing entries prevent from being made is left to ENTRY_MISSING.
   */
  private async checkConsistency(
    checkpoints: readonly CheckpointInput[],
    judge: ChainVerifier,
  ): Promise<void> {
    let before: SignedCheckpoint | undefined;
    const failures: [number, number, string][] = [];
    for (const c of checkpoints) {
      const cp = c.checkpoint;
      if (cp === undefined || cp.size !== c.size) continue;
      if (before !== undefined && before.size > 0) {
        try {
          const proof = await consistencyProof(before.size, cp.size, this.log.nodes(cp.size).hash);
          verifyConsistencyProof({
            size1: BigInt(before.size),
            size2: BigInt(cp.size),
            proof,
            root1: before.root,
            root2: cp.root,
          });
        } catch (e) {
          if (e instanceof ProofError) failures.push([before.size, cp.size, e.code]);
          else if (!isVeritrailError(e, 'AUDIT_CORRUPT')) throw e;
        }
      }
      before = cp;
    }
    if (failures.length > 0 && judge.hasUnexplainedTileProblem()) return;
    for (const [size1, size2, code] of failures) {
      judge.note(
        size2 - 1,
        'CHECKPOINT_INCONSISTENT',
        `the signed checkpoint at size ${size2} does not extend the one at size ${size1} (RFC 9162 §2.1.4: ${code})`,
      );
    }
  }
}

/** Bundles read ahead of the one being checked (each ~75 KiB: memory stays bounded). */
const LOOKAHEAD = 8;
const POOL_AFTER_BUNDLES = 4;

function startPool(): LeafPool | undefined {
  try {
    return new LeafPool();
  } catch {
    return undefined;
  }
}
