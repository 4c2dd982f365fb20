/** Shared fixtures of the IAM proxy tests: a small policy world and a fake upstream that records requests. */
import { Agent, createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { PolicyDocument, PolicyWorld, Principal } from './types.js';

export const ACCOUNT = '123456789012';
export const REGION = 'eu-west-1';

export const allow = (
  Action: string | string[],
  Resource: string | string[],
  Condition?: Record<string, unknown>,
) => ({
  Effect: 'Allow',
  Action,
  Resource,
  ...(Condition ? { Condition } : {}),
});
export const deny = (
  Action: string | string[],
  Resource: string | string[],
  Condition?: Record<string, unknown>,
) => ({
  Effect: 'Deny',
  Action,
  Resource,
  ...(Condition ? { Condition } : {}),
});
export const doc = (...Statement: Record<string, unknown>[]): PolicyDocument => ({
  Version: '2012-10-17',
  Statement,
});

export function principal(
  label: string,
  statements: Record<string, unknown>[],
  accessKeyId = `AKID${label.toUpperCase().replace(/[^A-Z0-9]/g, '')}`,
): Principal {
  return {
    accessKeyId,
    roleArn: `arn:aws:iam::${ACCOUNT}:role/${label.replace(/[^\w+=,.@-]/g, '-')}-role`,
    identityPolicies: [{ name: `${label}-policy`, policy: doc(...statements) }],
    label,
  };
}

export function world(principals: Principal[], extra: Partial<PolicyWorld> = {}): PolicyWorld {
  return {
    account: ACCOUNT,
    region: REGION,
    principals,
    bucketPolicies: {},
    bucketKmsKeys: {},
    keyPolicies: {},
    keyIds: {},
    tableKmsKeys: {},
    ...extra,
  };
}

export interface SeenRequest {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  rawHeaders: string[];
  body: Buffer;
}

export interface FakeUpstream {
  url: string;
  seen: SeenRequest[];
  /** Answer to give next (default: 200 with '{}'). */
  answer: (req: SeenRequest) => { status: number; headers?: Record<string, string>; body?: string | Buffer };
  close(): Promise<void>;
}

/** An HTTP server standing in for moto: records every request, answers what `answer` says. */
export async function fakeUpstream(): Promise<FakeUpstream> {
  const seen: SeenRequest[] = [];
  const fake: FakeUpstream = {
    url: '',
    seen,
    answer: () => ({ status: 200, body: '{}' }),
    close: () =>
      new Promise((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const s: SeenRequest = {
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        rawHeaders: req.rawHeaders,
        body: Buffer.concat(chunks),
      };
      seen.push(s);
      const a = fake.answer(s);
      const body = a.body === undefined ? Buffer.alloc(0) : Buffer.from(a.body);
      res.writeHead(a.status, { ...a.headers, 'content-length': String(body.length) });
      res.end(req.method === 'HEAD' ? undefined : body);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  fake.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return fake;
}

/** SDK client options for a caller with this access key id, talking to `endpoint`. */
export function clientConfig(endpoint: string, accessKeyId: string) {
  return {
    endpoint,
    region: REGION,
    credentials: { accessKeyId, secretAccessKey: 'test-secret' },
    maxAttempts: 1,
  };
}

/** An agent resolving every host name (bucket.localhost) to 127.0.0.1, for virtual-hosted-style S3. */
export const loopbackAgent = () =>
  new Agent({
    lookup: ((_host: string, options: { all?: boolean }, cb: (...a: unknown[]) => void) => {
      if (options.all) cb(null, [{ address: '127.0.0.1', family: 4 }]);
      else cb(null, '127.0.0.1', 4);
    }) as never,
  });

/** Runs an SDK call whose outcome does not matter to the test (the proxy's record does). */
export async function attempt(p: Promise<unknown>): Promise<unknown> {
  try {
    return await p;
  } catch (e) {
    return e;
  }
}
