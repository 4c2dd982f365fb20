/**
 * `npm run bench -- bundles`: the size of every Lambda bundle, built the way `sst deploy` builds it
 * (SST's own esbuild 0.18 with the options SST derives from the function's `nodejs` props:
 * node_modules/sst/runtime/handlers/node.js, mirrored by `sstEsbuildOptions`), minified and
 * deflated (what the zip Lambda receives holds), plus any file copied next to it (Cedar's wasm).
 * Powertools (@aws-lambda-powertools/*) is not in them: it comes from the Lambda layer every
 * function has (stacks/bundling.ts).
 *
 * The reference, measured in the same run: the same entry bundled the old way, as before the
 * composition roots: unminified, without the zod plugin, and with every adapter and every SDK
 * client (createAwsRuntime, which the old global runtime factory imported into every bundle).
 * Goal (issue 10): every bundle's JS ≤ 1 MiB. test/infra/bundles.test.ts asserts it on the
 * bundles SST itself writes.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { deflateRawSync } from 'node:zlib';
import { CEDAR_WASM_FILE, FUNCTIONS_WITH_CEDAR, NODEJS_BUNDLING } from '../stacks/bundling.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const MIB = 1024 * 1024;

interface SstNodejs {
  format?: 'esm' | 'cjs';
  minify?: boolean;
  sourcemap?: boolean;
  esbuild?: Record<string, unknown>;
}

/** The esbuild options SST 2.49 builds for an ESM function in deploy mode (node.js `build`). */
export function sstEsbuildOptions(
  entry: string,
  nodejs: SstNodejs,
  outfile: string,
): Record<string, unknown> {
  const { external, ...override } = (nodejs.esbuild ?? {}) as { external?: string[] };
  return {
    entryPoints: [entry],
    platform: 'node',
    external: ['sharp', 'pg-native', ...(external ?? [])],
    keepNames: true,
    bundle: true,
    logLevel: 'silent',
    metafile: true,
    format: 'esm',
    target: 'esnext',
    mainFields: ['module', 'main'],
    banner: {
      js: [
        `import { createRequire as topLevelCreateRequire } from 'module';`,
        `const require = topLevelCreateRequire(import.meta.url);`,
        `import { fileURLToPath as topLevelFileUrlToPath, URL as topLevelURL } from "url"`,
        `const __dirname = topLevelFileUrlToPath(new topLevelURL(".", import.meta.url))`,
        '',
      ].join('\n'),
    },
    outfile,
    sourcemap: nodejs.sourcemap !== false,
    minify: nodejs.minify,
    ...override,
  };
}

/** SST's esbuild (0.18), not the project's (0.28): the bundles must be what deploy produces. */
export async function sstEsbuild(): Promise<{ build(o: Record<string, unknown>): Promise<unknown> }> {
  const sstRequire = createRequire(createRequire(import.meta.url).resolve('sst/package.json'));
  const mod = (await import(sstRequire.resolve('esbuild'))) as {
    default?: { build(o: Record<string, unknown>): Promise<unknown> };
    build?: (o: Record<string, unknown>) => Promise<unknown>;
  };
  return (mod.default ?? mod) as { build(o: Record<string, unknown>): Promise<unknown> };
}

export interface BundleSize {
  bytes: number;
  deflated: number;
}

function sizeOf(file: string): BundleSize {
  const data = readFileSync(file);
  return { bytes: data.length, deflated: deflateRawSync(data, { level: 9 }).length };
}

const kib = (n: number) => `${(n / 1024).toFixed(0).padStart(5)} KiB`;

export async function main(_args: string[]): Promise<void> {
  const esbuild = await sstEsbuild();
  const work = mkdtempSync(path.join(tmpdir(), 'veritrail-bench-bundles-'));
  const names = readdirSync(path.join(ROOT, 'functions'))
    .filter((f) => f.endsWith('.ts'))
    .map((f) => f.slice(0, -3))
    .sort();
  try {
    console.log(
      `${'function'.padEnd(18)} ${'JS'.padStart(9)} ${'zipped'.padStart(9)}   ${'old way'.padStart(9)} ${'zipped'.padStart(9)}   ratio (JS)  ≤ 1 MiB`,
    );
    let worst = 0;
    for (const name of names) {
      const entry = path.join(ROOT, 'functions', `${name}.ts`);
      const out = path.join(work, name, 'functions', `${name}.mjs`);
      await esbuild.build(sstEsbuildOptions(entry, NODEJS_BUNDLING, out));
      // The old way: the same handler plus the every-adapter runtime factory, unminified.
      const oldEntry = path.join(work, `${name}-old.ts`);
      writeFileSync(
        oldEntry,
        `export { handler } from ${JSON.stringify(entry)};\n` +
          `export { createAwsRuntime } from ${JSON.stringify(path.join(ROOT, 'src/aws/runtime.ts'))};\n`,
      );
      const oldOut = path.join(work, `${name}-old`, 'functions', `${name}.mjs`);
      await esbuild.build(sstEsbuildOptions(oldEntry, { format: 'esm' }, oldOut));
      const now = sizeOf(out);
      const old = sizeOf(oldOut);
      worst = Math.max(worst, now.bytes);
      console.log(
        `${name.padEnd(18)} ${kib(now.bytes)} ${kib(now.deflated)}   ${kib(old.bytes)} ${kib(old.deflated)}   ${(now.bytes / old.bytes).toFixed(2).padStart(10)}  ${now.bytes <= MIB ? 'yes' : 'NO'}`,
      );
    }
    const wasm = sizeOf(
      path.join(
        path.dirname(createRequire(import.meta.url).resolve('@cedar-policy/cedar-wasm/nodejs')),
        CEDAR_WASM_FILE,
      ),
    );
    console.log(
      `\nplus, next to ${FUNCTIONS_WITH_CEDAR.join(', ')}: ${CEDAR_WASM_FILE} ${kib(wasm.bytes)}, zipped ${kib(wasm.deflated)} ` +
        '(Cedar compiled to wasm: not JS, cannot be minified; above 1 MiB on its own)',
    );
    console.log(`largest JS bundle: ${kib(worst)} (goal ≤ 1024 KiB): ${worst <= MIB ? 'met' : 'NOT met'}`);
    console.log(
      '(Powertools is not in the bundles: every function has its Lambda layer, stacks/bundling.ts)',
    );
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
