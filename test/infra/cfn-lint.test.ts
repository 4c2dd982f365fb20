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

/**
 * The default deployment, and the regulated one (audit replica in a second region, VPC mode, the
 * CI deploy role and its OIDC provider, which add the Deploy stack).
 */
const DEPLOYMENTS = {
  default: {},
  regulated: {
    VERITRAIL_AUDIT_REPLICA_BUCKET_ARN: 'arn:aws:s3:::veritrail-audit-replica',
    VERITRAIL_AUDIT_REPLICA_KEY_ARN:
      'arn:aws:kms:eu-central-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab',
    VERITRAIL_VPC_MODE: 'isolated',
    VERITRAIL_CI_GITHUB_REPOSITORY: 'acme/veritrail-ops',
  },
} as const;

describe.skipIf(!available)('cfn-lint on the synthesized templates', () => {
  // Synthesis and cfn-lint take ~30 s alone, several times that on a shared 2-core machine.
  it.each(Object.keys(DEPLOYMENTS) as (keyof typeof DEPLOYMENTS)[])(
    'finds no error or warning (%s deployment)',
    (name) => {
      const out = mkdtempSync(path.join(tmpdir(), 'veritrail-cfn-'));
      execFileSync(
        process.execPath,
        ['--import', 'tsx', 'scripts/synth.ts', '--stage', 'lint', '--out', out],
        {
          cwd: ROOT,
          env: {
            ...process.env,
            VERITRAIL_PIPELINES_DIR: path.join(ROOT, 'test/infra/fixtures/pipelines'),
            ...DEPLOYMENTS[name],
          },
          stdio: 'pipe',
        },
      );
      const files = readdirSync(out).filter((f) => f.endsWith('.template.json'));
      expect(files.length).toBeGreaterThanOrEqual(6);
      expect(files.some((f) => f.endsWith('-Deploy.template.json'))).toBe(name === 'regulated');
      const lint = spawnSync(
        'cfn-lint',
        files.map((f) => path.join(out, f)),
        { encoding: 'utf8' },
      );
      expect(lint.stdout + lint.stderr).toBe('');
      expect(lint.status).toBe(0);
    },
    240_000,
  );
});
