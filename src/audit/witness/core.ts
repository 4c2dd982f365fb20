/**
 * A c2sp.org/tlog-witness witness: for each log it knows (origin → trusted log keys) it keeps the
 * latest checkpoint it cosigned, and cosigns a new one only after checking, atomically with the
 * update of its state, that the submitted old size is the size it holds and that a consistency
 * proof leads from it to the new checkpoint (RFC 6962 §2.1.2). So it never cosigns a rollback, a
 * truncation or a fork of a log it has seen.
 *
 * Status codes are the spec's: 400 bad request, 403 no valid trusted log signature, 404 unknown
 * origin, 409 old size ≠ the witness's size (body: its size, `text/x.tlog.size`), 422 a proof or
 * root that does not hold.
 */
import {
  type Checkpoint,
  CheckpointError,
  openCheckpoint,
  parseCheckpointText,
  parseSignedNote,
} from '../../core/checkpoint.js';
import { addSignatureLines, type WitnessKey } from '../../core/cosignature.js';
import { EMPTY_ROOT, ProofError, verifyConsistencyProof } from '../../core/merkle.js';
import { type Cosigner, cosignatureLine, ed25519Cosigner } from './cosigner.js';

export interface WitnessRecord {
  size: number;
  /** base64 root hash. */
  root: string;
  /** The checkpoint as cosigned: the log's signature(s) and this witness's cosignature. */
  note: string;
}

/**
 * Where a witness keeps its state: one record per log origin. `set` is a compare-and-set, so that
 * witnesses sharing one store (several Lambda instances on one DynamoDB table) check and update
 * as one step, as tlog-witness requires ("checking the old size against the latest checkpoint and
 * persisting the new checkpoint must be performed atomically").
 */
export interface WitnessStore {
  get(origin: string): Promise<WitnessRecord | undefined>;
  /**
   * Stores `record` only if the origin's record is still `previous` (the same size and root; none
   * at all when `previous` is undefined), atomically, durably, before it returns true. Returns
   * false, storing nothing, when another writer changed the record in between.
   */
  set(origin: string, record: WitnessRecord, previous: WitnessRecord | undefined): Promise<boolean>;
  /** Requests refused after a valid log signature: possible evidence of log misbehaviour. */
  evidence?(origin: string, reason: string, body: string): Promise<void>;
}

/** The same record for a compare-and-set: one tree (size and root) is one state of a log. */
export function sameRecord(a: WitnessRecord | undefined, b: WitnessRecord | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.size === b.size && a.root === b.root;
}

export interface WitnessResponse {
  status: 200 | 400 | 403 | 404 | 409 | 422;
  contentType: string;
  body: string;
}

interface WitnessBaseOptions {
  /** origin → the public keys (PEM, ECDSA P-256) whose signatures the witness trusts for it. */
  logs: ReadonlyMap<string, readonly string[]>;
  store: WitnessStore;
  now?: () => Date;
}

/** The witness's key: an Ed25519 private key it holds (PKCS#8 PEM), or a cosigner (a KMS key). */
export type WitnessOptions = WitnessBaseOptions &
  ({ name: string; privateKeyPem: string } | { cosigner: Cosigner });

const MAX_PROOF_LINES = 63;
/** Compare-and-set attempts before the witness answers with the size it then holds. */
const MAX_SET_ATTEMPTS = 3;
const B64_HASH = /^[A-Za-z0-9+/]{43}=$/;

function reply(status: WitnessResponse['status'], body: string, contentType = 'text/plain; charset=utf-8') {
  return { status, body: body.endsWith('\n') ? body : `${body}\n`, contentType };
}

export class Witness {
  /**
   * Serializes add-checkpoint calls in this process (fewer lost compare-and-sets); across
   * processes the store's compare-and-set makes the check and the update one step.
   */
  private queue: Promise<unknown> = Promise.resolve();
  private readonly cosigner: Cosigner;

  constructor(private readonly options: WitnessOptions) {
    this.cosigner =
      'cosigner' in options ? options.cosigner : ed25519Cosigner(options.name, options.privateKeyPem);
  }

  /** The witness's name and public key. */
  key(): Promise<WitnessKey> {
    return this.cosigner.key();
  }

  /** The origins of the logs this witness cosigns. */
  get origins(): string[] {
    return [...this.options.logs.keys()];
  }

  /** POST <prefix>/add-checkpoint, body as tlog-witness specifies. */
  addCheckpoint(body: string): Promise<WitnessResponse> {
    const run = this.queue.then(() => this.add(body));
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** GET <prefix>/<sha256 hex of origin>/checkpoint: the latest cosigned checkpoint. */
  async latest(origin: string): Promise<WitnessRecord | undefined> {
    return this.options.store.get(origin);
  }

  private async add(body: string): Promise<WitnessResponse> {
    const split = body.indexOf('\n\n');
    if (split < 0)
      return reply(400, 'the body must be an old size line, proof lines, an empty line and a checkpoint');
    const head = body.slice(0, split).split('\n');
    const note = body.slice(split + 2);
    const oldLine = /^old (0|[1-9][0-9]{0,15})$/.exec(head[0] ?? '');
    if (oldLine === null) return reply(400, 'the first line must read "old <size>"');
    const oldSize = Number(oldLine[1]);
    const proofLines = head.slice(1);
    if (proofLines.length > MAX_PROOF_LINES || proofLines.some((l) => !B64_HASH.test(l))) {
      return reply(400, 'each consistency proof line must be one base64 SHA-256 hash (at most 63)');
    }
    const proof = proofLines.map((l) => new Uint8Array(Buffer.from(l, 'base64')));

    let cp: Checkpoint;
    try {
      cp = parseCheckpointText(parseSignedNote(note).text);
    } catch {
      return reply(400, 'the checkpoint is not a signed note');
    }
    const keys = this.options.logs.get(cp.origin);
    if (keys === undefined) return reply(404, `unknown log "${cp.origin}"`);
    let verified = false;
    for (const publicKeyPem of keys) {
      try {
        openCheckpoint(note, { name: cp.origin, publicKeyPem });
        verified = true;
      } catch (e) {
        if (e instanceof CheckpointError && e.code === 'CHECKPOINT_SIGNATURE_INVALID') {
          return reply(403, 'a signature by a trusted log key does not verify');
        }
      }
    }
    if (!verified) return reply(403, 'the checkpoint carries no signature by a trusted log key');
    if (oldSize > cp.size)
      return reply(400, `old size ${oldSize} is larger than the checkpoint size ${cp.size}`);

    const store = this.options.store;
    for (let attempt = 0; attempt < MAX_SET_ATTEMPTS; attempt++) {
      const latest = await store.get(cp.origin);
      const checked = await this.check(cp, oldSize, proof, latest, body);
      if (checked !== undefined) return checked;
      const timestamp = Math.max(1, Math.floor((this.options.now?.() ?? new Date()).getTime() / 1000));
      const line = await cosignatureLine(note, this.cosigner, timestamp);
      // Persisted before answering (tlog-witness: "MUST persist the new checkpoint before
      // responding"), and only if no other writer moved the state since it was checked: of two
      // concurrent requests on diverging checkpoints, one is stored and answered, the other is
      // checked again against the new state (and refused), its cosignature thrown away.
      const stored = await store.set(
        cp.origin,
        {
          size: cp.size,
          root: Buffer.from(cp.root).toString('base64'),
          note: addSignatureLines(note, [line]),
        },
        latest,
      );
      if (stored) return reply(200, line, 'text/plain; charset=utf-8');
    }
    const now = await store.get(cp.origin);
    return reply(409, `${now?.size ?? 0}`, 'text/x.tlog.size');
  }

  /** The refusal `cp` gets against the witness's `latest` record, or undefined when it may be cosigned. */
  private async check(
    cp: Checkpoint,
    oldSize: number,
    proof: Uint8Array[],
    latest: WitnessRecord | undefined,
    body: string,
  ): Promise<WitnessResponse | undefined> {
    const store = this.options.store;
    const latestSize = latest?.size ?? 0;
    if (oldSize !== latestSize) {
      // A client without a view sends 0 first (tlog-witness allows it): not evidence of anything.
      if (oldSize !== 0)
        await store.evidence?.(cp.origin, `old size ${oldSize}, witness holds ${latestSize}`, body);
      return reply(409, `${latestSize}`, 'text/x.tlog.size');
    }
    const refuse = async (why: string) => {
      await store.evidence?.(cp.origin, why, body);
      return reply(422, why);
    };
    if (cp.size === 0 && !Buffer.from(cp.root).equals(EMPTY_ROOT))
      return refuse('a tree of size 0 must have the empty root');
    if (oldSize === 0) {
      if (proof.length > 0) return refuse('the proof must be empty when the old size is 0');
    } else if (latest !== undefined) {
      const root1 = new Uint8Array(Buffer.from(latest.root, 'base64'));
      if (oldSize === cp.size) {
        if (!Buffer.from(root1).equals(cp.root))
          return refuse(`a different root at the size ${cp.size} already cosigned (fork)`);
      } else {
        try {
          verifyConsistencyProof({
            size1: BigInt(oldSize),
            size2: BigInt(cp.size),
            proof,
            root1,
            root2: cp.root,
          });
        } catch (e) {
          if (e instanceof ProofError)
            return refuse(`the consistency proof from ${oldSize} does not verify (${e.code})`);
          throw e;
        }
      }
    }
    return undefined;
  }
}

/** The add-checkpoint request body (tlog-witness). */
export function addCheckpointBody(oldSize: number, proof: readonly Uint8Array[], note: string): string {
  const lines = [`old ${oldSize}`, ...proof.map((h) => Buffer.from(h).toString('base64'))];
  return `${lines.join('\n')}\n\n${note}`;
}
