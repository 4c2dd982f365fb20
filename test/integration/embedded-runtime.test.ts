/**
 * Issue 12: the embedded runtime under crashes, signals, closed pipes, trainer limits and user
 * mistakes that can be caught before a run starts.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { describe as describeOutcome } from '../../src/cli/commands/start.js';
import { main } from '../../src/cli/main.js';
import { DEFAULT_POLICY_TEXT } from '../../src/core/gate/default-policy.js';
import { LocalControlPlane } from '../../src/local/control-plane.js';
import { FsObjectStore } from '../../src/local/fs-object-store.js';
import { LandingWatcher } from '../../src/local/landing-watcher.js';
import { ProcessTrainer } from '../../src/local/process-trainer.js';
import { openLocalRuntime } from '../../src/local/runtime.js';
import { loadPipelineFile } from '../../src/local/start-run.js';
import type { TrainingJobSpec } from '../../src/ports.js';
import { captureIo, makeWorkspace, type Workspace } from '../helpers/workspace.js';
import { CRASH, cli, spawnCli, waitFor } from '../reliability/cli-processes.js';

const TRAIN_CSV = new TextEncoder().encode('x,y\n1,0\n2,1\n');

/** A job with one small channel, as Train builds it. */
async function spec(
  objects: FsObjectStore,
  dir: string,
  command: string[],
  maxRuntimeSeconds = 60,
): Promise<TrainingJobSpec> {
  const digest = `sha256:${createHash('sha256').update(TRAIN_CSV).digest('hex')}` as const;
  const key = `test/${digest.slice(7)}`;
  await objects.put('artifacts', key, TRAIN_CSV);
  return {
    channels: { train: { key, digest, fileName: 'train.csv' } },
    jobName: `job-${Math.random().toString(36).slice(2)}`,
    runId: 'r-test',
    pipeline: 'test',
    command,
    workingDir: dir,
    hyperparameters: {},
    outputPrefix: 'training/r-test/',
    maxRuntimeSeconds,
  };
}

describe('trainer limits (the embedded trainer)', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'veritrail-trainer-'));
  });
  afterEach(async () => rm(dir, { recursive: true, force: true }));

  it('maxRuntimeSeconds kills the whole process group and reports TRAINING_TIMEOUT', async () => {
    const objects = new FsObjectStore(join(dir, 'objects'));
    const trainer = new ProcessTrainer(join(dir, 'jobs'), objects);
    // A duration no other process on the machine uses, to find any survivor by its command line.
    const marker = `${140 + Math.floor(Math.random() * 1000) / 100}`;
    const t0 = Date.now();
    const { jobName } = await trainer.start(
      await spec(objects, dir, ['sh', '-c', `sleep ${marker} & sleep ${marker}; wait`], 1),
    );
    const job = await trainer.wait(jobName);
    expect(Date.now() - t0).toBeLessThan(20_000);
    expect(job.status).toBe('Failed');
    expect(job.errorCode).toBe('TRAINING_TIMEOUT');
    expect(job.failureReason).toMatch(/maxRuntimeSeconds \(1 s\)/);
    await waitFor(
      () => !execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' }).includes(`sleep ${marker}`),
      5000,
      'every process of the trainer to be gone',
    );
  });

  it('a trainer that writes no model fails with TRAINING_OUTPUT_MISSING naming SM_MODEL_DIR', async () => {
    const objects = new FsObjectStore(join(dir, 'objects'));
    const trainer = new ProcessTrainer(join(dir, 'jobs'), objects);
    const { jobName } = await trainer.start(await spec(objects, dir, ['node', '-e', '0']));
    const job = await trainer.wait(jobName);
    expect(job.errorCode).toBe('TRAINING_OUTPUT_MISSING');
    expect(job.failureReason).toMatch(/wrote no model: SM_MODEL_DIR/);
  });

  it('a trainer that writes no predictions fails with TRAINING_OUTPUT_MISSING naming predictions.csv', async () => {
    const objects = new FsObjectStore(join(dir, 'objects'));
    const trainer = new ProcessTrainer(join(dir, 'jobs'), objects);
    const { jobName } = await trainer.start(
      await spec(objects, dir, [
        'node',
        '-e',
        "require('node:fs').writeFileSync(require('node:path').join(process.env.SM_MODEL_DIR, 'm.json'), '{}')",
      ]),
    );
    const job = await trainer.wait(jobName);
    expect(job.errorCode).toBe('TRAINING_OUTPUT_MISSING');
    expect(job.failureReason).toMatch(/predictions\.csv is missing/);
  });
});

describe('checks made before a run starts: exit 2, one line, nothing recorded', () => {
  let ws: Workspace;
  beforeEach(() => {
    ws = makeWorkspace({ rows: 60 });
  });
  afterEach(() => ws.cleanup());

  // biome-ignore lint/suspicious/noExplicitAny: a definition edited freely by each test
  type Def = Record<string, any>;
  const edit = (f: (def: Def) => void) => {
    const def = JSON.parse(readFileSync(ws.pipeline, 'utf8')) as Def;
    f(def);
    writeFileSync(ws.pipeline, JSON.stringify(def, null, 2));
  };

  async function refused(args: string[], pattern: RegExp): Promise<void> {
    const io = captureIo(ws.dir);
    const code = await main(args, io);
    const text = io.stderr.join('\n');
    expect(code, text).toBe(2);
    expect(text).toMatch(pattern);
    expect(text.trim().split('\n')).toHaveLength(1);
    expect(text).not.toMatch(CRASH);
  }
  const run = () => ['run', ws.dataset, '--pipeline', ws.pipeline, '--home', ws.home];

  it('a missing gate policy file', async () => {
    edit((d) => {
      d.gate.policy = 'missing.cedar';
    });
    await refused(run(), /gate\.policy missing\.cedar cannot be read \(ENOENT\)/);
  });

  it('an empty gate policy', async () => {
    writeFileSync(join(ws.dir, 'empty.cedar'), '');
    edit((d) => {
      d.gate.policy = 'empty.cedar';
    });
    await refused(run(), /contains no policy/);
  });

  it('a gate policy that does not parse', async () => {
    writeFileSync(
      join(ws.dir, 'bad.cedar'),
      `${DEFAULT_POLICY_TEXT}\npermit(principal, action, resource) when { ;`,
    );
    edit((d) => {
      d.gate.policy = 'bad.cedar';
    });
    await refused(run(), /bad\.cedar/);
  });

  it('a missing trainer code folder', async () => {
    edit((d) => {
      d.trainer.code = 'no-such-folder';
    });
    await refused(run(), /trainer\.code no-such-folder .* does not exist/);
  });

  it('a dataset folder whose files disagree on the header', async () => {
    const folder = join(ws.dir, 'data');
    mkdirSync(folder);
    const lines = readFileSync(ws.dataset, 'utf8').trim().split('\n');
    writeFileSync(join(folder, 'a.csv'), `${lines.slice(0, 30).join('\n')}\n`);
    const header = (lines[0] as string).split(',');
    const swapped = [header[1], header[0], ...header.slice(2)].join(',');
    const rows = lines.slice(30).map((l) => {
      const c = l.split(',');
      return [c[1], c[0], ...c.slice(2)].join(',');
    });
    writeFileSync(join(folder, 'b.csv'), `${swapped}\n${rows.join('\n')}\n`);
    await refused(
      ['run', folder, '--pipeline', ws.pipeline, '--home', ws.home],
      /header differs from the first file's/,
    );
  });

  it('too few rows for the split Preprocess will make', async () => {
    const lines = readFileSync(ws.dataset, 'utf8').trim().split('\n');
    writeFileSync(ws.dataset, `${lines.slice(0, 5).join('\n')}\n`);
    await refused(run(), /too few rows to train and validate/);
  });

  it('--home pointing at a file', async () => {
    writeFileSync(join(ws.dir, 'afile'), 'x');
    await refused(
      ['run', ws.dataset, '--pipeline', ws.pipeline, '--home', join(ws.dir, 'afile')],
      /state dir .*afile is a file, not a folder/,
    );
  });

  it('runs list on a missing home: a usage error, and no state dir is created', async () => {
    const missing = join(ws.dir, 'no-such-home');
    await refused(['runs', 'list', '--home', missing], /no state dir at .*no-such-home/);
    expect(existsSync(missing)).toBe(false);
  });

  it('serve with an invalid cron exits 2 instead of hanging', async () => {
    edit((d) => {
      d.schedule = { cron: '61 * * * *' };
    });
    await refused(['serve', '--pipeline', ws.pipeline, '--home', ws.home], /schedule\.cron|cron/);
  });
});

describe('a symbolic link in the landing folder', () => {
  it('is ignored: no candidate, so no run that must fail', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'veritrail-landing-'));
    try {
      const folder = join(dir, 'landing', 'p');
      mkdirSync(folder, { recursive: true });
      writeFileSync(join(dir, 'outside.csv'), 'a,b\n1,2\n');
      symlinkSync(join(dir, 'outside.csv'), join(folder, 'link.csv'));
      writeFileSync(join(folder, 'real.csv'), 'a,b\n1,2\n');
      const seen: string[] = [];
      const w = new LandingWatcher({
        landingDir: join(dir, 'landing'),
        pipelines: ['p'],
        pollMs: 20,
        onFile: async (f) => {
          seen.push(f.path);
        },
        onError: () => undefined,
      });
      await w.start();
      await waitFor(() => seen.length >= 1, 5000, 'the real file');
      await new Promise((r) => setTimeout(r, 200));
      await w.stop();
      expect(seen).toEqual([join(folder, 'real.csv')]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('crash recovery: runs whose owner is gone', () => {
  let ws: Workspace;
  beforeEach(() => {
    ws = makeWorkspace({ rows: 60 });
  });
  afterEach(() => ws.cleanup());

  it('the next process to open the home ends them FAILED (ORCHESTRATOR_LOST) with open steps closed and an audit entry; parked runs stay', async () => {
    const rt = await openLocalRuntime(ws.home);
    const base = {
      pipeline: 'credit-scoring',
      pipelineDigest: `sha256:${'0'.repeat(64)}` as const,
      trigger: 'operator',
      dataset: { uri: 'file:///data.csv' },
      createdAt: new Date().toISOString(),
    };
    try {
      await rt.runs.create({ ...base, runId: 'r-lost', idempotencyKey: 'k1' });
      await rt.runs.transition('r-lost', 'RUNNING');
      await rt.runs.recordStep('r-lost', {
        name: 'Train',
        status: 'RUNNING',
        startedAt: new Date().toISOString(),
      });
      await rt.runs.create({ ...base, runId: 'r-parked', idempotencyKey: 'k2' });
      await rt.owners.park('r-parked');
      await rt.runs.create({ ...base, runId: 'r-live', idempotencyKey: 'k3' });
      await rt.owners.own('r-live');
      // r-lost is owned by a process that has ended: a pid that no process has.
      const { PutItemCommand } = await import('@aws-sdk/client-dynamodb');
      const { marshall } = await import('@aws-sdk/util-dynamodb');
      const { hostname } = await import('node:os');
      const client = (rt.runs as unknown as { client: import('@aws-sdk/client-dynamodb').DynamoDBClient })
        .client;
      await client.send(
        new PutItemCommand({
          TableName: 'veritrail-runs',
          Item: marshall({
            pk: 'RUN#r-lost',
            sk: 'OWNER',
            runId: 'r-lost',
            state: 'active',
            pid: 2 ** 22 + 17,
            hostname: hostname(),
            leaseUntil: new Date(Date.now() + 60_000).toISOString(),
          }),
        }),
      );
    } finally {
      await rt.close();
    }

    const io = captureIo(ws.dir);
    expect(await main(['runs', 'list', '--json', '--home', ws.home], io)).toBe(0);
    const listed = JSON.parse(io.stdout.join('')) as {
      runId: string;
      status: string;
      error?: { code: string };
    }[];
    const byId = new Map(listed.map((r) => [r.runId, r]));
    expect(byId.get('r-lost')).toMatchObject({ status: 'FAILED', error: { code: 'ORCHESTRATOR_LOST' } });
    expect(byId.get('r-parked')?.status).toBe('PENDING');
    // This test process still lives: its run is left alone.
    expect(byId.get('r-live')?.status).toBe('PENDING');

    const again = await openLocalRuntime(ws.home, { reconcile: false });
    try {
      const lost = await again.runs.get('r-lost');
      expect(lost?.steps.find((s) => s.name === 'Train')).toMatchObject({
        status: 'FAILED',
        error: { code: 'ORCHESTRATOR_LOST' },
      });
    } finally {
      await again.close();
    }
    const show = captureIo(ws.dir);
    expect(await main(['audit', 'show', '--json', '--home', ws.home], show)).toBe(0);
    const text = show.stdout.join('\n');
    expect(text).toContain('r-lost');
    expect(text).toContain('ORCHESTRATOR_LOST');
  });
});

describe('signals and pipes on `veritrail run` (child processes)', () => {
  let ws: Workspace;
  beforeEach(() => {
    ws = makeWorkspace({ rows: 200 });
  });
  afterEach(() => ws.cleanup());

  it('a closed stdout (veritrail run … | head) never kills the run', async () => {
    const p = spawnCli(['run', ws.dataset, '--pipeline', ws.pipeline, '--home', ws.home], ws.dir);
    // The reader goes away at once: every write to stdout now meets EPIPE.
    p.child.stdout?.destroy();
    const { code, signal } = await p.exited;
    expect(signal).toBeNull();
    const stderr = p.stderr.join('\n');
    expect(stderr).not.toMatch(/EPIPE/);
    expect(stderr).not.toMatch(CRASH);
    expect([0, 1, 3]).toContain(code);
    const list = await cli(['runs', 'list', '--json', '--home', ws.home], ws.dir);
    const runs = JSON.parse(list.stdout) as { status: string }[];
    expect(runs).toHaveLength(1);
    expect(['SUCCEEDED', 'REJECTED', 'FAILED']).toContain(runs[0]?.status);
  }, 120_000);

  it('SIGINT ends the run FAILED (CANCELLED) with an audit entry, the trainer killed', async () => {
    // A trainer that would run for minutes.
    writeFileSync(join(ws.dir, 'trainer', 'slow.mjs'), 'setTimeout(() => {}, 300_000);\n');
    const def = JSON.parse(readFileSync(ws.pipeline, 'utf8')) as { trainer: { command: string[] } };
    def.trainer.command = ['node', 'trainer/slow.mjs'];
    writeFileSync(ws.pipeline, JSON.stringify(def));
    const p = spawnCli(['run', ws.dataset, '--pipeline', ws.pipeline, '--home', ws.home, '--json'], ws.dir);
    await waitFor(() => p.stderr.some((l) => /CheckCode\s+ok/.test(l)), 90_000, 'training to start');
    await new Promise((r) => setTimeout(r, 500));
    p.child.kill('SIGINT');
    const { code } = await p.exited;
    expect(code, p.stderr.join('\n')).toBe(130);
    expect(p.stderr.join('\n')).not.toMatch(CRASH);
    const summary = JSON.parse(p.stdout.join('')) as { status: string; error: { code: string } };
    expect(summary).toMatchObject({ status: 'FAILED', error: { code: 'CANCELLED' } });
    const show = await cli(['audit', 'show', '--json', '--home', ws.home], ws.dir);
    expect(show.stdout).toContain('CANCELLED');
    // The trainer went with the run: no process of it is left.
    await waitFor(
      () => !execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' }).includes(join('trainer', 'slow.mjs')),
      5000,
      'the trainer to be gone',
    );
  }, 150_000);
});

describe('the control plane after a failure and after a definition change', () => {
  let ws: Workspace;
  beforeEach(() => {
    ws = makeWorkspace({ rows: 20 });
  });
  afterEach(() => ws.cleanup());

  async function session(status: 'FAILED' | 'SUCCEEDED', executed: string[]) {
    const rt = await openLocalRuntime(ws.home);
    const lines: string[] = [];
    const plane = new LocalControlPlane({
      rt,
      pipelines: [await loadPipelineFile(ws.pipeline, ws.dir)],
      landingDir: join(ws.dir, 'landing'),
      pollMs: 25,
      schedules: false,
      log: (l) => lines.push(l),
      execute: async (r, input) => {
        executed.push(input.runId);
        await r.runs.transition(input.runId, 'RUNNING');
        if (status === 'FAILED') {
          const error = { code: 'TRAINING_FAILED' as const, message: 'the trainer exited with code 1' };
          await r.runs.transition(input.runId, 'FAILED', { error });
          return { runId: input.runId, status, error };
        }
        await r.runs.transition(input.runId, 'SUCCEEDED');
        return { runId: input.runId, status };
      },
    });
    await plane.start();
    return { rt, plane, lines };
  }

  it('a new trigger for content whose run FAILED says how to train on it again; a changed definition is a new run', async () => {
    const executed: string[] = [];
    const first = await session('FAILED', executed);
    try {
      mkdirSync(join(ws.dir, 'landing', 'credit-scoring'), { recursive: true });
      writeFileSync(join(ws.dir, 'landing', 'credit-scoring', 'a.csv'), readFileSync(ws.dataset));
      await waitFor(() => executed.length === 1, 20_000, 'the first run');
      await first.plane.idle();
      writeFileSync(join(ws.dir, 'landing', 'credit-scoring', 'copy.csv'), readFileSync(ws.dataset));
      await waitFor(
        () => first.lines.some((l) => l.includes('copy.csv: duplicate')),
        20_000,
        'the duplicate',
      );
      const line = first.lines.find((l) => l.includes('copy.csv: duplicate')) as string;
      expect(line).toMatch(/\(FAILED\)/);
      expect(line).toMatch(/veritrail runs show r-\S+/);
      expect(line).toMatch(/to train on this content again/);
    } finally {
      await first.plane.stop();
      await first.rt.close();
    }

    // The definition changes: the same files are a new identity, so they run again.
    const def = JSON.parse(readFileSync(ws.pipeline, 'utf8')) as { hyperparameters: Record<string, string> };
    def.hyperparameters.epochs = '301';
    writeFileSync(ws.pipeline, JSON.stringify(def, null, 2));
    const second = await session('SUCCEEDED', executed);
    try {
      await waitFor(() => executed.length === 2, 20_000, 'a run under the new definition');
      await second.plane.idle();
      expect(executed[1]).not.toBe(executed[0]);
    } finally {
      await second.plane.stop();
      await second.rt.close();
    }
  });
});

describe('veritrail runs retry', () => {
  let ws: Workspace;
  beforeEach(() => {
    ws = makeWorkspace({ rows: 200 });
  });
  afterEach(() => ws.cleanup());

  it('drives a FAILED run again as attempt 2 with the same identity, and refuses what is not a retry', async () => {
    const flaky = join(ws.dir, 'trainer', 'flaky.mjs');
    writeFileSync(flaky, "console.error('the GPU fell off'); process.exit(1);\n");
    const def = JSON.parse(readFileSync(ws.pipeline, 'utf8')) as { trainer: { command: string[] } };
    def.trainer.command = ['node', 'trainer/flaky.mjs'];
    writeFileSync(ws.pipeline, JSON.stringify(def, null, 2));

    const first = captureIo(ws.dir);
    expect(
      await main(['run', ws.dataset, '--pipeline', ws.pipeline, '--home', ws.home, '--json'], first),
    ).toBe(1);
    const failed = JSON.parse(first.stdout.join('')) as { runId: string; status: string };
    expect(failed.status).toBe('FAILED');

    // The cause is fixed in the training code (not part of the definition's identity).
    writeFileSync(flaky, "await import('./train.mjs');\n");
    const again = captureIo(ws.dir);
    const code = await main(
      ['runs', 'retry', failed.runId, '--pipeline', ws.pipeline, '--home', ws.home, '--json'],
      again,
    );
    expect([0, 3], again.stderr.join('\n')).toContain(code);
    const retried = JSON.parse(again.stdout.join('')) as {
      runId: string;
      attempt: number;
      retryOf: string;
      status: string;
    };
    expect(retried).toMatchObject({ runId: `${failed.runId}-a2`, attempt: 2, retryOf: failed.runId });
    expect(['SUCCEEDED', 'REJECTED']).toContain(retried.status);

    const rt = await openLocalRuntime(ws.home);
    try {
      const a = await rt.runs.get(failed.runId);
      const b = await rt.runs.get(retried.runId);
      expect(b?.idempotencyKey).toBe(a?.idempotencyKey);
      expect(b?.pipelineDigest).toBe(a?.pipelineDigest);
      expect(a?.status).toBe('FAILED');
    } finally {
      await rt.close();
    }

    // Not FAILED: no retry.
    const notFailed = captureIo(ws.dir);
    expect(
      await main(['runs', 'retry', retried.runId, '--pipeline', ws.pipeline, '--home', ws.home], notFailed),
    ).toBe(2);
    expect(notFailed.stderr.join('\n')).toMatch(/only a FAILED run can be retried/);
    // A changed definition is a new run, not a retry.
    const changed = JSON.parse(readFileSync(ws.pipeline, 'utf8')) as {
      hyperparameters: Record<string, string>;
    };
    changed.hyperparameters.epochs = '299';
    writeFileSync(ws.pipeline, JSON.stringify(changed, null, 2));
    const other = captureIo(ws.dir);
    expect(
      await main(['runs', 'retry', failed.runId, '--pipeline', ws.pipeline, '--home', ws.home], other),
    ).toBe(2);
    expect(other.stderr.join('\n')).toMatch(/a changed definition is a new run/);
  }, 120_000);
});

describe('serve whose log pipe closes', () => {
  let ws: Workspace;
  beforeEach(() => {
    ws = makeWorkspace({ rows: 200 });
  });
  afterEach(() => ws.cleanup());

  it('keeps serving: a file landed afterwards still runs to its end, and SIGTERM still stops it cleanly', async () => {
    const p = spawnCli(['serve', '--home', ws.home, '--pipeline', ws.pipeline, '--poll-ms', '50'], ws.dir);
    try {
      await waitFor(
        () => p.stderr.some((l) => l.includes('serving credit-scoring')),
        60_000,
        'serve to start',
      );
      // The reader of its log goes away: every later log line meets EPIPE.
      p.child.stderr?.destroy();
      mkdirSync(join(ws.home, 'landing', 'credit-scoring'), { recursive: true });
      writeFileSync(join(ws.home, 'landing', 'credit-scoring', 'a.csv'), readFileSync(ws.dataset));
      let status = '';
      await waitFor(
        async () => {
          const r = await cli(['runs', 'list', '--json', '--home', ws.home], ws.dir);
          const runs = r.code === 0 ? (JSON.parse(r.stdout) as { status: string }[]) : [];
          status = runs[0]?.status ?? '';
          return ['SUCCEEDED', 'REJECTED', 'FAILED'].includes(status);
        },
        120_000,
        'the landed file to run to its end',
      );
      expect(p.child.exitCode).toBeNull();
      p.child.kill('SIGTERM');
      expect((await p.exited).code).toBe(0);
    } finally {
      if (p.child.exitCode === null) p.child.kill('SIGKILL');
    }
  }, 180_000);
});

describe('veritrail start on content whose run FAILED', () => {
  it('says how to see why and how to train on it again', () => {
    const text = describeOutcome({
      status: 'duplicate',
      runId: 'r-abc',
      pipeline: 'credit-scoring',
      executionName: 'x',
      runStatus: 'FAILED',
      relaunched: false,
    });
    expect(text).toMatch(/veritrail runs show r-abc/);
    expect(text).toMatch(/veritrail runs retry r-abc --pipeline/);
  });
});
