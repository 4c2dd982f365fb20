/**
 * Making the log's checkpoints: the one part of the log that holds the signer. A checkpoint first
 * records a change of the log key in the log (`audit.key-rotated`), then, unless one is stored at
 * that size already, repairs the tile seals a crash lost (oldest first), writes the partial tiles
 * of its size, signs the C2SP checkpoint, asks the witnesses to cosign it (c2sp.org/tlog-witness,
 * with a consistency proof from the size each last cosigned) and stores it (WORM) with their
 * cosignatures, then `checkpoint` and the `head` hint.
 */
import { keyIdOf, parseSignedNote, type SignedCheckpoint, signCheckpoint } from '../core/checkpoint.js';
import { addSignatureLines, verifyCosignatures } from '../core/cosignature.js';
import { consistencyProof, rootAt } from '../core/merkle.js';
import { TILE_WIDTH } from '../core/tiles.js';
import type { AuditEntry, AuditEventInput, Signer } from '../ports.js';
import type { Integrator } from './integrate.js';
import type { LogLayout } from './layout.js';
import type { LogObjects } from './objects.js';
import { type LogReader, noLogKey } from './reader.js';
import { addCheckpointBody } from './witness/core.js';
import type { WitnessClient } from './witness/http.js';

/** One witness's answer to a checkpoint. */
export type WitnessOutcome =
  | { witness: string; ok: true; line: string }
  | { witness: string; ok: false; status: number; detail: string };

/** What a checkpoint needs of the appender: the size of the log, its seals done, and an append. */
export interface LogTail {
  size(): Promise<number>;
  settle(): Promise<void>;
  append(event: AuditEventInput): Promise<AuditEntry>;
}

export interface CheckpointerOptions {
  objects: LogObjects;
  reader: LogReader;
  integrator: Integrator;
  tail: LogTail;
  /** The log's identity: first line of every checkpoint and the signature's key name. */
  origin: string;
  /** Signs checkpoints; without it `checkpoint` refuses (USAGE). */
  signer?: Signer;
  /** Witnesses asked to cosign every checkpoint (c2sp.org/tlog-witness). */
  witnesses?: readonly WitnessClient[];
}

export class Checkpointer {
  private readonly objects: LogObjects;
  private readonly layout: LogLayout;
  private readonly reader: LogReader;
  private readonly integrator: Integrator;
  private readonly tail: LogTail;
  private readonly origin: string;
  private readonly signer: Signer | undefined;
  private readonly witnesses: readonly WitnessClient[];
  /** The size each witness last cosigned, as this process knows it (else learnt from a 409). */
  private readonly witnessSizes = new Map<string, number>();

  constructor(options: CheckpointerOptions) {
    this.objects = options.objects;
    this.layout = options.objects.layout;
    this.reader = options.reader;
    this.integrator = options.integrator;
    this.tail = options.tail;
    this.origin = options.origin;
    this.signer = options.signer;
    this.witnesses = options.witnesses ?? [];
  }

  private requireSigner(): Signer {
    if (this.signer === undefined) throw noLogKey();
    return this.signer;
  }

  private async trusted(publicKeyPem?: string): Promise<{ name: string; publicKeyPem: string }> {
    return { name: this.origin, publicKeyPem: publicKeyPem ?? (await this.requireSigner().publicKeyPem()) };
  }

  /**
   * Signs and stores (WORM) a checkpoint of the whole log as it is now, after asking the
   * configured witnesses to cosign it (their cosignatures are stored in the note). Also writes
   * what c2sp.org/tlog-tiles requires for a client that reads only tiles: the partial level-0 tile
   * and partial entry bundle of the last, incomplete tile, and `<prefix>checkpoint`.
   */
  async checkpoint(): Promise<SignedCheckpoint & { treeSize: number; witnessed: WitnessOutcome[] }> {
    return this.makeCheckpoint();
  }

  private async makeCheckpoint(): Promise<
    SignedCheckpoint & { treeSize: number; witnessed: WitnessOutcome[] }
  > {
    const signer = this.requireSigner();
    const trusted = await this.trusted();
    await this.recordKeyRotation(trusted.publicKeyPem);
    await this.tail.settle();
    const size = await this.tail.size();
    const stored = await this.reader.readCheckpoint(size, trusted.publicKeyPem);
    if (stored !== undefined) return { ...stored, treeSize: size, witnessed: [] };
    // Repair tile seals lost to a crash (integration runs behind the appends), oldest first.
    const lost: number[] = [];
    for (let t = Math.floor(size / TILE_WIDTH) - 1; t >= 0; t--) {
      if (await this.integrator.sealed(t)) break;
      lost.unshift(t);
    }
    for (const t of lost) await this.integrator.sealTiles((t + 1) * TILE_WIDTH).catch(() => undefined);
    await this.integrator.writePartials(size);
    const root = await rootAt(size, this.reader.nodes(size).hash);
    let signed = await signCheckpoint(
      { origin: this.origin, size, root, extensions: [] },
      { name: this.origin, publicKeyPem: trusted.publicKeyPem, sign: (m) => signer.sign(m) },
    );
    const witnessed = await this.askWitnesses(signed);
    const lines = witnessed.flatMap((w) => (w.ok ? [w.line] : []));
    if (lines.length > 0) signed = { ...signed, note: addSignatureLines(signed.note, lines) };
    if (
      !(await this.objects.putOnce(this.layout.checkpointKey(size), new TextEncoder().encode(signed.note)))
    ) {
      const other = await this.reader.readCheckpoint(size, trusted.publicKeyPem);
      if (other !== undefined) return { ...other, treeSize: size, witnessed };
    }
    await this.objects.put(this.layout.checkpointObjectKey, new TextEncoder().encode(signed.note));
    await this.objects.writeHint(size);
    return { ...signed, treeSize: size, witnessed };
  }

  /** What each witness said: `line` is its cosignature, else why not. */
  private async askWitnesses(signed: SignedCheckpoint): Promise<WitnessOutcome[]> {
    return Promise.all(
      this.witnesses.map(async (w): Promise<WitnessOutcome> => {
        const name = w.key.name;
        let old = this.witnessSizes.get(name) ?? 0;
        try {
          for (let attempt = 0; attempt < 3; attempt++) {
            if (old > signed.size) {
              return {
                witness: name,
                ok: false,
                status: 409,
                detail: `the witness has seen size ${old}, larger than this log's ${signed.size}: the log was truncated or rolled back`,
              };
            }
            const proof =
              old === 0 || old === signed.size
                ? []
                : await consistencyProof(old, signed.size, this.reader.nodes(signed.size).hash);
            const r = await w.submit(addCheckpointBody(old, proof, signed.note));
            if (r.status === 409 && /^\d+\n?$/.test(r.body)) {
              old = Number(r.body.trim());
              continue;
            }
            if (r.status !== 200)
              return { witness: name, ok: false, status: r.status, detail: r.body.trim() };
            const line = r.body.split('\n').find((l) => l.startsWith(`\u2014 ${name} `));
            if (
              line === undefined ||
              verifyCosignatures(addSignatureLines(signed.note, [line]), [w.key]).length !== 1
            ) {
              return {
                witness: name,
                ok: false,
                status: r.status,
                detail: 'the answer carries no valid cosignature',
              };
            }
            this.witnessSizes.set(name, signed.size);
            return { witness: name, ok: true, line };
          }
          return { witness: name, ok: false, status: 409, detail: 'the witness kept changing its size' };
        } catch (e) {
          return { witness: name, ok: false, status: 0, detail: e instanceof Error ? e.message : String(e) };
        }
      }),
    );
  }

  /**
   * Key rotation is recorded in the log itself: when the checkpoint key differs from the key that
   * signed the latest stored checkpoint, an `audit.key-rotated` entry names both key IDs before
   * the first checkpoint under the new key.
   */
  private async recordKeyRotation(publicKeyPem: string): Promise<void> {
    let last: number | undefined;
    for await (const s of this.reader.checkpointSizes()) last = s;
    if (last === undefined) return;
    const b = await this.objects.read(this.layout.checkpointKey(last));
    if (b === undefined) return;
    let previous: string | undefined;
    try {
      const sig = parseSignedNote(Buffer.from(b).toString('utf8')).signatures.find(
        (x) => x.name === this.origin,
      );
      previous = sig === undefined ? undefined : Buffer.from(sig.keyId).toString('hex');
    } catch {
      return;
    }
    const current = Buffer.from(keyIdOf(publicKeyPem)).toString('hex');
    if (previous === undefined || previous === current) return;
    await this.tail.append({
      eventId: `audit/key-rotated/${previous}/${current}`,
      pipeline: '-',
      runId: '-',
      step: 'audit',
      type: 'audit.key-rotated',
      outcome: 'info',
      actor: 'veritrail',
      detail: { fromKeyId: previous, toKeyId: current, publicKeyPem },
    });
  }
}
