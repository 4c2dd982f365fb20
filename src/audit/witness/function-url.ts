/**
 * The witness behind a Lambda function URL: the same two routes as `veritrail witness serve`
 * (src/audit/witness/http.ts), from the function URL's event (payload format 2.0: method in
 * `requestContext.http.method`, `rawPath`, `body`, `isBase64Encoded`) to its response
 * (`statusCode`, `headers`, `body`). Lambda Developer Guide, "Invoking Lambda function URLs".
 *
 * - `POST /add-checkpoint` (c2sp.org/tlog-witness): the witness's answer as is.
 * - `GET /<sha256 hex of origin>/checkpoint`: the latest checkpoint it cosigned for that log.
 *
 * The URL is public (the protocol authenticates the log by its checkpoint signature), so a failure
 * inside the witness is answered without its details (500, or 503 when it is worth retrying); the
 * details go to the function's log.
 */
import { VeritrailError } from '../../core/errors.js';
import type { Witness } from './core.js';
import { originHash } from './fs-store.js';

/** The same bound as the HTTP server: a checkpoint and 63 proof lines fit many times over. */
const MAX_BODY_BYTES = 64 * 1024;

export interface FunctionUrlEvent {
  rawPath?: string;
  body?: string;
  isBase64Encoded?: boolean;
  requestContext: { http: { method: string } };
}

export interface FunctionUrlResult {
  statusCode: number;
  headers: Record<string, string>;
  body: string;
}

/** A function URL invocation (as opposed to, say, a CloudFormation custom resource request). */
export function isFunctionUrlEvent(event: unknown): event is FunctionUrlEvent {
  const http = (event as { requestContext?: { http?: { method?: unknown } } } | null)?.requestContext?.http;
  return typeof http?.method === 'string';
}

const TEXT = 'text/plain; charset=utf-8';

function result(statusCode: number, body: string, contentType = TEXT): FunctionUrlResult {
  return {
    statusCode,
    headers: { 'content-type': contentType, 'cache-control': 'no-store' },
    body: body.endsWith('\n') ? body : `${body}\n`,
  };
}

/** Answers one function URL request; `log` receives the details of a failure (the function's log). */
export async function serveFunctionUrl(
  witness: Witness,
  event: FunctionUrlEvent,
  log: (line: string) => void = (line) => process.stderr.write(`${line}\n`),
): Promise<FunctionUrlResult> {
  const method = event.requestContext.http.method.toUpperCase();
  const path = event.rawPath ?? '/';
  try {
    if (path === '/add-checkpoint') {
      if (method !== 'POST') return result(405, 'add-checkpoint takes POST');
      const raw = event.body ?? '';
      const bytes = event.isBase64Encoded ? Buffer.from(raw, 'base64') : Buffer.from(raw, 'utf8');
      if (bytes.length > MAX_BODY_BYTES) return result(400, 'request too large');
      const r = await witness.addCheckpoint(bytes.toString('utf8'));
      return result(r.status, r.body, r.contentType);
    }
    const m = /^\/([0-9a-f]{64})\/checkpoint$/.exec(path);
    if (m !== null) {
      if (method !== 'GET') return result(405, 'checkpoint takes GET');
      const origin = witness.origins.find((o) => originHash(o) === m[1]);
      const record = origin === undefined ? undefined : await witness.latest(origin);
      return record === undefined
        ? result(404, 'no checkpoint cosigned for this log')
        : result(200, record.note);
    }
    return result(404, 'not found');
  } catch (e) {
    const code = e instanceof VeritrailError ? e.code : 'INTERNAL';
    log(
      JSON.stringify({
        level: 'ERROR',
        message: 'witness request failed',
        method,
        path,
        code,
        error: e instanceof Error ? e.message : String(e),
      }),
    );
    if (code === 'USAGE') return result(400, (e as Error).message);
    if (code === 'TRANSIENT') return result(503, 'the witness is unavailable for a moment; retry');
    return result(500, 'the witness failed; its operator has the details');
  }
}
