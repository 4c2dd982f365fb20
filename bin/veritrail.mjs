#!/usr/bin/env node
// Runs the TypeScript CLI directly (tsx) from a checkout; a built package runs dist/ instead.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const major = Number(process.versions.node.split('.')[0]);
if (major < 22) {
  process.stderr.write(
    `veritrail needs Node.js 22 or newer (this is ${process.version}). Run it through npm (npm start, npx veritrail), which uses the project's Node 22.\n`,
  );
  process.exit(2);
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
