/**
 * Issue 12, "install like a tool": the package `npm pack` makes holds everything `veritrail` needs,
 * and its `veritrail` works from any folder. The dependencies are this checkout's (linked, not
 * downloaded: the test must not depend on the network); everything else comes from the tarball.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { makeWorkspace } from '../helpers/workspace.js';

const ROOT = join(import.meta.dirname, '..', '..');

describe('the packed package', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'veritrail-pack-'));
  const ws = makeWorkspace({ rows: 200 });
  afterAll(() => {
    rmSync(tmp, { recursive: true, force: true });
    ws.cleanup();
  });

  it('installs from `npm pack` and its veritrail runs a pipeline from another folder', () => {
    const packed = JSON.parse(
      execFileSync('npm', ['pack', '--pack-destination', tmp, '--json'], { cwd: ROOT, encoding: 'utf8' }),
    ) as { filename: string }[];
    const tarball = join(tmp, packed[0]?.filename as string);
    const into = join(tmp, 'installed');
    mkdirSync(into);
    execFileSync('tar', ['-xzf', tarball, '-C', into]);
    const pkg = join(into, 'package');
    symlinkSync(join(ROOT, 'node_modules'), join(pkg, 'node_modules'));

    const elsewhere = join(tmp, 'elsewhere');
    mkdirSync(elsewhere);
    const bin = join(pkg, 'bin', 'veritrail.mjs');
    const hash = execFileSync(process.execPath, [bin, 'hash', ws.dataset], {
      cwd: elsewhere,
      encoding: 'utf8',
    });
    expect(hash).toMatch(/^[0-9a-f]{64} {2}/);

    let out: string;
    try {
      out = execFileSync(
        process.execPath,
        [bin, 'run', ws.dataset, '--pipeline', ws.pipeline, '--home', join(elsewhere, 'home'), '--json'],
        { cwd: elsewhere, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
      );
    } catch (e) {
      // Exit 1 (FAILED) or 3 (REJECTED) still prints the summary: what matters here is that it ran.
      out = String((e as { stdout?: string }).stdout ?? '');
    }
    const summary = JSON.parse(out) as { runId: string; status: string };
    expect(summary.runId).toMatch(/^r-/);
    expect(['SUCCEEDED', 'REJECTED', 'FAILED']).toContain(summary.status);
  }, 180_000);
});
