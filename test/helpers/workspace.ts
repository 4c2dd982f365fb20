import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CliIo } from '../../src/cli/io.js';

const ROOT = join(import.meta.dirname, '..', '..');
export const EXAMPLE = join(ROOT, 'examples', 'credit-scoring');

export interface Workspace {
  dir: string;
  home: string;
  dataset: string;
  pipeline: string;
  cleanup(): void;
}

/**
 * A temp folder with the example's trainer, a pipeline definition and the first `rows` rows of the
 * example data: a whole pipeline on it takes a second or two.
 */
export function makeWorkspace(
  options: { rows?: number; pipeline?: (def: Record<string, unknown>) => void } = {},
): Workspace {
  const dir = mkdtempSync(join(tmpdir(), 'veritrail-test-'));
  cpSync(join(EXAMPLE, 'trainer'), join(dir, 'trainer'), { recursive: true });
  const lines = readFileSync(join(EXAMPLE, 'applications.csv'), 'utf8').split('\n');
  const dataset = join(dir, 'applications.csv');
  writeFileSync(dataset, `${lines.slice(0, (options.rows ?? 1500) + 1).join('\n')}\n`);
  const def = JSON.parse(readFileSync(join(EXAMPLE, 'pipeline.json'), 'utf8')) as Record<string, unknown>;
  // A small sample gives noisy fairness metrics: loosen the gate so the happy path is SUCCEEDED
  // (tests of the gate itself tighten it again).
  (def.gate as { thresholds: Record<string, unknown> }).thresholds = {
    minAccuracy: 0.6,
    disparateImpact: { min: 0.5, max: 2 },
    maxEqualizedOddsDifference: 0.5,
    minGroupSize: 10,
    // Judge by point values: intervals of groups this small are too wide for a happy path.
    intervalGroupSize: 10,
  };
  options.pipeline?.(def);
  const pipeline = join(dir, 'pipeline.json');
  writeFileSync(pipeline, JSON.stringify(def, null, 2));
  return {
    dir,
    home: join(dir, 'home'),
    dataset,
    pipeline,
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export interface CapturedIo extends CliIo {
  stdout: string[];
  stderr: string[];
}

export function captureIo(cwd: string, env: Record<string, string | undefined> = {}): CapturedIo {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return {
    stdout,
    stderr,
    out: (t) => stdout.push(t),
    err: (t) => stderr.push(t),
    env,
    cwd,
    tty: false,
  };
}

/** A CliIo that collects stdout and stderr as text, one newline per write. */
export function captureText(cwd: string): CliIo & { stdout: string; stderr: string } {
  const io = {
    stdout: '',
    stderr: '',
    out(t: string) {
      io.stdout += `${t}\n`;
    },
    err(t: string) {
      io.stderr += `${t}\n`;
    },
    env: {},
    cwd,
    tty: false,
  };
  return io;
}
