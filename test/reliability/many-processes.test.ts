/**
 * Issue 12, "Numbers": 4 concurrent `run`s plus `runs list` every 100 ms plus `serve` with 10 files
 * landing, on one home: 0 errors, every run finished and verified. Every process here is a real
 * `veritrail` child process sharing the state dir (src/local/dynamo.ts: one host, the others
 * connect, a new host when it exits).
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { captureIo, makeWorkspace, type Workspace } from '../helpers/workspace.js';
import { type CliProcess, CRASH, cli, spawnCli, waitFor } from './cli-processes.js';

interface Listed {
  runId: string;
  status: string;
  dataset: string;
  error?: { code: string; message: string };
}

/**
 * The figures (4 runs, 10 landed files) with VERITRAIL_FULL_NUMBERS=1; `npm test` makes 2
 * runs and 4 landed files so that the file stays within about two minutes on a shared 2-core machine.
 */
const FULL = process.env.VERITRAIL_FULL_NUMBERS === '1';
const RUNS = FULL ? 4 : 2;
const FILES = FULL ? 10 : 4;

describe('many processes on one state dir', () => {
  const ws: Workspace = makeWorkspace({ rows: 200 });
  const spawned: CliProcess[] = [];
  afterAll(() => {
    for (const p of spawned)
      if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
    ws.cleanup();
  });

  it(`${RUNS} runs, runs list every 100 ms and serve with ${FILES} landed files: no errors, every run finished and verified`, async () => {
    const landing = join(ws.home, 'landing', 'credit-scoring');
    mkdirSync(landing, { recursive: true });
    const serve = spawnCli(
      ['serve', '--home', ws.home, '--pipeline', ws.pipeline, '--poll-ms', '100', '--concurrency', '3'],
      ws.dir,
    );
    spawned.push(serve);
    await waitFor(
      () => serve.stderr.some((l) => l.includes('serving credit-scoring')),
      60_000,
      'serve to start',
    );

    const runs = Array.from({ length: RUNS }, () => {
      const p = spawnCli(['run', ws.dataset, '--pipeline', ws.pipeline, '--home', ws.home, '--json'], ws.dir);
      spawned.push(p);
      return p;
    });
    const base = readFileSync(ws.dataset, 'utf8');
    for (let i = 1; i <= FILES; i++) writeFileSync(join(landing, `d${i}.csv`), `${base}${'\n'.repeat(i)}`);

    // `runs list` again 100 ms after each one ends, until the four runs and ten landed files ended.
    const listErrors: string[] = [];
    let lists = 0;
    let last: Listed[] = [];
    const done = () =>
      runs.every((r) => r.child.exitCode !== null) &&
      last.length === RUNS + FILES &&
      last.every((r) => r.status === 'SUCCEEDED' || r.status === 'REJECTED' || r.status === 'FAILED');
    const deadline = Date.now() + (FULL ? 600_000 : 150_000);
    while (!done()) {
      if (Date.now() > deadline)
        throw new Error(`not finished: ${JSON.stringify(last.map((r) => r.status))}`);
      const r = await cli(['runs', 'list', '--json', '--home', ws.home, '--limit', '100'], ws.dir);
      lists++;
      if (r.code !== 0 || CRASH.test(r.stderr)) listErrors.push(`exit ${r.code}: ${r.stderr}`);
      else last = JSON.parse(r.stdout) as Listed[];
      await new Promise((res) => setTimeout(res, 100));
    }
    const results = await Promise.all(runs.map((r) => r.exited));

    serve.child.kill('SIGTERM');
    const served = await serve.exited;

    expect(listErrors).toEqual([]);
    expect(lists).toBeGreaterThan(3);
    // 0 SUCCEEDED or 3 REJECTED by the gate (a small sample): both are finished runs.
    for (const r of results) expect([0, 3]).toContain(r.code);
    for (const r of runs) expect(r.stderr.join('\n')).not.toMatch(CRASH);
    expect(served.code).toBe(0);
    expect(serve.stderr.join('\n')).not.toMatch(CRASH);
    expect(serve.stderr.filter((l) => / error| ended with /.test(l))).toEqual([]);
    expect(
      last.filter((r) => r.status !== 'SUCCEEDED' && r.status !== 'REJECTED').map((r) => r.error),
    ).toEqual([]);
    // Every landed file ran exactly once.
    const landed = last.filter((r) => r.dataset.includes('/landing/'));
    expect(new Set(landed.map((r) => r.dataset)).size).toBe(FILES);
    expect(landed).toHaveLength(FILES);

    for (const r of last) {
      const io = captureIo(ws.dir);
      const code = await main(['verify', r.runId, '--trust-state-keys', '--home', ws.home], io);
      expect(code, `${r.runId}: ${io.stderr.join('\n')}`).toBe(0);
    }
    const audit = captureIo(ws.dir);
    expect(await main(['audit', 'verify', '--home', ws.home], audit), audit.stderr.join('\n')).toBe(0);
  }, 720_000);
});
