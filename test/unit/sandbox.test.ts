import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { chooseIsolation, sandboxCommand } from '../../src/local/sandbox.js';

const bwrap = chooseIsolation().level === 'bubblewrap';

describe('the bubblewrap sandbox', () => {
  it('binds an interpreter that lives under /tmp after the private /tmp (a checkout in /tmp)', () => {
    const dir = mkdtempSync(join('/tmp', 'veritrail-sandbox-'));
    try {
      const node = join(dir, 'node');
      copyFileSync(process.execPath, node);
      const { args } = sandboxCommand('bubblewrap', node, ['-v'], { readOnly: [], writable: [], cwd: '/' });
      const tmpfs = args.findIndex((a, i) => a === '--tmpfs' && args[i + 1] === '/tmp');
      const bind = args.findIndex((a, i) => a === '--ro-bind' && args[i + 1] === dir);
      expect(tmpfs).toBeGreaterThan(-1);
      expect(bind).toBeGreaterThan(tmpfs);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it.skipIf(!bwrap)('runs that interpreter for real', () => {
    const dir = mkdtempSync(join('/tmp', 'veritrail-sandbox-'));
    try {
      const node = join(dir, 'node');
      copyFileSync(process.execPath, node);
      const { cmd, args } = sandboxCommand('bubblewrap', node, ['-e', 'console.log(1 + 1)'], {
        readOnly: [],
        writable: [],
        cwd: '/',
      });
      const r = spawnSync(cmd, args, { encoding: 'utf8' });
      expect(r.stderr).toBe('');
      expect(r.stdout.trim()).toBe('2');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
