/**
 * The IAM replay proxy: an HTTP endpoint on 127.0.0.1 that every SDK client of the functions under
 * test talks to (AWS_ENDPOINT_URL). It names the caller and the operation of each signed request
 * (parse.ts), the authorizations AWS would make (authz.ts), decides each with iam-simulate against the
 * synthesized policies (evaluate.ts), records every decision, and then answers AccessDenied as AWS
 * would, or lets a hook answer, or forwards the request byte for byte to moto_server and streams
 * moto's answer back. See README.md for what is modelled.
 */
import { randomBytes } from 'node:crypto';
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  type AuthzState,
  hidesMissingKeys,
  newAuthzState,
  type Requirement,
  requirementsFor,
  s3MissingKeyRequirement,
  s3ReadKmsRequirement,
  s3WriteKey,
} from './authz.js';
import { evaluate, sessionArn } from './evaluate.js';
import { flatHeaders, type ParsedRequest, parseRequest } from './parse.js';
import type {
  ApiRequest,
  HookResponse,
  IamProxy,
  IamProxyOptions,
  PolicyWorld,
  Principal,
  RecordedCall,
} from './types.js';

type Hook = (req: ApiRequest) => Promise<HookResponse | undefined> | HookResponse | undefined;

const readBody = (req: IncomingMessage): Promise<Buffer> =>
  new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });

const requestId = () => randomBytes(8).toString('hex').toUpperCase();

/** The message AWS puts in an AccessDenied answer. */
export function accessDeniedMessage(callerArn: string, call: RecordedCall): string {
  const because =
    call.decision === 'ExplicitlyDenied' ? 'with an explicit deny' : 'because no policy allows it';
  return `User: ${callerArn} is not authorized to perform: ${call.action} on resource: ${call.resource} ${because} (${call.reason ?? 'denied'})`;
}

const xmlEscape = (s: string) =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** The error AWS sends for a denied call, in the request's protocol. */
export function accessDeniedResponse(req: ParsedRequest, message: string): HookResponse {
  const id = requestId();
  if (req.service === 's3') {
    // S3 REST: 403 with an XML Error document (a HEAD answer has no body).
    const body =
      req.method === 'HEAD'
        ? ''
        : `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>${xmlEscape(message)}</Message><RequestId>${id}</RequestId><HostId>${id}</HostId></Error>`;
    return { status: 403, headers: { 'content-type': 'application/xml', 'x-amz-request-id': id }, body };
  }
  const body = JSON.stringify({ __type: 'AccessDeniedException', message, Message: message });
  if (req.service === 'lambda') {
    // Lambda's REST-JSON protocol: 403 with the error type in x-amzn-ErrorType.
    return {
      status: 403,
      headers: {
        'content-type': 'application/json',
        'x-amzn-errortype': 'AccessDeniedException',
        'x-amzn-requestid': id,
      },
      body,
    };
  }
  // AWS JSON 1.0/1.1 protocols: 400 with __type.
  return {
    status: 400,
    headers: {
      'content-type': req.headers['content-type'] ?? 'application/x-amz-json-1.1',
      'x-amzn-requestid': id,
    },
    body,
  };
}

function send(res: ServerResponse, r: HookResponse): void {
  const body = typeof r.body === 'string' ? Buffer.from(r.body) : r.body;
  res.writeHead(r.status, { ...r.headers, 'content-length': String(body.length) });
  res.end(body);
}

/** Starts the proxy on a random 127.0.0.1 port. */
export async function startIamProxy(options: IamProxyOptions): Promise<IamProxy> {
  let world: PolicyWorld = options.world;
  const enforce = options.enforce ?? true;
  const admin = new Set(options.adminAccessKeyIds ?? []);
  const upstream = new URL(options.upstream);
  const calls: RecordedCall[] = [];
  const hooks: Hook[] = [];
  const state: AuthzState = newAuthzState();

  const decide = async (
    w: PolicyWorld,
    principal: Principal | undefined,
    label: string,
    req: ParsedRequest,
    r: Requirement,
  ): Promise<RecordedCall> => {
    const d = await evaluate(w, principal, r);
    const call: RecordedCall = {
      principal: label,
      service: req.service,
      operation: req.operation,
      action: r.action,
      resource: r.scope ?? r.resource,
      context: r.context,
      decision: d.decision,
      implied: r.implied,
      ...(d.reason !== undefined && d.decision !== 'Allowed' ? { reason: d.reason } : {}),
    };
    calls.push(call);
    return call;
  };

  const forward = (incoming: IncomingMessage, body: Buffer): Promise<IncomingMessage> =>
    new Promise((resolve, reject) => {
      const out = httpRequest(
        {
          protocol: upstream.protocol,
          hostname: upstream.hostname,
          port: upstream.port,
          method: incoming.method,
          // Path, query, headers (names, order, Host) and body exactly as the SDK sent them.
          path: incoming.url,
          headers: incoming.rawHeaders,
          setHost: false,
        },
        resolve,
      );
      out.on('error', reject);
      out.end(body);
    });

  const handle = async (incoming: IncomingMessage, res: ServerResponse) => {
    const body = await readBody(incoming);
    const w = world;
    const headers = flatHeaders(incoming.headers);
    const req = parseRequest(incoming.method ?? 'GET', incoming.url ?? '/', headers, body);
    const stream = (up: IncomingMessage) => {
      res.writeHead(up.statusCode ?? 502, up.statusMessage ?? '', up.rawHeaders);
      up.pipe(res);
    };
    if (req.accessKeyId && admin.has(req.accessKeyId)) {
      stream(await forward(incoming, body));
      return;
    }
    const principal = req.accessKeyId
      ? w.principals.find((p) => p.accessKeyId === req.accessKeyId)
      : undefined;
    const label = principal?.label ?? `unknown:${req.accessKeyId ?? 'unsigned'}`;
    const callerArn = principal
      ? sessionArn(principal, w.account)
      : `unknown:${req.accessKeyId ?? 'unsigned'}`;
    const requirements = requirementsFor(
      w,
      req,
      state,
      options.stateMachineOfTaskToken ? { stateMachineOfTaskToken: options.stateMachineOfTaskToken } : {},
    );
    const decided: RecordedCall[] = [];
    if (!requirements) {
      const call: RecordedCall = {
        principal: label,
        service: req.service,
        operation: req.operation,
        action: `${req.service}:${req.operation}`,
        resource: '*',
        context: {},
        decision: 'ImplicitlyDenied',
        implied: false,
        reason: `the IAM proxy does not model ${req.service} ${req.operation} (${req.method} ${req.rawUrl.split('?')[0]}); add it to test/aws-e2e/iam/authz.ts`,
      };
      calls.push(call);
      decided.push(call);
    } else {
      for (const r of requirements) decided.push(await decide(w, principal, label, req, r));
    }
    const denied = decided.find((c) => c.decision !== 'Allowed');
    if (enforce && denied) {
      send(res, accessDeniedResponse(req, accessDeniedMessage(callerArn, denied)));
      return;
    }

    const apiRequest: ApiRequest = {
      principal: label,
      service: req.service,
      operation: req.operation,
      query: req.query,
      headers: req.headers,
      body: req.body,
      ...(req.input !== undefined ? { input: req.input } : {}),
      ...(req.bucket !== undefined ? { bucket: req.bucket } : {}),
      ...(req.key !== undefined ? { key: req.key } : {}),
    };
    for (const hook of hooks) {
      const answer = await hook(apiRequest);
      if (answer) {
        send(res, answer);
        return;
      }
    }

    const up = await forward(incoming, body);
    const status = up.statusCode ?? 502;
    const upHeaders = flatHeaders(up.headers);
    // After moto answers: the authorizations S3 makes depending on the outcome.
    let after: Requirement | undefined;
    let buffered: Buffer | undefined;
    if (status === 404 && hidesMissingKeys(req)) {
      // A missing bucket stays 404 NoSuchBucket (only keys are hidden); a HEAD answer has no body to tell.
      if (req.method === 'GET') buffered = await readBody(up);
      if (!buffered?.includes('<Code>NoSuchBucket</Code>')) after = s3MissingKeyRequirement(req);
    } else if (status >= 200 && status < 300 && req.service === 's3')
      after = s3ReadKmsRequirement(w, req, state, upHeaders);
    if (after) {
      const call = await decide(w, principal, label, req, after);
      if (enforce && call.decision !== 'Allowed') {
        up.resume();
        send(res, accessDeniedResponse(req, accessDeniedMessage(callerArn, call)));
        return;
      }
    }
    if (
      status >= 200 &&
      status < 300 &&
      req.service === 's3' &&
      req.bucket !== undefined &&
      req.key !== undefined
    ) {
      if (
        req.operation === 'PutObject' ||
        req.operation === 'CopyObject' ||
        req.operation === 'CreateMultipartUpload'
      ) {
        const key = s3WriteKey(w, req);
        if (key) state.objectKeys.set(`${req.bucket}/${req.key}`, key);
        else state.objectKeys.delete(`${req.bucket}/${req.key}`);
      }
    }
    if (buffered) {
      res.writeHead(status, up.statusMessage ?? '', up.rawHeaders);
      res.end(buffered);
      return;
    }
    stream(up);
  };

  const server = createServer((incoming, res) => {
    handle(incoming, res).catch((e: unknown) => {
      const message = e instanceof Error ? e.message : String(e);
      if (!res.headersSent) {
        send(res, {
          status: 500,
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ __type: 'InternalFailure', message: `IAM proxy: ${message}` }),
        });
      } else {
        res.destroy(e instanceof Error ? e : new Error(message));
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  return {
    endpoint: `http://127.0.0.1:${port}`,
    calls,
    denials: () => calls.filter((c) => c.decision !== 'Allowed'),
    addHook: (hook) => {
      hooks.push(hook);
    },
    setWorld: (next) => {
      world = next;
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((e) => (e ? reject(e) : resolve()));
        server.closeAllConnections();
      }),
  };
}
