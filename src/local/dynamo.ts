/**
 * The embedded DynamoDB endpoint, shared by every veritrail process that opens one state dir.
 *
 * dynalite persists to LevelDB, which one process at a time may open. So the state dir has one
 * host: the process that holds the host lock (`<home>/dynamodb.host/`, itself a LevelDB whose
 * lock is an OS file lock, released by the kernel when its holder exits, SIGKILL included) opens
 * `<home>/dynamodb/` with dynalite on a loopback port and publishes the endpoint, with its pid, in
 * `<home>/dynamodb.endpoint.json`. Every other process talks to that endpoint. When a request finds
 * no one listening (the host ended), the process tries to become the host itself, else reads the
 * endpoint again, until one answers: any number of processes share the home, none ever opens the
 * database a second time, and a host that exits (or is killed) is replaced by the next request.
 *
 * A request cut off while the host died may have been applied or not; it is sent again, so a
 * conditional write can then find its own first attempt (the stores treat that as "already there").
 */
import { randomUUID } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { ensureRunTable } from '../aws/dynamo-run-store.js';
import { VeritrailError } from '../core/errors.js';

const require = createRequire(import.meta.url);
type DynaliteFactory = (options: {
  path?: string;
  createTableMs?: number;
  deleteTableMs?: number;
  updateTableMs?: number;
}) => Server;
const dynalite = require('dynalite') as DynaliteFactory;
// classic-level is dynalite's own LevelDB binding: resolved from dynalite, not a dependency of ours.
const dynaliteRequire = createRequire(require.resolve('dynalite'));

interface HostLock {
  open(): Promise<void>;
  close(): Promise<void>;
}
const { ClassicLevel } = dynaliteRequire('classic-level') as {
  ClassicLevel: new (path: string) => HostLock;
};

export const LOCAL_TABLE = 'veritrail-runs';

/** How long a request waits for some process to host the database before it gives up. */
const FAILOVER_TIMEOUT_MS = 30_000;

export interface LocalDynamo {
  client: DynamoDBClient;
  /** The endpoint requests go to now (it changes when the host changes). */
  readonly endpoint: string;
  /** This process hosts the database now. */
  readonly hosting: boolean;
  close(): Promise<void>;
}

/** What the host publishes in the state dir. */
interface PublishedEndpoint {
  endpoint: string;
  pid: number;
  hostname: string;
  since: string;
}

function endpointFile(dir: string): string {
  return `${dir}.endpoint.json`;
}

const CONNECTION_ERRORS = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ETIMEDOUT']);

/** The request never reached a live host (or the host went away under it). */
function isConnectionError(e: unknown): boolean {
  for (let cur: unknown = e, depth = 0; cur && depth < 4; depth++) {
    const c = cur as { code?: unknown; message?: unknown; cause?: unknown; errors?: unknown };
    if (typeof c.code === 'string' && CONNECTION_ERRORS.has(c.code)) return true;
    if (typeof c.message === 'string' && /socket hang up|ECONNREFUSED|ECONNRESET/.test(c.message))
      return true;
    if (Array.isArray(c.errors) && c.errors.some((x) => isConnectionError(x))) return true;
    cur = c.cause;
  }
  return false;
}

function lockedError(e: unknown): boolean {
  const c = e as { code?: unknown; cause?: { code?: unknown } };
  return c.code === 'LEVEL_LOCKED' || c.cause?.code === 'LEVEL_LOCKED';
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function listen(server: Server): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      resolve(`http://127.0.0.1:${port}`);
    });
  });
}

/**
 * Counts the requests dynalite is handling, and lets a closing host refuse new ones by dropping
 * their connection before dynalite sees them (the sender then fails over and sends again: safe,
 * nothing was done). dynalite closes its database once the HTTP server has no connection left, so
 * a request whose sender went away mid-flight would otherwise meet a closed database and throw
 * ("Database is closed") out of the host process.
 */
interface GatedServer {
  server: Server;
  close(): Promise<void>;
}

function gate(server: Server): GatedServer {
  const handlers = server.listeners('request') as ((req: IncomingMessage, res: ServerResponse) => void)[];
  server.removeAllListeners('request');
  let active = 0;
  let closing = false;
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    if (closing) {
      req.socket.destroy();
      return;
    }
    active++;
    let done = false;
    const finish = () => {
      if (!done) {
        done = true;
        active--;
      }
    };
    const end = res.end.bind(res) as (...a: unknown[]) => ServerResponse;
    res.end = ((...a: unknown[]) => {
      finish();
      return end(...a);
    }) as ServerResponse['end'];
    for (const h of handlers) h(req, res);
  });
  return {
    server,
    close: async () => {
      closing = true;
      const until = Date.now() + 30_000;
      while (active > 0 && Date.now() < until) await sleep(5);
      await new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      });
    },
  };
}

function newClient(
  endpoint: string | (() => Promise<{ protocol: string; hostname: string; port: number; path: string }>),
): DynamoDBClient {
  // Explicit placeholder credentials: the embedded server checks none, and the SDK must not go
  // looking for real ones (or send them anywhere) on a machine that has them.
  return new DynamoDBClient({
    endpoint: endpoint as never,
    region: 'local',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    // Connection failures are handled below (failover); nothing else is transient here.
    maxAttempts: 1,
  });
}

/** An in-memory database for this process alone (tests). */
async function startPrivateDynamo(): Promise<LocalDynamo> {
  const server = gate(dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 }));
  const endpoint = await listen(server.server);
  const client = newClient(endpoint);
  await ensureRunTable(client, LOCAL_TABLE);
  return {
    client,
    endpoint,
    hosting: true,
    close: async () => {
      await server.close();
      client.destroy();
    },
  };
}

/**
 * The state dirs this process hosts. LevelDB's file locks are POSIX record locks, which a process
 * loses when it closes *any* descriptor of the lock file: a second open of the same lock in this
 * process (which LevelDB refuses, closing its descriptor) would silently release the first one and
 * let another process host the same database. So within a process, the lock is opened at most once
 * per state dir, and every other user in the process goes to the host here.
 */
const hostedHere = new Map<string, SharedDynamo>();

class SharedDynamo implements LocalDynamo {
  readonly client: DynamoDBClient;
  private current: string | undefined;
  private lock: HostLock | undefined;
  private server: GatedServer | undefined;
  private closed = false;
  private resolving: Promise<void> | undefined;

  constructor(private readonly dir: string) {
    this.client = newClient(async () => {
      const url = new URL(this.current ?? 'http://127.0.0.1:9');
      return { protocol: url.protocol, hostname: url.hostname, port: Number(url.port), path: '/' };
    });
    const send = this.client.send.bind(this.client) as (...a: unknown[]) => Promise<unknown>;
    // Every request: sent to the current host; on a connection failure, find (or become) the host
    // and send again. Errors of any other kind are the caller's.
    (this.client as unknown as { send: (...a: unknown[]) => Promise<unknown> }).send = async (...a) => {
      const deadline = Date.now() + FAILOVER_TIMEOUT_MS;
      for (;;) {
        if (this.current === undefined) await this.resolve(deadline);
        const used = this.current;
        try {
          return await send(...a);
        } catch (e) {
          if (this.closed || !isConnectionError(e)) throw e;
          if (Date.now() > deadline) throw this.unreachable(e);
          if (this.current === used) this.current = undefined;
        }
      }
    };
  }

  get endpoint(): string {
    return this.current ?? '';
  }

  get hosting(): boolean {
    return this.server !== undefined;
  }

  /** Finds the host, or becomes it. One resolution at a time per process. */
  resolve(deadline: number): Promise<void> {
    this.resolving ??= this.findHost(deadline).finally(() => {
      this.resolving = undefined;
    });
    return this.resolving;
  }

  private async findHost(deadline: number): Promise<void> {
    const stale = new Set<string>();
    for (let attempt = 0; ; attempt++) {
      if (this.closed) throw new VeritrailError('INTERNAL', 'the run database connection is closed');
      const here = hostedHere.get(this.dir);
      if (here !== undefined) {
        if (here.hostEndpoint !== undefined) {
          this.current = here.hostEndpoint;
          return;
        }
        // Another user in this process is closing its host: wait, then look again.
        if (Date.now() > deadline) throw this.unreachable(undefined);
        await sleep(20);
        continue;
      }
      if (await this.tryHost()) return;
      const published = await readPublished(this.dir);
      if (published && !stale.has(published.endpoint)) {
        if (await reachable(published.endpoint)) {
          this.current = published.endpoint;
          return;
        }
        stale.add(published.endpoint);
      }
      if (Date.now() > deadline) throw this.unreachable(undefined);
      // The host may be starting (lock held, endpoint not yet written), or just ended.
      await sleep(20 + Math.floor(Math.random() * 40) + Math.min(attempt, 10) * 10);
      if (attempt % 10 === 9) stale.clear();
    }
  }

  /** The endpoint this instance serves, while it hosts. */
  hostEndpoint: string | undefined;

  private async tryHost(): Promise<boolean> {
    if (hostedHere.has(this.dir)) return false;
    const lock = new ClassicLevel(`${this.dir}.host`);
    // Claimed before the first await: no second open of this lock in this process (see hostedHere).
    hostedHere.set(this.dir, this);
    try {
      await lock.open();
    } catch (e) {
      hostedHere.delete(this.dir);
      if (lockedError(e)) return false;
      throw new VeritrailError(
        'INTERNAL',
        `cannot open the run database lock in ${this.dir}.host: ${(e as Error).message}`,
        {
          cause: e,
        },
      );
    }
    // We hold the lock: no other process has the database open, nor will until we release it.
    let server: GatedServer | undefined;
    try {
      server = gate(dynalite({ path: this.dir, createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 }));
      // Longer than the SDK's idle sockets live: fewer resets of a reused connection.
      server.server.keepAliveTimeout = 65_000;
      const endpoint = await listen(server.server);
      // The host serves others for as long as it lives, but never keeps a finished command alive.
      server.server.unref();
      const probe = newClient(endpoint);
      try {
        await ensureRunTable(probe, LOCAL_TABLE);
      } finally {
        probe.destroy();
      }
      const published: PublishedEndpoint = {
        endpoint,
        pid: process.pid,
        hostname: hostname(),
        since: new Date().toISOString(),
      };
      const tmp = `${endpointFile(this.dir)}.${randomUUID()}.tmp`;
      await writeFile(tmp, `${JSON.stringify(published)}\n`, { mode: 0o600 });
      await rename(tmp, endpointFile(this.dir));
      this.lock = lock;
      this.server = server;
      this.current = endpoint;
      this.hostEndpoint = endpoint;
      return true;
    } catch (e) {
      if (server) await server.close().catch(() => undefined);
      await lock.close().catch(() => undefined);
      hostedHere.delete(this.dir);
      throw e;
    }
  }

  private unreachable(cause: unknown): VeritrailError {
    return new VeritrailError(
      'TRANSIENT',
      `no process could serve the run database in ${this.dir} within ${FAILOVER_TIMEOUT_MS / 1000} s; check that the state dir is on a local disk and writable, then try again`,
      { cause },
    );
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.resolving?.catch(() => undefined);
    if (this.server) {
      this.hostEndpoint = undefined;
      const mine = this.current;
      // Others find the endpoint gone and elect a new host; the file is removed only if still ours.
      const published = await readPublished(this.dir);
      if (published !== undefined && published.endpoint === mine && published.pid === process.pid)
        await rm(endpointFile(this.dir), { force: true });
      await this.server.close();
      this.server = undefined;
    }
    this.client.destroy();
    if (this.lock) {
      await this.lock.close().catch(() => undefined);
      this.lock = undefined;
      if (hostedHere.get(this.dir) === this) hostedHere.delete(this.dir);
    }
  }
}

async function readPublished(dir: string): Promise<PublishedEndpoint | undefined> {
  try {
    const v = JSON.parse(await readFile(endpointFile(dir), 'utf8')) as Partial<PublishedEndpoint>;
    return typeof v.endpoint === 'string' && typeof v.pid === 'number' ? (v as PublishedEndpoint) : undefined;
  } catch {
    return undefined;
  }
}

/** A TCP connect to the endpoint succeeds (someone listens there). */
async function reachable(endpoint: string): Promise<boolean> {
  const { connect } = await import('node:net');
  const url = new URL(endpoint);
  return new Promise<boolean>((resolve) => {
    const s = connect({ host: url.hostname, port: Number(url.port) });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(1000, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

/**
 * The run database of a state dir (`dir` = `<home>/dynamodb`), shared with every other process on
 * it as described above; or, with `dir` undefined, an in-memory one for this process alone.
 */
export async function startLocalDynamo(dir: string | undefined): Promise<LocalDynamo> {
  if (dir === undefined) return startPrivateDynamo();
  await mkdir(dir, { recursive: true });
  const shared = new SharedDynamo(dir);
  try {
    await shared.resolve(Date.now() + FAILOVER_TIMEOUT_MS);
  } catch (e) {
    await shared.close();
    throw e;
  }
  return shared;
}
