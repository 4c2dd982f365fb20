#!/usr/bin/env node
// Runs the TypeScript CLI directly (tsx) when the sources are there (a checkout, or the package
// `npm pack` makes); a built package runs dist/ instead. Works from any folder: every path the CLI
// needs is found from this file, never from the working directory.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const major = Number(process.versions.node.split('.')[0]);
if (major < 22) {
  // Node 22 is found the same way everywhere: the `node` dependency's binary (installed with the
  // package, globally or locally), else a clear message.
  let node22;
  try {
    const pkg = createRequire(import.meta.url).resolve('node/package.json');
    const candidate = join(dirname(pkg), 'bin', 'node');
    if (existsSync(candidate)) node22 = candidate;
  } catch {
    /* not installed with its dependencies */
  }
  if (node22 === undefined) {
    process.stderr.write(
      `veritrail needs Node.js 22 or newer (this is ${process.version}). Install it, or install veritrail with its dependencies (npm install -g <tarball>), which bring Node 22.\n`,
    );
    process.exit(2);
  }
  const r = spawnSync(node22, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    stdio: 'inherit',
  });
  process.exit(r.status ?? (r.signal === 'SIGINT' ? 130 : 1));
}
let entry = join(root, 'src', 'cli', 'main.ts');
if (existsSync(entry)) {
  const { register } = await import('tsx/esm/api');
  register();
} else {
  entry = join(root, 'dist', 'src', 'cli', 'main.js');
}
const { main } = await import(pathToFileURL(entry).href);
process.exitCode = await main(process.argv.slice(2));
