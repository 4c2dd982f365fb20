import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { openLocalRuntime } from '../../src/local/runtime.js';
import { controlSocketPath, sendStart } from '../../src/local/serve-channel.js';
import { captureIo, makeWorkspace, type Workspace } from '../helpers/workspace.js';

const BIN = join(import.meta.dirname, '..', '..', 'bin', 'veritrail.mjs');

/** `veritrail serve` as a child process, its stderr collected line by line. */
function serve(ws: Workspace): { child: ChildProcess; lines: string[]; exited: Promise<number | null> } {
  const child = spawn(
    process.execPath,
    [BIN, 'serve', '--home', ws.home, '--pipeline', ws.pipeline, '--poll-ms', '50'],
    {
      cwd: ws.dir,
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  const lines: string[] = [];
  let buf = '';
  child.stderr?.on('data', (c: Buffer) => {
    buf += c.toString('utf8');
    const parts = buf.split('\n');
    buf = parts.pop() ?? '';
    lines.push(...parts);
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, lines, exited };
}

async function waitForLine(lines: string[], pattern: RegExp, ms = 30_000): Promise<string> {
  const end = Date.now() + ms;
  for (;;) {
    const hit = lines.find((l) => pattern.test(l));
    if (hit !== undefined) return hit;
    if (Date.now() > end) throw new Error(`no line matching ${pattern} in:\n${lines.join('\n')}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('veritrail serve and veritrail start', () => {
  let ws: Workspace;
  let server: ReturnType<typeof serve>;
  let startCode: number;
  let startJson: { status: string; runId: string };
  let exitCode: number | null;

  beforeAll(async () => {
    ws = makeWorkspace({ rows: 1500 });
    server = serve(ws);
    await waitForLine(server.lines, /veritrail serve: serving credit-scoring/);
    const io = captureIo(ws.dir);
    startCode = await main(
      ['start', '--pipeline', 'credit-scoring', '--dataset', ws.dataset, '--home', ws.home, '--json'],
      io,
    );
    startJson = JSON.parse(io.stdout[0] ?? '{}') as { status: string; runId: string };
    // Stop while the run is under way: it must still finish.
    await waitForLine(server.lines, /run r-\S+ of credit-scoring started/);
    server.child.kill('SIGTERM');
    exitCode = await server.exited;
  });
  afterAll(() => {
    if (server.child.exitCode === null) server.child.kill('SIGKILL');
    ws.cleanup();
  });

  it('started the run over the control socket', () => {
    expect(startCode).toBe(0);
    expect(startJson.status).toBe('started');
    expect(startJson.runId).toMatch(/^r-[a-z2-7]{26}$/);
  });

  it('let the run under way finish after SIGTERM, then exited cleanly', async () => {
    expect(exitCode).toBe(0);
    const stopping = server.lines.findIndex((l) => l.includes('SIGTERM: no new work accepted'));
    const finished = server.lines.findIndex((l) => l.includes(`run ${startJson.runId} SUCCEEDED`));
    expect(stopping).toBeGreaterThanOrEqual(0);
    expect(finished).toBeGreaterThan(stopping);
    expect(server.lines.at(-1)).toBe('veritrail serve: stopped');
    const rt = await openLocalRuntime(ws.home);
    try {
      expect((await rt.runs.get(startJson.runId))?.status).toBe('SUCCEEDED');
    } finally {
      await rt.close();
    }
  });

  it('prints one line per event on stderr', () => {
    expect(server.lines.every((l) => l.startsWith('veritrail serve: '))).toBe(true);
  });

  it('tells the operator when no control plane is listening', async () => {
    const io = captureIo(ws.dir);
    const code = await main(
      ['start', '--pipeline', 'credit-scoring', '--dataset', ws.dataset, '--home', ws.home],
      io,
    );
    expect(code).toBe(2);
    expect(io.stderr.join('\n')).toMatch(/no control plane is listening/);
    await expect(sendStart(controlSocketPath(ws.home), {})).rejects.toMatchObject({ code: 'USAGE' });
  });
});

describe('veritrail serve options', () => {
  it('refuses to start without a pipeline (exit 2)', async () => {
    const io = captureIo(process.cwd());
    expect(await main(['serve', '--home', '/nonexistent-veritrail-home'], io)).toBe(2);
    expect(io.stderr.join('\n')).toMatch(/--pipeline/);
  });

  it('refuses a bad --concurrency (exit 2)', async () => {
    const io = captureIo(process.cwd());
    expect(await main(['serve', '--concurrency', '0', '--pipeline', 'x.json'], io)).toBe(2);
  });
});
