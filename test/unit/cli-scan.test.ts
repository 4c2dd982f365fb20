import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { run } from '../../src/cli/commands/scan.js';
import { captureIo } from '../helpers/workspace.js';

const ROOT = join(import.meta.dirname, '..', '..');
// Built from fragments so this file holds no complete credential-shaped literal.
const KEY_ID = `AKIA${'Z7QXW2RT4YVB'}N3PD`;
const GH_TOKEN = `ghp_${'a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8'}`;

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'veritrail-scan-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('veritrail scan', () => {
  it('names file, line and kind of each credential and never prints the secret', async () => {
    mkdirSync(join(dir, 'src'));
    writeFileSync(join(dir, 'src', 'train.py'), `import os\nKEY = "${KEY_ID}"\n`);
    writeFileSync(join(dir, 'notes.md'), `token: ${GH_TOKEN}\n`);
    writeFileSync(join(dir, 'clean.py'), 'print("hello")\n');
    const io = captureIo(dir);
    expect(await run([], io)).toBe(1);
    const out = io.stdout.join('\n');
    expect(out).toContain('notes.md:1:');
    expect(out).toContain('github-token');
    expect(out).toContain('src/train.py:2:');
    expect(out).toContain('aws-access-key-id');
    const all = [...io.stdout, ...io.stderr].join('\n');
    expect(all).not.toContain(KEY_ID);
    expect(all).not.toContain(GH_TOKEN.slice(4));
    expect(io.stderr.join('\n')).toMatch(/2 hard-coded credential\(s\) found in 3 file\(s\)/);
  });

  it('exits 0 on clean code, honours the allow marker, skips node_modules, .git and symlinks', async () => {
    mkdirSync(join(dir, 'node_modules', 'x'), { recursive: true });
    writeFileSync(join(dir, 'node_modules', 'x', 'a.js'), `const k = "${KEY_ID}";\n`);
    writeFileSync(join(dir, 'ok.py'), `KEY = "${KEY_ID}"  # veritrail:allow-secret (test fixture)\n`);
    const outside = mkdtempSync(join(tmpdir(), 'veritrail-scan-outside-'));
    writeFileSync(join(outside, 'secret.txt'), `${GH_TOKEN}\n`);
    symlinkSync(outside, join(dir, 'linked'));
    const io = captureIo(dir);
    expect(await run(['--json'], io)).toBe(0);
    expect(JSON.parse(io.stdout.join(''))).toEqual({ findings: [], skipped: [], files: 1 });
    rmSync(outside, { recursive: true, force: true });
  });

  it('refuses a missing path with a usage error', async () => {
    await expect(run(['nope'], captureIo(dir))).rejects.toMatchObject({ code: 'USAGE' });
  });
});

describe('hooks/pre-commit', () => {
  const gitEnv = {
    ...process.env,
    GIT_AUTHOR_NAME: 't',
    GIT_AUTHOR_EMAIL: 't@example.com',
    GIT_COMMITTER_NAME: 't',
    GIT_COMMITTER_EMAIL: 't@example.com',
  };

  it('refuses a commit whose staged content holds a credential, and lets a clean one through', () => {
    execFileSync('git', ['init', '-q', dir]);
    copyFileSync(join(ROOT, 'hooks', 'pre-commit'), join(dir, '.git', 'hooks', 'pre-commit'));
    chmodSync(join(dir, '.git', 'hooks', 'pre-commit'), 0o755);
    // `veritrail` on PATH, as after a global install.
    const bin = join(dir, '.bin');
    mkdirSync(bin);
    writeFileSync(
      join(bin, 'veritrail'),
      `#!/bin/sh\nexec "${process.execPath}" "${join(ROOT, 'bin', 'veritrail.mjs')}" "$@"\n`,
    );
    chmodSync(join(bin, 'veritrail'), 0o755);
    const env = { ...gitEnv, PATH: `${bin}:${process.env.PATH ?? ''}` };

    writeFileSync(join(dir, 'config.py'), `AWS_ACCESS_KEY_ID = "${KEY_ID}"\n`);
    execFileSync('git', ['add', 'config.py'], { cwd: dir });
    const refused = spawnSync('git', ['commit', '-q', '-m', 'add config'], {
      cwd: dir,
      env,
      encoding: 'utf8',
    });
    expect(refused.status).not.toBe(0);
    expect(refused.stdout + refused.stderr).toContain('config.py:1:');
    expect(refused.stdout + refused.stderr).not.toContain(KEY_ID);

    // The working tree may still hold it; only what is staged counts.
    writeFileSync(join(dir, 'config.py'), 'import os\nAWS_ACCESS_KEY_ID = os.environ["AWS_ACCESS_KEY_ID"]\n');
    execFileSync('git', ['add', 'config.py'], { cwd: dir });
    const ok = spawnSync('git', ['commit', '-q', '-m', 'read from env'], { cwd: dir, env, encoding: 'utf8' });
    expect(ok.stderr).toContain('no credential found');
    expect(ok.status).toBe(0);
  }, 60_000);
});

describe('.pre-commit-hooks.yaml', () => {
  it('defines the veritrail-scan hook on the package bin', async () => {
    const { readFileSync } = await import('node:fs');
    const text = readFileSync(join(ROOT, '.pre-commit-hooks.yaml'), 'utf8');
    expect(text).toMatch(/^- id: veritrail-scan$/m);
    expect(text).toMatch(/^ {2}entry: veritrail scan$/m);
    expect(text).toMatch(/^ {2}language: node$/m);
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
      bin: Record<string, string>;
    };
    expect(pkg.bin.veritrail).toBe('bin/veritrail.mjs');
  });
});
