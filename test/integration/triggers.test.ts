import { appendFileSync, copyFileSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import type { ObjectAuditLog } from '../../src/audit/log.js';
import { RETRAIN_SKIP_PREDICATE_TYPE, verifyBundle } from '../../src/core/attest/index.js';
import type { ExecState } from '../../src/core/exec-state.js';
import { parsePipelineDefinition } from '../../src/core/pipeline.js';
import type { StartOutcome } from '../../src/core/start.js';
import { LocalControlPlane } from '../../src/local/control-plane.js';
import { isTemporaryName, type LandedCandidate, LandingWatcher } from '../../src/local/landing-watcher.js';
import type { LocalExecution } from '../../src/local/runner.js';
import { type LocalRuntime, openLocalRuntime } from '../../src/local/runtime.js';
import { LocalScheduler, schedulePayloadAt } from '../../src/local/scheduler.js';
import { loadPipelineFile } from '../../src/local/start-run.js';
import type { AuditEntry } from '../../src/ports.js';
import { makeWorkspace, type Workspace } from '../helpers/workspace.js';

async function entries(rt: LocalRuntime): Promise<AuditEntry[]> {
  const out: AuditEntry[] = [];
  for await (const e of (rt.audit as ObjectAuditLog).entries()) out.push(e);
  return out;
}

/** Polls until `check` passes (landing polls and queued runs are asynchronous). */
async function eventually(check: () => Promise<boolean> | boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

// ───────────────────────────── the landing watcher alone ─────────────────────────────

describe('the landing watcher', () => {
  let ws: Workspace;
  let seen: LandedCandidate[];
  let watcher: LandingWatcher;
  beforeEach(async () => {
    ws = makeWorkspace({ rows: 5 });
    seen = [];
    watcher = new LandingWatcher({
      landingDir: join(ws.dir, 'landing'),
      pipelines: ['credit-scoring'],
      pollMs: 60_000,
      onFile: async (f) => void seen.push(f),
    });
    await watcher.start();
  });
  afterEach(async () => {
    await watcher.stop();
    ws.cleanup();
  });
  const folder = () => join(ws.dir, 'landing', 'credit-scoring');

  it('does not pick up a file while it is still growing', async () => {
    const path = join(folder(), 'growing.csv');
    writeFileSync(path, 'a,b\n');
    await watcher.scan();
    appendFileSync(path, '1,2\n');
    await watcher.scan();
    appendFileSync(path, '3,4\n');
    await watcher.scan();
    expect(seen).toEqual([]);
    await watcher.scan();
    expect(seen.map((f) => f.path)).toEqual([path]);
    expect(seen[0]?.size).toBe(12);
    await watcher.scan();
    expect(seen).toHaveLength(1);
  });

  it('ignores temporary names, and picks up a file renamed into place', async () => {
    for (const n of [
      '.hidden.csv',
      'data.csv.part',
      'data.csv.tmp',
      'data.csv.crdownload',
      '.data.csv.swp',
    ]) {
      writeFileSync(join(folder(), n), 'x');
    }
    await watcher.scan();
    await watcher.scan();
    expect(seen).toEqual([]);
    renameSync(join(folder(), 'data.csv.part'), join(folder(), 'data.csv'));
    await watcher.scan();
    await watcher.scan();
    expect(seen.map((f) => f.path)).toEqual([join(folder(), 'data.csv')]);
  });

  it('names temporary files by the documented patterns', () => {
    expect(['.x', 'a.part', 'a.TMP', 'a.crdownload', 'a.swp'].every(isTemporaryName)).toBe(true);
    expect(['a.csv', 'part.csv', 'tmp'].some(isTemporaryName)).toBe(false);
  });
});

// ───────────────────────────── schedules ─────────────────────────────

describe('schedules under fake timers', () => {
  afterEach(() => vi.useRealTimers());

  it('fire at each cron time, in UTC, with the payload the AWS input transformer builds', async () => {
    vi.useFakeTimers();
    vi.setSystemTime(new Date('2024-05-06T02:58:30Z'));
    const def = parsePipelineDefinition({
      ...(JSON.parse(
        readFileSync(join(import.meta.dirname, '../../examples/credit-scoring/pipeline.json'), 'utf8'),
      ) as object),
      schedule: { cron: '0 3 * * *', force: false },
    });
    const fired: unknown[] = [];
    const scheduler = new LocalScheduler([def], { fire: (p) => fired.push(p) });
    scheduler.start();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(fired).toEqual([]);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(fired).toEqual([
      {
        pipeline: 'credit-scoring',
        force: false,
        rule: 'local-schedule/credit-scoring',
        time: '2024-05-06T03:00:00Z',
        eventId: expect.any(String),
      },
    ]);
    await vi.advanceTimersByTimeAsync(24 * 3600_000);
    expect(fired).toHaveLength(2);
    expect((fired[1] as { time: string }).time).toBe('2024-05-07T03:00:00Z');
    scheduler.stop();
    await vi.advanceTimersByTimeAsync(24 * 3600_000);
    expect(fired).toHaveLength(2);
  });

  it('refuses a cron that EventBridge could not deploy', () => {
    const def = parsePipelineDefinition({
      ...(JSON.parse(
        readFileSync(join(import.meta.dirname, '../../examples/credit-scoring/pipeline.json'), 'utf8'),
      ) as object),
      schedule: { cron: '0 3 1 * 1', force: false },
    });
    expect(() => new LocalScheduler([def], { fire: () => {} })).toThrow(
      expect.objectContaining({ code: 'PIPELINE_INVALID' }),
    );
  });
});

// ───────────────────────────── the control plane, with a fake executor ─────────────────────────────

/** Marks a run SUCCEEDED through the run store, as the state machine would, after `ms`. */
function fakeExecute(log: string[], ms = 0) {
  return async (rt: LocalRuntime, input: ExecState): Promise<LocalExecution> => {
    log.push(input.runId);
    await rt.runs.transition(input.runId, 'RUNNING');
    await new Promise((r) => setTimeout(r, ms));
    await rt.runs.transition(input.runId, 'SUCCEEDED');
    return { runId: input.runId, status: 'SUCCEEDED' };
  };
}

describe('the control plane', () => {
  let ws: Workspace;
  let landing: string;
  beforeEach(() => {
    ws = makeWorkspace({ rows: 20 });
    landing = join(ws.dir, 'landing');
  });
  afterEach(() => ws.cleanup());

  async function open(executed: string[], options: { ms?: number; concurrency?: number } = {}) {
    const rt = await openLocalRuntime(ws.home);
    const lines: string[] = [];
    const plane = new LocalControlPlane({
      rt,
      pipelines: [await loadPipelineFile(ws.pipeline, ws.dir)],
      landingDir: landing,
      pollMs: 25,
      concurrency: options.concurrency ?? 2,
      execute: fakeExecute(executed, options.ms),
      log: (l) => lines.push(l),
      schedules: false,
    });
    await plane.start();
    return { rt, plane, lines };
  }

  it('starts the same content once, whatever it is called, and records the copy as a duplicate', async () => {
    const executed: string[] = [];
    const { rt, plane, lines } = await open(executed);
    try {
      copyFileSync(ws.dataset, join(landing, 'credit-scoring', 'a.csv'));
      await eventually(() => executed.length === 1);
      copyFileSync(ws.dataset, join(landing, 'credit-scoring', 'copy-of-a.csv'));
      await eventually(async () => (await entries(rt)).some((e) => e.type === 'trigger.duplicate'));
      await plane.idle();
      expect(executed).toHaveLength(1);
      const dup = (await entries(rt)).find((e) => e.type === 'trigger.duplicate');
      expect(dup?.runId).toBe(executed[0]);
      expect(dup?.detail?.path).toBe(join(landing, 'credit-scoring', 'copy-of-a.csv'));
      expect(dup?.detail?.firstDataset).toMatch(/\/a\.csv$/);
      expect(lines.some((l) => l.includes('duplicate of run'))).toBe(true);
      // One line per event.
      expect(lines.every((l) => !l.includes('\n'))).toBe(true);
    } finally {
      await plane.stop();
      await rt.close();
    }
  });

  it('after a restart runs nothing twice and misses nothing that landed meanwhile', async () => {
    const executed: string[] = [];
    let session = await open(executed);
    copyFileSync(ws.dataset, join(landing, 'credit-scoring', 'first.csv'));
    await eventually(() => executed.length === 1);
    await session.plane.idle();
    await session.plane.stop();
    await session.rt.close();

    // While nothing runs: a new dataset lands.
    writeFileSync(join(landing, 'credit-scoring', 'second.csv'), `${readFileSync(ws.dataset, 'utf8')}\n`);
    session = await open(executed);
    try {
      await eventually(() => executed.length === 2);
      // Several more polls: first.csv is recognised by content and never runs again.
      await new Promise((r) => setTimeout(r, 200));
      await session.plane.idle();
      expect(executed).toHaveLength(2);
      expect(new Set(executed).size).toBe(2);
      const runs = await session.rt.runs.list();
      expect(runs.map((r) => r.status)).toEqual(['SUCCEEDED', 'SUCCEEDED']);
    } finally {
      await session.plane.stop();
      await session.rt.close();
    }
  });

  it('runs at most `concurrency` at once, and a stop leaves queued runs PENDING for the next start', async () => {
    const executed: string[] = [];
    let active = 0;
    let peak = 0;
    const rt = await openLocalRuntime(ws.home);
    const plane = new LocalControlPlane({
      rt,
      pipelines: [await loadPipelineFile(ws.pipeline, ws.dir)],
      landingDir: landing,
      pollMs: 25,
      concurrency: 1,
      schedules: false,
      execute: async (r, input) => {
        active++;
        peak = Math.max(peak, active);
        try {
          return await fakeExecute(executed, 150)(r, input);
        } finally {
          active--;
        }
      },
    });
    await plane.start();
    const base = readFileSync(ws.dataset, 'utf8');
    for (const i of [1, 2, 3])
      writeFileSync(join(landing, 'credit-scoring', `d${i}.csv`), `${base}${'\n'.repeat(i)}`);
    await eventually(() => executed.length === 1 && plane.load.queued === 2);
    await plane.stop();
    // The run under way finished; the queued ones were not started.
    expect(peak).toBe(1);
    expect(executed).toHaveLength(1);
    const statuses = (await rt.runs.list()).map((r) => r.status).sort();
    expect(statuses).toEqual(['PENDING', 'PENDING', 'SUCCEEDED']);
    await rt.close();

    const again = await open(executed, { concurrency: 2 });
    try {
      await eventually(() => executed.length === 3);
      await again.plane.idle();
      expect((await again.rt.runs.list()).every((r) => r.status === 'SUCCEEDED')).toBe(true);
    } finally {
      await again.plane.stop();
      await again.rt.close();
    }
  });

  it('records a malformed operator start and starts nothing', async () => {
    const executed: string[] = [];
    const { rt, plane } = await open(executed);
    try {
      const o = await plane.submit({ pipeline: 'credit-scoring', dataset: { uri: 'file://relative/path' } });
      expect(o).toMatchObject({ status: 'rejected', error: { code: 'PATH_REJECTED' } });
      expect((await entries(rt)).map((e) => e.type)).toEqual(['trigger.rejected']);
      expect(await rt.runs.list()).toEqual([]);
    } finally {
      await plane.stop();
      await rt.close();
    }
  });
});

// ───────────────────────────── end to end, with real runs ─────────────────────────────

describe('a real run through the control plane, then scheduled retraining', () => {
  let ws: Workspace;
  let rt: LocalRuntime;
  let plane: LocalControlPlane;
  let first: string;

  beforeAll(async () => {
    ws = makeWorkspace({ rows: 1500 });
    rt = await openLocalRuntime(ws.home);
    plane = new LocalControlPlane({
      rt,
      pipelines: [await loadPipelineFile(ws.pipeline, ws.dir)],
      landingDir: join(ws.dir, 'landing'),
      pollMs: 25,
      schedules: false,
    });
    await plane.start();
    mkdirSync(join(ws.dir, 'landing', 'credit-scoring'), { recursive: true });
    copyFileSync(ws.dataset, join(ws.dir, 'landing', 'credit-scoring', 'applications.csv'));
    await eventually(async () => (await rt.runs.list()).length === 1);
    await plane.idle();
    first = (await rt.runs.list())[0]?.runId ?? '';
  });
  afterAll(async () => {
    await plane.stop();
    await rt.close();
    ws.cleanup();
  });

  it('the landed file ran to SUCCEEDED', async () => {
    const run = await rt.runs.get(first);
    expect(run?.status).toBe('SUCCEEDED');
    expect(run?.trigger).toBe('landing');
  });

  it('wrote START and COMPLETE lineage events with the run digests', async () => {
    const events = (await plane.lineage.list()).filter((e) => e.run.facets?.veritrail?.runId === first);
    expect(events.map((e) => e.eventType).sort()).toEqual(['COMPLETE', 'START']);
    const run = await rt.runs.get(first);
    const complete = events.find((e) => e.eventType === 'COMPLETE');
    expect(complete?.inputs[0]?.facets?.version?.datasetVersion).toBe(run?.facts.rawDigest);
    expect(complete?.outputs.map((d) => d.facets?.version?.datasetVersion)).toEqual([
      run?.facts.processedDigest,
      run?.facts.modelDigest,
    ]);
    const start = events.find((e) => e.eventType === 'START');
    expect(start?.inputs[0]?.facets?.version?.datasetVersion).toBe(run?.facts.rawDigest);
  });

  it('skips scheduled retraining on unchanged inputs with a signed statement, and trains when forced', async () => {
    const def = plane.service.pipelines[0]?.def;
    if (!def) throw new Error('no pipeline');
    const o: StartOutcome = await plane.submit(schedulePayloadAt(def, new Date('2024-05-06T03:00:00Z')));
    expect(o).toMatchObject({ status: 'skipped', sinceRunId: first });
    if (o.status !== 'skipped') return;
    const bundle = JSON.parse(
      readFileSync(join(ws.home, 'objects', 'artifacts', o.bundleKey), 'utf8'),
    ) as unknown;
    const verified = verifyBundle(bundle, await rt.signer.publicKeyPem(), {
      predicateType: RETRAIN_SKIP_PREDICATE_TYPE,
    });
    expect((verified.statement.predicate as { previousRunId: string }).previousRunId).toBe(first);
    const skip = (await entries(rt)).filter((e) => e.type === 'retrain.skipped');
    expect(skip).toHaveLength(1);
    expect(skip[0]?.subjects?.model).toBe((await rt.runs.get(first))?.facts.modelDigest);

    const forced = await plane.submit({
      ...(schedulePayloadAt(def, new Date('2024-05-07T03:00:00Z')) as object),
      force: true,
    });
    expect(forced.status).toBe('started');
    await plane.idle();
    if (forced.status === 'started') expect((await rt.runs.get(forced.runId))?.status).toBe('SUCCEEDED');
  });
});
