/**
 * Every Lambda runtime a deploy asks AWS for, on a fresh account: the app's own templates, SST's
 * bootstrap stack ("SSTBootstrap", created by the first `sst deploy`) and the CDK bootstrap
 * template ("CDKToolkit"). Lambda refuses to create functions on deprecated runtimes (Lambda
 * Developer Guide, "Runtime deprecation policy"); sst 2.8 bootstrapped on nodejs14.x/18.x and no
 * test noticed, because nothing synthesized the bootstrap stack.
 */
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

/** Runtimes Lambda accepts for new functions on 2026-11-30 (nodejs20.x is past its deprecation date). */
const ACCEPTED = new Set(['nodejs22.x', 'nodejs24.x']);

const ROOT = path.resolve(import.meta.dirname, '../..');

type Resource = { Type: string; Properties?: Record<string, unknown> };
type Template = { Resources?: Record<string, Resource> };

function runtimesIn(template: Template): { id: string; runtime: unknown }[] {
  return Object.entries(template.Resources ?? {})
    .filter(([, r]) => r.Type === 'AWS::Lambda::Function' || r.Type === 'AWS::Serverless::Function')
    .map(([id, r]) => ({ id, runtime: r.Properties?.Runtime }));
}

/** SST's bootstrap synthesizes its stack into CDK_OUTDIR, then deploys; with no credentials the deploy fails. */
const BOOTSTRAP_OUT = mkdtempSync(path.join(tmpdir(), 'veritrail-sst-bootstrap-'));

describe('Lambda runtimes a fresh deploy asks for', () => {
  const app: Template[] = [];
  const captured: Template[] = [];

  beforeAll(async () => {
    process.env.VERITRAIL_PIPELINES_DIR = path.join(ROOT, 'test/infra/fixtures/pipelines');
    process.env.AWS_EC2_METADATA_DISABLED = 'true';
    const { synthesizeApp } = await import('../../stacks/synthesize.js');
    const synthesized = await synthesizeApp({
      stage: 'runtimes',
      root: ROOT,
      outdir: path.join(ROOT, '.sst', 'synth-runtimes-test'),
    });
    for (const stack of synthesized.synth().stacks) app.push(stack.template as Template);
    // `sst deploy` resolves the region before bootstrapping (sst.config.ts, --region or AWS_REGION).
    const { useProject } = await import('sst/project.js');
    useProject().config.region = 'eu-west-1';
    const { bootstrapSST } = await import('sst/bootstrap.js');
    process.env.CDK_OUTDIR = BOOTSTRAP_OUT;
    for (const k of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_PROFILE'])
      delete process.env[k];
    try {
      // No account here: the deploy after synthesis fails; the template is what we check.
      await expect(bootstrapSST('cdk-assets-bucket')).rejects.toThrow();
    } finally {
      delete process.env.CDK_OUTDIR;
    }
    for (const f of readdirSync(BOOTSTRAP_OUT).filter((f) => f.endsWith('.template.json')))
      captured.push(JSON.parse(readFileSync(path.join(BOOTSTRAP_OUT, f), 'utf8')) as Template);
  }, 120_000);

  it('the app: every function on an accepted runtime', () => {
    const found = app.flatMap(runtimesIn);
    expect(found.length).toBeGreaterThan(10);
    expect(found.filter((f) => !ACCEPTED.has(String(f.runtime)))).toEqual([]);
  });

  it("SST's bootstrap stack: every function (its metadata handler, the bucket's auto-delete provider) on an accepted runtime", () => {
    expect(captured).toHaveLength(1);
    const found = runtimesIn(captured[0] as Template);
    expect(found.map((f) => f.id).join(' ')).toMatch(/MetadataHandler/);
    expect(found.filter((f) => !ACCEPTED.has(String(f.runtime)))).toEqual([]);
  });

  it("keeps SST's working files (types, artifacts) beside its own assembly, so two synths at once leave each other's alone", async () => {
    // Two synths shared `.sst/types`, which `new App` deletes and rewrites: one failed with ENOENT in CI.
    const { useProject } = await import('sst/project.js');
    const out = path.join(ROOT, '.sst', 'synth-runtimes-test.work');
    expect(useProject().paths.artifacts).toBe(path.join(out, 'artifacts'));
    expect(readFileSync(path.join(out, 'types', 'index.ts'), 'utf8')).toContain('ConfigTypes');
  });

  it('the CDK bootstrap template (CDKToolkit) creates no function', () => {
    const file = path.join(
      ROOT,
      'node_modules/@aws-cdk/toolkit-lib/lib/api/bootstrap/bootstrap-template.yaml',
    );
    expect(readFileSync(file, 'utf8')).not.toMatch(/AWS::Lambda::Function|AWS::Serverless::Function/);
  });
});
