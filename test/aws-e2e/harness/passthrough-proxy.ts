/**
 * A forwarding proxy that authorizes nothing and records nothing: the stand-in for the IAM replay
 * proxy (test/aws-e2e/iam/proxy.ts) while that one is not there. It implements the same IamProxy
 * contract (types.ts) so the harness runs unchanged on either; its `calls` stay empty, so a suite on
 * it proves the flow, not the permissions. `harness/proxy.ts` picks the real one when it exists.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ApiRequest, HookResponse, IamProxy, IamProxyOptions, RecordedCall } from '../iam/types.js';

type Hook = (req: ApiRequest) => Promise<HookResponse | undefined> | HookResponse | undefined;

/** The access key id and service from a SigV4 Authorization header (or presigned query). */
export function credentialScope(
  headers: Record<string, string>,
  query: Record<string, string>,
): { accessKeyId: string; service: string } | undefined {
  const auth = headers.authorization ?? '';
  const m = /Credential=([^/]+)\/[^/]+\/[^/]+\/([^/]+)\/aws4_request/.exec(auth);
  if (m?.[1] && m[2]) return { accessKeyId: m[1], service: m[2] };
  const q = query['X-Amz-Credential']?.split('/');
  if (q?.[0] && q[3]) return { accessKeyId: q[0], service: q[3] };
  return undefined;
}

/** Parses enough of a request for hooks: service, operation (X-Amz-Target), JSON input, S3 bucket/key. */
export function parseRequest(
  req: IncomingMessage,
  body: Buffer,
  principalOf: (accessKeyId: string) => string,
): ApiRequest {
  const url = new URL(req.url ?? '/', 'http://localhost');
  const query: Record<string, string> = {};
  for (const [k, v] of url.searchParams) query[k] = v;
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string') headers[k] = v;
  const scope = credentialScope(headers, query);
  const service = scope?.service ?? 'unknown';
  const principal = scope ? principalOf(scope.accessKeyId) : 'anonymous';
  const target = headers['x-amz-target'];
  if (target) {
    const operation = target.slice(target.lastIndexOf('.') + 1);
    let input: Record<string, unknown> | undefined;
    try {
      input = body.length ? (JSON.parse(body.toString('utf8')) as Record<string, unknown>) : {};
    } catch {
      input = undefined;
    }
    return { principal, service, operation, ...(input ? { input } : {}), query, headers, body };
  }
  if (service === 's3') {
    const [, bucket, ...rest] = decodeURIComponent(url.pathname).split('/');
    return {
      principal,
      service,
      operation: `${req.method ?? 'GET'} s3`,
      ...(bucket ? { bucket } : {}),
      ...(rest.length ? { key: rest.join('/') } : {}),
      query,
      headers,
      body,
    };
  }
  // Query protocol (SQS/SSM older SDKs): Action=… in the form body.
  const form = new URLSearchParams(body.toString('utf8'));
  return {
    principal,
    service,
    operation: form.get('Action') ?? query.Action ?? 'unknown',
    query,
    headers,
    body,
  };
}

export async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** Forwards one request to `upstream` as is and pipes the answer back. */
export async function forward(
  upstream: string,
  req: IncomingMessage,
  body: Buffer,
  res: ServerResponse,
): Promise<void> {
  const headers = new Headers();
  for (const [k, v] of Object.entries(req.headers)) {
    if (v === undefined || k === 'host' || k === 'connection' || k === 'content-length') continue;
    headers.set(k, Array.isArray(v) ? v.join(', ') : v);
  }
  const method = req.method ?? 'GET';
  const answer = await fetch(new URL(req.url ?? '/', upstream), {
    method,
    headers,
    ...(method === 'GET' || method === 'HEAD' ? {} : { body }),
    redirect: 'manual',
  });
  const out: Record<string, string> = {};
  answer.headers.forEach((v, k) => {
    if (k !== 'content-encoding' && k !== 'transfer-encoding' && k !== 'content-length' && k !== 'connection')
      out[k] = v;
  });
  const bytes = Buffer.from(await answer.arrayBuffer());
  if (method !== 'HEAD') out['content-length'] = String(bytes.length);
  else if (answer.headers.get('content-length'))
    out['content-length'] = answer.headers.get('content-length') ?? '0';
  res.writeHead(answer.status, out);
  res.end(method === 'HEAD' ? undefined : bytes);
}

export async function startPassthroughProxy(
  options: IamProxyOptions & { principalOf?: (accessKeyId: string) => string },
): Promise<IamProxy> {
  const hooks: Hook[] = [];
  const calls: RecordedCall[] = [];
  const principalOf = options.principalOf ?? ((id: string) => `unknown:${id}`);
  const server = createServer((req, res) => {
    void (async () => {
      const body = await readBody(req);
      const parsed = parseRequest(req, body, principalOf);
      for (const hook of hooks) {
        const answer = await hook(parsed);
        if (answer) {
          res.writeHead(answer.status, answer.headers ?? {});
          res.end(answer.body);
          return;
        }
      }
      await forward(options.upstream, req, body, res);
    })().catch((e: unknown) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(`passthrough proxy: ${e instanceof Error ? e.stack : String(e)}`);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    calls,
    denials: () => calls.filter((c) => c.decision !== 'Allowed'),
    addHook: (hook) => {
      hooks.push(hook);
    },
    setWorld: () => {},
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
