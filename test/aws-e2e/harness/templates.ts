/**
 * The synthesized app as `sst deploy` would ship it: `npm run synth -- --bundle` (stacks/synthesize.ts
 * with bundle: true, in a child process so esbuild's and SST's open handles end with it), then the
 * cloud assembly read back: each stack's template and, for each Lambda function, the asset folder its
 * Code points at (Code.S3Key `<hash>.zip` ↔ `<outdir>/asset.<hash>`, as the asset manifest says).
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

export const REPO_ROOT = resolve(import.meta.dirname, '..', '..', '..');

export interface Template {
  Resources: Record<string, { Type: string; Properties?: Record<string, unknown>; Condition?: string; DependsOn?: unknown }>;
  Outputs?: Record<string, { Value: unknown; Export?: { Name: unknown }; Condition?: string }>;
  Conditions?: Record<string, unknown>;
  Parameters?: Record<string, { Default?: unknown; Type: string }>;
}

export interface SynthesizedApp {
  stage: string;
  account: string;
  region: string;
  /** Stack name → template, in the assembly's deployment order. */
  stacks: Map<string, Template>;
  /** Code.S3Key of a function → the folder holding its bundle. */
  assetDir(s3Key: string): string;
  outdir: string;
}

interface Manifest {
  artifacts: Record<string, { type: string; properties?: { templateFile?: string }; dependencies?: string[] }>;
}

export async function synthesize(options: { stage: string; account: string; region: string; outDir: string }): Promise<SynthesizedApp> {
  const outdir = join(REPO_ROOT, '.sst', `synth-${options.stage}`);
  await promisify(execFile)(
    process.execPath,
    [
      '--import',
      'tsx',
      'scripts/synth.ts',
      '--bundle',
      '--stage',
      options.stage,
      '--account',
      options.account,
      '--region',
      options.region,
      '--out',
      options.outDir,
    ],
    { cwd: REPO_ROOT, maxBuffer: 64 * 1024 * 1024, env: { ...process.env, NODE_OPTIONS: '' } },
  );
  return readAssembly(outdir, options);
}

export function readAssembly(outdir: string, options: { stage: string; account: string; region: string }): SynthesizedApp {
  const manifest = JSON.parse(readFileSync(join(outdir, 'manifest.json'), 'utf8')) as Manifest;
  const stackArtifacts = Object.entries(manifest.artifacts).filter(([, a]) => a.type === 'aws:cloudformation:stack');
  // Deployment order: a stack after the stacks it depends on.
  const names = stackArtifacts.map(([n]) => n);
  const ordered: string[] = [];
  const visit = (name: string, seen: Set<string>): void => {
    if (ordered.includes(name) || seen.has(name)) return;
    seen.add(name);
    for (const dep of manifest.artifacts[name]?.dependencies ?? []) if (names.includes(dep)) visit(dep, seen);
    ordered.push(name);
  };
  for (const n of names) visit(n, new Set());
  const stacks = new Map<string, Template>();
  for (const name of ordered) {
    const file = manifest.artifacts[name]?.properties?.templateFile;
    if (!file) throw new Error(`stack ${name} has no template file in ${outdir}/manifest.json`);
    stacks.set(name, JSON.parse(readFileSync(join(outdir, file), 'utf8')) as Template);
  }
  return {
    ...options,
    stacks,
    outdir,
    assetDir: (s3Key: string) => {
      const dir = join(outdir, `asset.${s3Key.replace(/\.zip$/, '')}`);
      if (!existsSync(dir)) throw new Error(`no asset folder ${dir} for Code.S3Key ${s3Key}`);
      return dir;
    },
  };
}
