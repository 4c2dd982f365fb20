/**
 * The local control plane (`veritrail serve`): the landing-folder watcher, the cron scheduler and
 * operator starts all feed the one start service (src/app/start/service.ts); started runs queue for
 * execution on the embedded runner, at most `concurrency` at a time. Stopping refuses new work and
 * waits for the runs under way; runs still queued stay PENDING in the run store and are picked up
 * by the next start, as is anything that landed meanwhile (the landing folders are scanned first).
 * Pipelines of several business units share the process, each signed and logged as its own unit.
 */
import { createReadStream } from 'node:fs';
import { hostname } from 'node:os';
import { relative } from 'node:path';
import { type StartPipeline, StartService, startDepsOf } from '../app/start/service.js';
import { hashStream } from '../cas.js';
import { digestFromHex } from '../core/digest.js';
import { toErrorInfo } from '../core/errors.js';
import type { ExecState } from '../core/exec-state.js';
import type { StartOutcome } from '../core/start.js';
import { emitRunEnd } from '../steps/lineage.js';
import { type LandedCandidate, LandingWatcher } from './landing-watcher.js';
import { FsLineageSink, LOCAL_LINEAGE_NAMESPACE } from './lineage.js';
import { ownerGone } from './run-owners.js';
import { executeLocally, type LocalExecution } from './runner.js';
import type { LocalRuntime } from './runtime.js';
import { LocalScheduler } from './scheduler.js';

export interface ControlPlaneOptions {
  rt: LocalRuntime;
  pipelines: readonly StartPipeline[];
  landingDir: string;
  /** Runs executing at once; default 2. */
  concurrency?: number;
  /** Landing poll interval; default 1000 ms. */
  pollMs?: number;
  /** One line per event (stderr in `veritrail serve`). */
  log?: (line: string) => void;
  /** Runs one execution; the embedded runner by default (tests inject a fake). */
  execute?: (rt: LocalRuntime, input: ExecState) => Promise<LocalExecution>;
  /** Off in tests that fire schedules by hand. Default true. */
  schedules?: boolean;
}

interface Queued {
  input: ExecState;
  executionName: string;
}

export class LocalControlPlane {
  readonly service: StartService;
  readonly watcher: LandingWatcher;
  readonly scheduler: LocalScheduler;
  readonly lineage: FsLineageSink;
  private readonly queue: Queued[] = [];
  /** Run ids queued or executing in this process: launching is idempotent per run. */
  private readonly known = new Set<string>();
  private readonly running = new Map<string, Promise<void>>();
  private readonly pendingWork = new Set<Promise<unknown>>();
  private readonly concurrency: number;
  private readonly log: (line: string) => void;
  private readonly execute: (rt: LocalRuntime, input: ExecState) => Promise<LocalExecution>;
  private accepting = false;
  private idleWaiters: (() => void)[] = [];

  constructor(private readonly options: ControlPlaneOptions) {
    const { rt } = options;
    this.concurrency = Math.max(1, options.concurrency ?? 2);
    this.log = options.log ?? (() => {});
    this.execute = options.execute ?? ((r, input) => executeLocally(r, input));
    this.lineage = new FsLineageSink(rt.home);
    this.watcher = new LandingWatcher({
      landingDir: options.landingDir,
      pipelines: options.pipelines.map((p) => p.def.name),
      ...(options.pollMs !== undefined ? { pollMs: options.pollMs } : {}),
      onFile: (f) => this.onLanded(f).then(() => undefined),
      onError: (e, path) => this.log(`landing ${path}: ${toErrorInfo(e).code}: ${toErrorInfo(e).message}`),
    });
    this.service = new StartService({
      ...startDepsOf(rt),
      // Pipelines of several units at once: each start is recorded in its own unit's log (and a
      // retrain skip signed with its key); executeLocally runs each run as its unit.
      unitPorts: (unit) => rt.unitPorts(unit),
      pipelines: options.pipelines,
      launch: async (input, name) => this.launchOwned(input, name),
      landing: this.watcher,
      lineage: this.lineage,
      lineageNamespace: LOCAL_LINEAGE_NAMESPACE,
      warn: (m) => this.log(m),
    });
    this.scheduler = new LocalScheduler(
      options.pipelines.map((p) => p.def),
      { fire: (payload) => void this.submit(payload).catch(() => undefined), now: () => rt.now() },
    );
  }

  /** Recovers runs left PENDING, scans the landing folders, then polls and runs the schedules. */
  async start(): Promise<void> {
    this.accepting = true;
    await this.recoverPending();
    await this.watcher.start();
    if (this.options.schedules !== false) this.scheduler.start();
    for (const n of this.scheduler.next()) this.log(`schedule ${n.pipeline}: next at ${n.at.toISOString()}`);
  }

  /** Handles one control-plane input (operator start, schedule payload, EventBridge-shaped event). */
  async submit(raw: unknown): Promise<StartOutcome> {
    if (!this.accepting) {
      return {
        status: 'rejected',
        error: { code: 'TRANSIENT', message: 'the control plane is stopping; start again later' },
      };
    }
    return this.track(
      this.service.handle(raw).then(
        (o) => this.report(o, describeInput(raw)),
        (e: unknown) => {
          this.log(`error: ${toErrorInfo(e).code}: ${toErrorInfo(e).message}`);
          throw e;
        },
      ),
    );
  }

  private async onLanded(f: LandedCandidate): Promise<StartOutcome | undefined> {
    if (!this.accepting) return undefined;
    return this.track(
      (async () => {
        const { hex } = await hashStream(createReadStream(f.path));
        const outcome = await this.service.landed({
          pipeline: f.pipeline,
          path: f.path,
          digest: digestFromHex(hex),
        });
        return this.report(outcome, `landed ${relative(this.options.landingDir, f.path)}`);
      })(),
    );
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.pendingWork.add(p);
    void p.finally(() => this.pendingWork.delete(p)).catch(() => undefined);
    return p;
  }

  private report(o: StartOutcome, what: string): StartOutcome {
    switch (o.status) {
      case 'started':
        this.log(`${what}: run ${o.runId} of ${o.pipeline} started`);
        break;
      case 'duplicate':
        this.log(
          `${what}: duplicate of run ${o.runId} (${o.runStatus})${o.relaunched ? ', relaunched' : ''}; nothing new started${
            o.runStatus === 'FAILED'
              ? `. That run failed (\`veritrail runs show ${o.runId}\` says why); to train on this content again, fix the cause and run \`veritrail runs retry ${o.runId} --pipeline <definition.json>\``
              : ''
          }`,
        );
        break;
      case 'skipped':
        this.log(`${what}: retraining skipped, ${o.reason}`);
        break;
      case 'rejected':
        this.log(`${what}: rejected, ${o.error.code}: ${o.error.message}`);
        break;
      case 'ignored':
        this.log(`${what}: ignored, ${o.reason}`);
        break;
    }
    return o;
  }

  /**
   * Runs a stopped `serve` left queued (PENDING, owner parked) are queued again. A PENDING run with
   * any other owner belongs to a live process, or is closed by reconciliation when opening the home.
   */
  private async recoverPending(): Promise<void> {
    const byDigest = new Map(this.options.pipelines.map((p) => [p.digest as string, p]));
    for (const run of await this.options.rt.runs.list({ limit: 100_000 })) {
      if (run.status !== 'PENDING') continue;
      const owner = await this.options.rt.owners.get(run.runId);
      if (owner?.state !== 'parked') continue;
      const p = byDigest.get(run.pipelineDigest);
      if (p === undefined) {
        this.log(
          `run ${run.runId} is PENDING with a definition not loaded here (${run.pipelineDigest}); left as is`,
        );
        continue;
      }
      const input: ExecState = {
        runId: run.runId,
        pipeline: {
          name: run.pipeline,
          digest: run.pipelineDigest,
          ...(p.base !== undefined ? { base: p.base } : {}),
        },
        dataset: {
          uri: run.dataset.uri,
          ...(run.dataset.versionId !== undefined ? { versionId: run.dataset.versionId } : {}),
        },
        trigger: {
          type: run.trigger as ExecState['trigger']['type'],
          idempotencyKey: run.idempotencyKey,
          actor: this.options.rt.actor,
        },
      };
      this.log(`run ${run.runId} of ${run.pipeline} was PENDING: queued again`);
      await this.launchOwned(input, run.runId);
    }
  }

  /** Launch unless another live process executes the run; the run is owned by this one meanwhile. */
  private async launchOwned(input: ExecState, executionName: string): Promise<{ alreadyStarted: boolean }> {
    if (this.known.has(input.runId)) return { alreadyStarted: true };
    const owner = await this.options.rt.owners.get(input.runId);
    if (owner && owner.state === 'active' && ownerGone(owner, this.options.rt.now()) === undefined) {
      const mine = owner.pid === process.pid && owner.hostname === hostname();
      if (!mine) return { alreadyStarted: true };
    }
    if (!this.accepting) return { alreadyStarted: false };
    await this.options.rt.owners.own(input.runId);
    return this.launch(input, executionName);
  }

  private launch(input: ExecState, executionName: string): { alreadyStarted: boolean } {
    if (this.known.has(input.runId)) return { alreadyStarted: true };
    // Stopping: leave the run PENDING; the next start recovers it.
    if (!this.accepting) return { alreadyStarted: false };
    this.known.add(input.runId);
    this.queue.push({ input, executionName });
    this.pump();
    return { alreadyStarted: false };
  }

  private pump(): void {
    while (this.accepting && this.running.size < this.concurrency) {
      const next = this.queue.shift();
      if (next === undefined) break;
      const runId = next.input.runId;
      const t0 = Date.now();
      const p = this.execute(this.options.rt, next.input)
        .then(
          async (exec) => {
            this.log(`run ${runId} ${exec.status} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
          },
          (e: unknown) => {
            this.log(`run ${runId} ended with ${toErrorInfo(e).code}: ${toErrorInfo(e).message}`);
          },
        )
        .then(async () => {
          try {
            await emitRunEnd(this.lineage, await this.options.rt.runs.get(runId), {
              namespace: LOCAL_LINEAGE_NAMESPACE,
              now: this.options.rt.now(),
            });
          } catch (e) {
            this.log(`lineage end of run ${runId} not written: ${toErrorInfo(e).message}`);
          }
        })
        .then(() => this.options.rt.owners.release(runId).catch(() => undefined))
        .finally(() => {
          this.running.delete(runId);
          this.known.delete(runId);
          this.pump();
          if (this.running.size === 0 && this.queue.length === 0) {
            for (const w of this.idleWaiters.splice(0)) w();
          }
        });
      this.running.set(runId, p);
    }
  }

  /** Runs executing now, and runs queued. */
  get load(): { running: number; queued: number } {
    return { running: this.running.size, queued: this.queue.length };
  }

  /** Resolves when nothing is executing or queued (tests). */
  async idle(): Promise<void> {
    await Promise.allSettled([...this.pendingWork]);
    if (this.running.size === 0 && this.queue.length === 0) return;
    await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    await this.idle();
  }

  /**
   * Stops accepting work (watcher, schedules, new starts), lets starts under way and runs
   * executing finish, and leaves queued runs PENDING for the next start.
   */
  async stop(): Promise<void> {
    this.scheduler.stop();
    await this.watcher.stop();
    await Promise.allSettled([...this.pendingWork]);
    this.accepting = false;
    const left = this.queue.splice(0);
    for (const q of left) {
      this.known.delete(q.input.runId);
      // Handed to the next `serve`, which starts it; reconciliation leaves a parked run alone.
      await this.options.rt.owners.park(q.input.runId).catch(() => undefined);
    }
    if (left.length > 0)
      this.log(`${left.length} queued run(s) left PENDING; they start when serve starts again`);
    await Promise.allSettled([...this.running.values()]);
  }
}

function describeInput(raw: unknown): string {
  if (typeof raw !== 'object' || raw === null) return 'input';
  const r = raw as Record<string, unknown>;
  if (typeof r['detail-type'] === 'string') return `event "${r['detail-type']}"`;
  if (r.rule !== undefined) return `schedule ${typeof r.pipeline === 'string' ? r.pipeline : ''}`.trim();
  if (r.dataset !== undefined)
    return `operator start ${typeof r.pipeline === 'string' ? r.pipeline : ''}`.trim();
  return 'input';
}
