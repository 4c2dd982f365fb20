/**
 * The control plane's local channel: HTTP over a unix socket at `<home>/control.sock` (mode 0600,
 * so only the state dir's owner can start runs; nothing listens on the network). `POST /start`
 * takes an operator start request (OperatorStartSchema) and answers with the start outcome.
 */

import { chmod, unlink } from 'node:fs/promises';
import { createServer, request as httpRequest, type Server } from 'node:http';
import { join } from 'node:path';
import { VeritrailError } from '../core/errors.js';
import type { StartOutcome } from '../core/start.js';

/** Request bodies above this are refused: an operator start is a few hundred bytes. */
const MAX_BODY_BYTES = 64 * 1024;

export function controlSocketPath(home: string): string {
  return join(home, 'control.sock');
}

export interface ControlChannel {
  close(): Promise<void>;
}

/** Listens on the socket; `submit` is the control plane's. A stale socket file is replaced. */
export async function listenControlChannel(
  socketPath: string,
  submit: (body: unknown) => Promise<StartOutcome>,
): Promise<ControlChannel> {
  const server: Server = createServer((req, res) => {
    const send = (status: number, value: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(`${JSON.stringify(value)}\n`);
    };
    if (req.method === 'GET' && req.url === '/health') return send(200, { ok: true });
    if (req.method !== 'POST' || req.url !== '/start') return send(404, { error: 'POST /start only' });
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        send(413, {
          status: 'rejected',
          error: { code: 'EVENT_INVALID', message: 'request body too large' },
        });
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => {
      if (res.headersSent) return;
      let body: unknown;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        // Not JSON: still handed to the service, which records the rejection.
        body = Buffer.concat(chunks).toString('utf8');
      }
      submit(body).then(
        (outcome) => send(outcome.status === 'rejected' ? 400 : 200, outcome),
        (e: unknown) =>
          send(500, { status: 'error', error: { code: 'INTERNAL', message: (e as Error).message } }),
      );
    });
  });
  // We hold the state dir's lock, so a socket file left here is from a process that has ended.
  await unlink(socketPath).catch(() => undefined);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve());
  });
  await chmod(socketPath, 0o600);
  return {
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      }),
  };
}

/** Sends an operator start to a running `veritrail serve`. */
export async function sendStart(socketPath: string, body: unknown): Promise<StartOutcome> {
  const payload = JSON.stringify(body);
  return new Promise<StartOutcome>((resolve, reject) => {
    const req = httpRequest(
      {
        socketPath,
        path: '/start',
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          try {
            resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')) as StartOutcome);
          } catch (e) {
            reject(
              new VeritrailError('INTERNAL', `the control plane answered with something that is not JSON`, {
                cause: e,
              }),
            );
          }
        });
      },
    );
    req.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT' || e.code === 'ECONNREFUSED') {
        reject(
          new VeritrailError(
            'USAGE',
            `no control plane is listening on ${socketPath}; start one with \`veritrail serve --home <dir>\` (same --home), or use --stage <stage> for AWS`,
            { cause: e },
          ),
        );
      } else
        reject(
          new VeritrailError('TRANSIENT', `cannot reach the control plane at ${socketPath}: ${e.message}`, {
            cause: e,
          }),
        );
    });
    req.end(payload);
  });
}
