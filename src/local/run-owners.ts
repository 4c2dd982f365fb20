/**
 * Who executes a local run, and what happens to runs whose executor is gone.
 *
 * Next to each run item (pk = RUN#<runId>, sk = RUN) the process that executes the run keeps an
 * owner item (sk = OWNER): its pid, host and a lease it renews while the run is under way. A run
 * that is PENDING or RUNNING and whose owner is gone (the pid no longer lives on this host, or the
 * lease ran out unrenewed) is closed by the next process that opens the state dir: its open steps
 * end FAILED, the run ends FAILED with ORCHESTRATOR_LOST and an audit entry (src/steps/finish.ts
 * failRun, the same path the AWS reconciler takes). A run that `serve` queued but had not started
 * when it stopped is "parked": the next `serve` starts it, nobody fails it.
 */

import { hostname } from 'node:os';
import {
  DeleteItemCommand,
  type DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
} from '@aws-sdk/client-dynamodb';
import { marshall, unmarshall } from '@aws-sdk/util-dynamodb';
import type { ErrorInfo } from '../core/errors.js';
import { toErrorInfo } from '../core/errors.js';
import type { RunRecord } from '../ports.js';
import { failRun } from '../steps/finish.js';
import { forRun, type UnitScoped } from './units.js';

/** A lease is renewed this often while its run is under way… */
const LEASE_RENEW_MS = 10_000;
/** …and is stale once this long has passed without a renewal. */
const LEASE_TTL_MS = 60_000;
/** A PENDING or RUNNING run with no owner item at all is left alone this long (it may be starting). */
const UNOWNED_GRACE_MS = 60_000;

const OWNER_SK = 'OWNER';

export interface RunOwner {
  runId: string;
  /** Parked: queued by a `serve` that stopped before starting it; the next `serve` starts it. */
  state: 'active' | 'parked';
  pid: number;
  hostname: string;
  leaseUntil: string;
}

/** Why an owner no longer counts, or undefined while it does. */
export function ownerGone(owner: RunOwner, now: Date, host = hostname()): string | undefined {
  if (owner.state === 'parked') return undefined;
  if (owner.hostname === host && !pidAlive(owner.pid)) return `its process ${owner.pid} has ended`;
  if (Date.parse(owner.leaseUntil) < now.getTime())
    return `its process ${owner.pid}@${owner.hostname} stopped renewing its lease at ${owner.leaseUntil}`;
  return undefined;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export class RunOwners {
  private readonly owned = new Set<string>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly client: DynamoDBClient,
    private readonly table: string,
    private readonly now: () => Date,
  ) {}

  private key(runId: string) {
    return marshall({ pk: `RUN#${runId}`, sk: OWNER_SK });
  }

  private async put(runId: string, state: RunOwner['state']): Promise<void> {
    const owner: RunOwner = {
      runId,
      state,
      pid: process.pid,
      hostname: hostname(),
      leaseUntil: new Date(this.now().getTime() + LEASE_TTL_MS).toISOString(),
    };
    await this.client.send(
      new PutItemCommand({ TableName: this.table, Item: { ...this.key(runId), ...marshall(owner) } }),
    );
  }

  /** This process executes the run from now on; its lease is renewed until `release`. */
  async own(runId: string): Promise<void> {
    await this.put(runId, 'active');
    this.owned.add(runId);
    this.timer ??= setInterval(() => void this.renew(), LEASE_RENEW_MS).unref();
  }

  /** The run was queued and not started: the next `serve` may start it. */
  async park(runId: string): Promise<void> {
    this.owned.delete(runId);
    await this.put(runId, 'parked');
  }

  /** The run has ended (or was handed back): no lease any more. */
  async release(runId: string): Promise<void> {
    this.owned.delete(runId);
    if (this.owned.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
    await this.client
      .send(new DeleteItemCommand({ TableName: this.table, Key: this.key(runId) }))
      .catch(() => undefined);
  }

  async get(runId: string): Promise<RunOwner | undefined> {
    const out = await this.client.send(
      new GetItemCommand({ TableName: this.table, Key: this.key(runId), ConsistentRead: true }),
    );
    return out.Item ? (unmarshall(out.Item) as RunOwner) : undefined;
  }

  private async renew(): Promise<void> {
    for (const runId of [...this.owned]) {
      try {
        await this.put(runId, 'active');
      } catch {
        /* the next renewal tries again; the lease has many renewals of slack */
      }
    }
  }

  /** Stops renewing (the process is closing its runtime); leases left run out or die with the pid. */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}

export interface ReconcileResult {
  runId: string;
  reason: string;
  error?: ErrorInfo;
}

/**
 * Closes every PENDING or RUNNING run whose owner is gone (see above), each in its own unit's log.
 * Idempotent and safe to run from several processes at once: audit entries are keyed by event id,
 * status changes conditional.
 */
export async function reconcileLostRuns(
  rt: UnitScoped,
  owners: RunOwners,
  options: { log?: (line: string) => void } = {},
): Promise<ReconcileResult[]> {
  const done: ReconcileResult[] = [];
  const open = (await rt.runs.list({ limit: 100_000 })).filter(
    (r) => r.status === 'RUNNING' || r.status === 'PENDING',
  );
  for (const run of open) {
    const now = rt.now();
    const owner = await owners.get(run.runId);
    let reason: string | undefined;
    if (owner) reason = ownerGone(owner, now);
    else if (now.getTime() - Date.parse(run.updatedAt ?? run.createdAt) > UNOWNED_GRACE_MS)
      reason = `no process owns it and it has not changed since ${run.updatedAt ?? run.createdAt}`;
    if (reason === undefined) continue;
    try {
      await closeLostRun(rt, run, reason);
      await owners.release(run.runId);
      options.log?.(`run ${run.runId} was ${run.status} but ${reason}: marked FAILED (ORCHESTRATOR_LOST)`);
      done.push({ runId: run.runId, reason });
    } catch (e) {
      done.push({ runId: run.runId, reason, error: toErrorInfo(e) });
    }
  }
  return done;
}

async function closeLostRun(rt: UnitScoped, run: RunRecord, reason: string): Promise<void> {
  await closeRun(rt, run, {
    error: {
      code: 'ORCHESTRATOR_LOST',
      message: `run ${run.runId} was ${run.status} but ${reason}; nothing recorded why it stopped. Start it again with \`veritrail runs retry ${run.runId} --pipeline <definition.json>\``,
    },
    step: 'Reconcile',
    detail: { previousStatus: run.status },
  });
}

/**
 * Ends a run that its own execution will not end (lost, or cancelled): every step still RUNNING
 * ends FAILED with the reason, then the run, with its audit entry (failRun) in the log of the run's
 * unit, its report signed with that unit's key.
 */
export async function closeRun(
  base: UnitScoped,
  run: RunRecord,
  f: { error: ErrorInfo; step: 'RecordFailure' | 'Reconcile'; detail?: Record<string, unknown> },
): Promise<void> {
  const rt = await forRun(base, run);
  const { error } = f;
  const at = rt.now().toISOString();
  // Open steps end first (a step can be recorded only while the run is RUNNING).
  for (const step of run.steps.filter((s) => s.status === 'RUNNING')) {
    try {
      await rt.runs.recordStep(run.runId, { ...step, status: 'FAILED', endedAt: at, error });
    } catch (e) {
      if (toErrorInfo(e).code !== 'RUN_TRANSITION_ILLEGAL') throw e;
    }
  }
  await failRun(rt, {
    runId: run.runId,
    pipeline: run.pipeline,
    actor: rt.actor,
    step: f.step,
    error,
    detail: { ...f.detail, openSteps: run.steps.filter((s) => s.status === 'RUNNING').map((s) => s.name) },
  });
}
