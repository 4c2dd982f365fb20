/** `veritrail` as child processes, for tests that need several processes on one state dir. */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';

export const BIN = join(import.meta.dirname, '..', '..', 'bin', 'veritrail.mjs');

export interface CliProcess {
  child: ChildProcess;
  stdout: string[];
  stderr: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts `veritrail <args>` in `cwd`; output is collected line by line. */
export function spawnCli(args: string[], cwd: string, env: NodeJS.ProcessEnv = process.env): CliProcess {
  const child = spawn(process.execPath, [BIN, ...args], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const stdout: string[] = [];
  const stderr: string[] = [];
  const collect = (into: string[]) => {
    let buf = '';
    return (c: Buffer) => {
      buf += c.toString('utf8');
      const parts = buf.split('\n');
      buf = parts.pop() ?? '';
      into.push(...parts);
    };
  };
  child.stdout?.on('data', collect(stdout));
  child.stderr?.on('data', collect(stderr));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  return { child, stdout, stderr, exited };
}

/** Runs `veritrail <args>` to its end. */
export async function cli(
  args: string[],
  cwd: string,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const p = spawnCli(args, cwd);
  const { code } = await p.exited;
  // Let the last 'data' events land.
  await new Promise((r) => setImmediate(r));
  return { code, stdout: p.stdout.join('\n'), stderr: p.stderr.join('\n') };
}

export async function waitFor(
  check: () => boolean | Promise<boolean>,
  ms: number,
  what: string,
): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** What no process may ever print: a stack trace or dynalite's own failure. */
export const CRASH = /Database is closed|^\s+at .+\(.+:\d+:\d+\)$|Unhandled|uncaught/im;
