/**
 * The synthesized app as `sst deploy` would ship it: `npm run synth -- --bundle` (stacks/synthesize.ts
 * with bundle: true, in a child process so esbuild's and SST's open handles end with it), then the
 * cloud assembly read back: each stack's template and, for each Lambda function, the asset folder its
 * Code points at (Code.S3Key `<hash>.zip` ↔ `<outdir>/asset.<hash>`, as the asset manifest says).
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { promisify } from 'node:util';

export const REPO_ROOT = resolve(import.meta.dirname, '..', '..', '..');

export interface Template {
  Resources: Record<
    string,
    { Type: string; Properties?: Record<string, unknown>; Condition?: string; DependsOn?: unknown }
  >;
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
  artifacts: Record<
    string,
    { type: string; properties?: { templateFile?: string }; dependencies?: string[] }
  >;
}

/** Everything a synthesized assembly depends on: the app's sources, the lockfile, the pipelines folder. */
export function sourceDigest(pipelinesDir: string): string {
  const h = createHash('sha256');
  const walk = (dir: string, base: string) => {
    for (const name of readdirSync(dir).sort()) {
      if (name === 'node_modules' || name.startsWith('.')) continue;
      const full = join(dir, name);
      if (statSync(full).isDirectory()) walk(full, base);
      else
        h.update(`${relative(base, full)}\0`)
          .update(readFileSync(full))
          .update('\0');
    }
  };
  for (const part of [
    'stacks',
    'functions',
    'src',
    'state-machines',
    'policies',
    'schemas',
    'sst.config.ts',
    'package-lock.json',
  ]) {
    const full = join(REPO_ROOT, part);
    if (!existsSync(full)) continue;
    if (statSync(full).isDirectory()) walk(full, REPO_ROOT);
    else h.update(`${part}\0`).update(readFileSync(full));
  }
  walk(pipelinesDir, pipelinesDir);
  return h.digest('hex');
}

/**
 * Synthesizes with bundles, or reuses the previous assembly of this stage when it was built from
 * exactly the same sources (sourceDigest): the same inputs give the same templates and bundles.
 */
export async function synthesize(options: {
  stage: string;
  account: string;
  region: string;
  outDir: string;
  pipelinesDir: string;
  /** Further deploy settings (VERITRAIL_UNIT, VERITRAIL_UNITS_FILE…): part of what the assembly depends on. */
  env?: Record<string, string>;
}): Promise<SynthesizedApp & { reused: boolean }> {
  const outdir = join(REPO_ROOT, '.sst', `synth-${options.stage}`);
  const stamp = join(outdir, 'aws-e2e-source-digest');
  const digest = sourceDigest(options.pipelinesDir);
  const env = options.env ?? {};
  const unitsFile = env.VERITRAIL_UNITS_FILE;
  // The units file by its content, not its (temporary) path, so that an unchanged app is reused.
  const settings = createHash('sha256')
    .update(JSON.stringify(Object.entries({ ...env, VERITRAIL_UNITS_FILE: '' }).sort()))
    .update(unitsFile && existsSync(unitsFile) ? readFileSync(unitsFile) : '')
    .digest('hex');
  const key = `${digest} ${options.account} ${options.region}${options.env ? ` ${settings}` : ''}`;
  if (existsSync(stamp) && readFileSync(stamp, 'utf8') === key)
    return { ...readAssembly(outdir, options), reused: true };
  const run = () =>
    promisify(execFile)(
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
      {
        cwd: REPO_ROOT,
        maxBuffer: 64 * 1024 * 1024,
        env: { ...process.env, NODE_OPTIONS: '', VERITRAIL_PIPELINES_DIR: options.pipelinesDir, ...env },
      },
    );
  try {
    await run();
  } catch (e) {
    // SST's initProject writes and removes .sst.config.<ms>.mjs in the project root: another synth of
    // the same checkout at that moment can remove it first (ENOENT). Once more, then fail.
    if (!String((e as { stderr?: string }).stderr ?? e).includes('.sst.config.')) throw e;
    await run();
  }
  const app = readAssembly(outdir, options);
  writeFileSync(stamp, key);
  return { ...app, reused: false };
}

export function readAssembly(
  outdir: string,
  options: { stage: string; account: string; region: string },
): SynthesizedApp {
  const manifest = JSON.parse(readFileSync(join(outdir, 'manifest.json'), 'utf8')) as Manifest;
  const stackArtifacts = Object.entries(manifest.artifacts).filter(
    ([, a]) => a.type === 'aws:cloudformation:stack',
  );
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
