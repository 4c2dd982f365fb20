/**
 * tlog-witness over HTTP: the server side (`veritrail witness serve`) and the client a log uses to
 * ask a witness for a cosignature.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { parseCheckpointText, parseSignedNote } from '../../core/checkpoint.js';
import { verifyCosignatures, type WitnessKey } from '../../core/cosignature.js';
import { VeritrailError } from '../../core/errors.js';
import type { Witness } from './core.js';
import { originHash } from './fs-store.js';

const MAX_BODY = 64 * 1024;

async function bodyOf(req: IncomingMessage): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const c of req) {
    total += (c as Buffer).length;
    if (total > MAX_BODY) return undefined;
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** The HTTP front of a witness: POST /add-checkpoint, GET /<sha256 hex origin>/checkpoint. */
export function witnessServer(witness: Witness, origins: readonly string[]): Server {
  const byHash = new Map(origins.map((o) => [originHash(o), o]));
  return createServer((req, res) => {
    void (async () => {
      try {
        const url = new URL(req.url ?? '/', 'http://witness');
        if (req.method === 'POST' && url.pathname === '/add-checkpoint') {
          const body = await bodyOf(req);
          if (body === undefined) {
            res.writeHead(400).end('request too large\n');
            return;
          }
          const r = await witness.addCheckpoint(body);
          res.writeHead(r.status, { 'content-type': r.contentType }).end(r.body);
          return;
        }
        const m = /^\/([0-9a-f]{64})\/checkpoint$/.exec(url.pathname);
        if (req.method === 'GET' && m !== null) {
          const origin = byHash.get(m[1] as string);
          const rec = origin === undefined ? undefined : await witness.latest(origin);
          if (rec === undefined) res.writeHead(404).end('no checkpoint cosigned for this log\n');
          else res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' }).end(rec.note);
          return;
        }
        res.writeHead(404).end('not found\n');
      } catch (e) {
        res.writeHead(500).end(`${e instanceof Error ? e.message : String(e)}\n`);
      }
    })();
  });
}

/** What the log asks of a witness (in process for tests, over HTTP otherwise). */
export interface WitnessClient {
  readonly key: WitnessKey;
  submit(body: string): Promise<{ status: number; body: string }>;
  /** The witness's latest cosigned checkpoint of `origin`, or undefined when it has none. */
  latest?(origin: string): Promise<string | undefined>;
}

export class HttpWitnessClient implements WitnessClient {
  constructor(
    readonly key: WitnessKey,
    private readonly url: string,
    private readonly timeoutMs = 10_000,
  ) {}

  async submit(body: string): Promise<{ status: number; body: string }> {
    const r = await fetch(new URL('add-checkpoint', this.base()), {
      method: 'POST',
      body,
      signal: AbortSignal.timeout(this.timeoutMs),
    });
    return { status: r.status, body: await r.text() };
  }

  async latest(origin: string): Promise<string | undefined> {
    const r = await fetch(new URL(`${originHash(origin)}/checkpoint`, this.base()), {
      signal: AbortSignal.timeout(this.timeoutMs),
    });
    if (r.status === 404) return undefined;
    if (r.status !== 200)
      throw new VeritrailError('TRANSIENT', `witness ${this.key.name} answered ${r.status}; retry`);
    return r.text();
  }

  private base(): string {
    return this.url.endsWith('/') ? this.url : `${this.url}/`;
  }
}

/** A witness in the same process (tests, or a witness the operator runs beside the log). */
export class LocalWitnessClient implements WitnessClient {
  constructor(
    readonly key: WitnessKey,
    private readonly witness: Witness,
  ) {}

  async submit(body: string): Promise<{ status: number; body: string }> {
    const r = await this.witness.addCheckpoint(body);
    return { status: r.status, body: r.body };
  }

  async latest(origin: string): Promise<string | undefined> {
    return (await this.witness.latest(origin))?.note;
  }
}

/** The size and root of a witness's view, after checking its cosignature. */
export function openWitnessView(note: string, key: WitnessKey): { size: number; root: Uint8Array } {
  if (verifyCosignatures(note, [key]).length === 0) {
    throw new VeritrailError(
      'SIGNATURE_INVALID',
      `the checkpoint from witness ${key.name} carries no cosignature by it`,
    );
  }
  const cp = parseCheckpointText(parseSignedNote(note).text);
  return { size: cp.size, root: cp.root };
}
