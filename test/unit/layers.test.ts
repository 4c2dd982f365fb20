/**
 * The layer table (.dependency-cruiser.cjs, README.md "How it is built") holds on the repository,
 * covers every module of the product, and does refuse the imports it exists to refuse: a copy of the
 * rules run on a small made-up tree full of bad imports reports each one, so this test cannot pass
 * because the rules check nothing.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CONFIG = join(ROOT, '.dependency-cruiser.cjs');
const require = createRequire(import.meta.url);
const DEPCRUISE = join(ROOT, 'node_modules', 'dependency-cruiser', 'bin', 'dependency-cruiser.mjs');
/** What `npm run lint` cruises. */
const CRUISED = ['src', 'functions', 'stacks', 'bin', 'sst.config.ts', 'scripts', 'bench'];

interface Violation {
  from: string;
  to: string;
  rule: { name: string; severity: string };
  cycle?: { name: string }[];
}
interface CruiseResult {
  modules: { source: string; coreModule?: boolean; couldNotResolve?: boolean }[];
  summary: { violations: Violation[]; totalCruised: number };
}

/** Runs dependency-cruiser as `npm run lint` does (the same config), in `cwd`, and parses its JSON. */
function cruise(cwd: string, paths: string[]): CruiseResult {
  let out: string;
  try {
    out = execFileSync(process.execPath, [DEPCRUISE, '--config', CONFIG, '--output-type', 'json', ...paths], {
      cwd,
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
    });
  } catch (e) {
    // Exit code = number of errors; the JSON is on stdout all the same.
    out = (e as { stdout?: string }).stdout ?? '';
    if (!out) throw e;
  }
  return JSON.parse(out) as CruiseResult;
}

const layers = (require(CONFIG) as { layers: { name: string; path: string }[] }).layers;

describe('the layer table on the repository', () => {
  let result: CruiseResult;
  beforeAll(() => {
    result = cruise(ROOT, CRUISED);
  });

  it('has no violation', () => {
    expect(result.summary.violations.map((v) => `${v.rule.name}: ${v.from} → ${v.to}`)).toEqual([]);
    expect(result.summary.totalCruised).toBeGreaterThan(250);
  });

  it('places every module of the product in exactly one layer', () => {
    const ours = result.modules
      .map((m) => m.source)
      .filter((s) => /^(src|functions|stacks|bin|scripts|bench)\/|^sst\.config\.ts$/.test(s));
    expect(ours.length).toBeGreaterThan(200);
    const misplaced = ours.filter((s) => layers.filter((l) => new RegExp(l.path).test(s)).length !== 1);
    expect(misplaced).toEqual([]);
  });
});

describe('the layer table on bad imports', () => {
  let dir: string;
  let violations: string[];

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'veritrail-layers-'));
    const files: Record<string, string> = {
      'tsconfig.json': JSON.stringify({
        compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', strict: true },
        include: ['src', 'functions', 'stacks'],
      }),
      // core: an adapter, the file system, AWS, and a port (type only).
      'src/core/probe.ts': [
        "import { readFileSync } from 'node:fs';",
        "import { S3Client } from '@aws-sdk/client-s3';",
        "import { clients } from '../aws/clients.js';",
        "import type { Port } from '../ports.js';",
        'export const probe = [readFileSync, S3Client, clients] as unknown as Port;',
      ].join('\n'),
      'src/core/ok.ts': 'export const ok = 1;',
      'src/ports.ts': "import { ok } from './core/ok.js';\nexport type Port = typeof ok;",
      'src/aws/clients.ts': "import { ok } from '../core/ok.js';\nexport const clients = ok;",
      // steps reaching up into app; app itself is fine.
      'src/app/start.ts': "import { ok } from '../core/ok.js';\nexport const start = ok;",
      'src/steps/finish.ts': "import { start } from '../app/start.js';\nexport const finish = start;",
      // a cycle inside one layer
      'src/steps/a.ts': "import { b } from './b.js';\nexport const a = () => b();",
      'src/steps/b.ts': "import { a } from './a.js';\nexport const b = () => a();",
      // the adapters apart: aws → local is refused both ways
      'src/aws/uses-local.ts': "import { home } from '../local/home.js';\nexport const x = home;",
      'src/local/home.ts': "export const home = '.';",
      // an exception is one path: runner.ts may load functions/, another local module may not.
      'src/local/runner.ts': "export const load = () => import('../../functions/gate.js');",
      'src/local/other.ts': "export const load = () => import('../../functions/gate.js');",
      'functions/gate.ts':
        "import { clients } from '../src/aws/clients.js';\nexport const handler = clients;",
      // stacks import src/core only
      'stacks/Bad.ts': "import { clients } from '../src/aws/clients.js';\nexport const stack = clients;",
      'stacks/Good.ts': "import { ok } from '../src/core/ok.js';\nexport const stack = ok;",
    };
    for (const [path, text] of Object.entries(files)) {
      mkdirSync(dirname(join(dir, path)), { recursive: true });
      writeFileSync(join(dir, path), `${text}\n`);
    }
    // The packages resolve as in the repository (an AWS SDK import is seen as one).
    symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
    const packageOf = (path: string) => path.replace(/^.*node_modules\/((@[^/]+\/)?[^/]+)\/.*$/, '$1');
    violations = cruise(dir, ['src', 'functions', 'stacks'])
      .summary.violations.map((v) => `${v.rule.name}: ${v.from} → ${packageOf(v.to)}`)
      .sort();
  });

  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('reports each bad import, and only those', () => {
    expect(violations).toEqual(
      [
        'adapter-aws-alone: src/aws/uses-local.ts → src/local/home.ts',
        'core-no-cloud: src/core/probe.ts → @aws-sdk/client-s3',
        'core-no-io: src/core/probe.ts → fs',
        'core-only-core: src/core/probe.ts → src/aws/clients.ts',
        'core-only-core: src/core/probe.ts → src/ports.ts',
        'layer-adapters: src/local/other.ts → functions/gate.ts',
        'layer-steps: src/steps/finish.ts → src/app/start.ts',
        'no-circular: src/steps/a.ts → src/steps/b.ts',
        'stacks-core-only: stacks/Bad.ts → src/aws/clients.ts',
      ].sort(),
    );
  });
});
