/**
 * Optional: the templates `npm run synth` writes pass cfn-lint (the CloudFormation linter). Runs
 * when `cfn-lint` is on PATH (`pip install cfn-lint`); otherwise it skips and says why.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '../..');
const probe = spawnSync('cfn-lint', ['--version'], { encoding: 'utf8' });
const available = probe.status === 0;
if (!available) {
  console.warn('cfn-lint is not on PATH: skipping the template lint (pip install cfn-lint to run it).');
}

describe.skipIf(!available)('cfn-lint on the synthesized templates', () => {
  it('finds no error or warning', () => {
    const out = mkdtempSync(path.join(tmpdir(), 'veritrail-cfn-'));
    execFileSync(process.execPath, ['--import', 'tsx', 'scripts/synth.ts', '--stage', 'lint', '--out', out], {
      cwd: ROOT,
      env: { ...process.env, VERITRAIL_PIPELINES_DIR: path.join(ROOT, 'test/infra/fixtures/pipelines') },
      stdio: 'pipe',
    });
    const files = readdirSync(out).filter((f) => f.endsWith('.template.json'));
    expect(files).toHaveLength(6);
    const lint = spawnSync(
      'cfn-lint',
      files.map((f) => path.join(out, f)),
      { encoding: 'utf8' },
    );
    expect(lint.stdout + lint.stderr).toBe('');
    expect(lint.status).toBe(0);
  });
});
