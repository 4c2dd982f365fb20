/**
 * Hosts each AWS::Lambda::Function of the templates as a child process (lambda-child.mjs) running
 * the bundle exactly as deployed: the asset folder copied to an empty temp folder (os.tmpdir(), no
 * node_modules above it), the template's Environment (resolved), the handler it names, and the
 * variables the Lambda service sets (AWS_REGION, AWS_LAMBDA_FUNCTION_NAME, LAMBDA_TASK_ROOT…), plus
 * AWS_ENDPOINT_URL = the IAM proxy and the function role's own access key.
 *
 * Layers and tracing, as Lambda provides them: the Powertools layer every function has
 * (powertools-layer.ts, built once per fleet) on NODE_PATH, resolved for ES module imports too
 * (lambda-node-path.mjs); for a function with active tracing, a sampled X-Ray trace header per
 * invocation in _X_AMZN_TRACE_ID, AWS_XRAY_CONTEXT_MISSING=LOG_ERROR, and AWS_XRAY_DAEMON_ADDRESS
 * naming a UDP socket of the host that receives the segments (and drops them: no X-Ray service).
 *
 * Differences from Lambda: the task root is the temp folder, not /var/task (environment values
 * that name /var/task are rewritten to it); one warm process per function, invocations serialized;
 * no memory or timeout enforcement beyond the timeout given to `invoke`.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildPowertoolsLayer } from './powertools-layer.js';
import type { ResolvedResource } from './resolve.js';

export interface LambdaError {
  errorType: string;
  errorMessage: string;
  trace?: string[];
}

export type InvokeResult = { ok: true; result: unknown } | { ok: false; error: LambdaError };

export interface FunctionCredentials {
  accessKeyId: string;
  secretAccessKey: string;
}

export interface HostedFunction {
  name: string;
  arn: string;
  logicalId: string;
  /** The resolved Environment.Variables the template sets. */
  environment: Record<string, string>;
  roleArn: string;
  taskRoot: string;
  invoke(event: unknown, timeoutMs?: number): Promise<InvokeResult>;
  /** What the process wrote (its logs), for failure reports. */
  logs(): string;
  handlerName: string;
  /** Resolves when no invocation of this function is running. */
  idle(): Promise<void>;
}

export interface HostOptions {
  /** Code.S3Key → the asset folder. */
  assetDir(s3Key: string): string;
  endpoint: string;
  region: string;
  credentialsOf(roleArn: string): FunctionCredentials;
  /** Extra variables over the template's (tests only: for example VERITRAIL_PIPELINES_DIR). */
  overrides?(fn: ResolvedResource): Record<string, string>;
  /** host:port of a UDP socket to receive the X-Ray segments; default: one of the fleet's that drops them. */
  xrayDaemon?: string;
}

const CHILD = join(import.meta.dirname, 'lambda-child.mjs');

/** An X-Ray trace header as Lambda passes it to a sampled invocation (X-Ray Developer Guide, "Tracing header"). */
export function lambdaTraceHeader(now: Date = new Date()): string {
  const epoch = Math.floor(now.getTime() / 1000)
    .toString(16)
    .padStart(8, '0');
  return `Root=1-${epoch}-${randomBytes(12).toString('hex')};Parent=${randomBytes(8).toString('hex')};Sampled=1`;
}

class Host implements HostedFunction {
  private child: ChildProcess | undefined;
  private ready: Promise<void> | undefined;
  private readonly pending = new Map<string, (r: InvokeResult) => void>();
  private output = '';
  private inFlight = 0;
  private idleWaiters: (() => void)[] = [];

  /** Resolves when no invocation of this function is running. */
  idle(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  constructor(
    readonly name: string,
    readonly arn: string,
    readonly logicalId: string,
    readonly environment: Record<string, string>,
    readonly roleArn: string,
    readonly taskRoot: string,
    private readonly processEnv: Record<string, string>,
    /** functions/start.handler → "start". */
    readonly handlerName: string,
    /** TracingConfig Mode Active: each invocation gets a sampled trace header. */
    private readonly activeTracing: boolean,
    /** host:port of the fleet's X-Ray daemon socket, once it listens. */
    private readonly daemonAddress: Promise<string>,
  ) {}

  invokeReady(): Promise<void> {
    return this.start();
  }

  logs(): string {
    return this.output;
  }

  private start(): Promise<void> {
    this.ready ??= this.daemonAddress.then((daemon) => this.spawn(daemon));
    return this.ready;
  }

  private spawn(daemon: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const child = fork(CHILD, [], {
        // The npm script's PATH puts Node 22 first; the child asserts its version itself.
        execPath: process.execPath,
        execArgv: [],
        cwd: this.taskRoot,
        env: { ...this.processEnv, AWS_XRAY_DAEMON_ADDRESS: daemon },
        stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
        serialization: 'json',
      });
      this.child = child;
      const keep = (b: Buffer) => {
        this.output += b.toString('utf8');
        if (this.output.length > 200_000) this.output = this.output.slice(-100_000);
      };
      child.stdout?.on('data', keep);
      child.stderr?.on('data', keep);
      child.on('message', (m: { type: string; id?: string; error?: string } & Record<string, unknown>) => {
        if (m.type === 'ready') resolve();
        else if (m.type === 'fatal') reject(new Error(`${this.name}: ${m.error}`));
        else if (m.id) {
          const done = this.pending.get(m.id);
          this.pending.delete(m.id);
          if (m.type === 'result') done?.({ ok: true, result: m.result });
          else done?.({ ok: false, error: m as unknown as LambdaError });
        }
      });
      child.on('exit', (code) => {
        reject(
          new Error(
            `${this.name}: the function process exited with ${code} before it was ready\n${this.output}`,
          ),
        );
        for (const [, done] of this.pending)
          done({
            ok: false,
            error: { errorType: 'Runtime.ExitError', errorMessage: `RequestId: exited with ${code}` },
          });
        this.pending.clear();
        this.child = undefined;
        this.ready = undefined;
      });
    });
  }

  async invoke(event: unknown, timeoutMs = 120_000): Promise<InvokeResult> {
    this.inFlight += 1;
    try {
      return await this.invokeOnce(event, timeoutMs);
    } finally {
      this.inFlight -= 1;
      if (this.inFlight === 0) for (const w of this.idleWaiters.splice(0)) w();
    }
  }

  private async invokeOnce(event: unknown, timeoutMs: number): Promise<InvokeResult> {
    await this.start();
    const id = randomUUID();
    return new Promise<InvokeResult>((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        resolve({
          ok: false,
          error: {
            errorType: 'Sandbox.Timedout',
            errorMessage: `Task timed out after ${timeoutMs / 1000} seconds`,
          },
        });
      }, timeoutMs);
      this.pending.set(id, (r) => {
        clearTimeout(timer);
        resolve(r);
      });
      const traceId = this.activeTracing ? lambdaTraceHeader() : undefined;
      this.child?.send({
        type: 'invoke',
        id,
        requestId: id,
        event,
        functionArn: this.arn,
        timeoutMs,
        traceId,
      });
    });
  }

  stop(): void {
    this.child?.kill('SIGKILL');
  }
}

export interface LambdaFleet {
  functions: HostedFunction[];
  byArn(arn: string): HostedFunction;
  /** By the function's handler file (functions/<name>.handler → "<name>"). */
  byHandler(name: string): HostedFunction;
  /** Starts every process now (cold starts out of the scenarios' timing); the load failures, by function. */
  warm(): Promise<{ name: string; handler: string; error: string }[]>;
  close(): void;
}

export function hostFunctions(resources: ResolvedResource[], options: HostOptions): LambdaFleet {
  const hosts: Host[] = [];
  const roots: string[] = [];
  const layer = mkdtempSync(join(tmpdir(), 'vt-lambda-layer-'));
  roots.push(layer);
  const layerModules = buildPowertoolsLayer(layer);
  // The X-Ray daemon's receiving end, unless the caller listens itself: segments arrive and are
  // dropped (no X-Ray service here).
  const daemon = options.xrayDaemon === undefined ? createSocket('udp4') : undefined;
  daemon?.on('message', () => undefined);
  const daemonAddress =
    options.xrayDaemon !== undefined
      ? Promise.resolve(options.xrayDaemon)
      : new Promise<string>((resolve, reject) => {
          daemon?.once('error', reject);
          daemon?.bind(0, '127.0.0.1', () => resolve(`127.0.0.1:${daemon.address().port}`));
        });
  for (const fn of resources.filter((r) => r.type === 'AWS::Lambda::Function')) {
    const p = fn.properties as {
      Code: { S3Key: string };
      Handler: string;
      Role: string;
      Environment?: { Variables?: Record<string, string> };
      MemorySize?: number;
      Timeout?: number;
      TracingConfig?: { Mode?: string };
    };
    const root = mkdtempSync(join(tmpdir(), `vt-lambda-${fn.physicalId.slice(-20)}-`));
    roots.push(root);
    cpSync(options.assetDir(p.Code.S3Key), root, { recursive: true });
    const environment = Object.fromEntries(
      Object.entries(p.Environment?.Variables ?? {}).map(([k, v]) => [k, String(v)]),
    );
    const creds = options.credentialsOf(p.Role);
    const env: Record<string, string> = {
      ...Object.fromEntries(
        Object.entries(environment).map(([k, v]) => [k, v.replaceAll('/var/task', root)]),
      ),
      ...(options.overrides?.(fn) ?? {}),
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      TZ: ':UTC',
      LANG: 'en_US.UTF-8',
      HOME: root,
      LAMBDA_TASK_ROOT: root,
      _HANDLER: p.Handler,
      AWS_EXECUTION_ENV: 'AWS_Lambda_nodejs22.x',
      AWS_LAMBDA_FUNCTION_NAME: fn.physicalId,
      AWS_LAMBDA_FUNCTION_VERSION: '$LATEST',
      AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(p.MemorySize ?? 128),
      AWS_LAMBDA_INITIALIZATION_TYPE: 'on-demand',
      AWS_REGION: options.region,
      AWS_DEFAULT_REGION: options.region,
      AWS_ENDPOINT_URL: options.endpoint,
      AWS_ACCESS_KEY_ID: creds.accessKeyId,
      AWS_SECRET_ACCESS_KEY: creds.secretAccessKey,
      AWS_SESSION_TOKEN: '',
      // Lambda: /opt/nodejs/node22/node_modules:/opt/nodejs/node_modules:/var/runtime/node_modules:…
      NODE_PATH: layerModules,
      AWS_XRAY_CONTEXT_MISSING: 'LOG_ERROR',
    };
    delete env.AWS_SESSION_TOKEN;
    const handlerName = p.Handler.replace(/\.[^.]+$/, '').replace(/^.*\//, '');
    hosts.push(
      new Host(
        fn.physicalId,
        fn.arn ?? '',
        fn.logicalId,
        environment,
        p.Role,
        root,
        env,
        handlerName,
        p.TracingConfig?.Mode === 'Active',
        daemonAddress,
      ),
    );
  }
  const find = (what: string, pred: (h: Host) => boolean) => {
    const h = hosts.find(pred);
    if (!h) throw new Error(`no hosted function for ${what}`);
    return h;
  };
  return {
    functions: hosts,
    byArn: (arn) => find(arn, (h) => h.arn === arn || h.name === arn),
    byHandler: (name) => find(name, (h) => h.handlerName === name),
    warm: async () => {
      const failures: { name: string; handler: string; error: string }[] = [];
      await Promise.all(
        hosts.map((h) =>
          h.invokeReady().catch((e: unknown) => {
            failures.push({
              name: h.name,
              handler: h.handlerName,
              error: e instanceof Error ? e.message : String(e),
            });
          }),
        ),
      );
      return failures;
    },
    close: () => {
      for (const h of hosts) h.stop();
      daemon?.close();
      for (const r of roots) rmSync(r, { recursive: true, force: true });
    },
  };
}
