/**
 * `npm run bench -- <name>`: runs bench/<name>.ts. Each benchmark measures a reference in the same
 * run (openssl, sha256sum, a plain loop…) and prints a ratio, so results mean the same on any machine.
 */
import { readdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const available = readdirSync(here)
  .filter((f) => f.endsWith('.ts') && f !== 'main.ts' && !f.startsWith('_'))
  .map((f) => f.slice(0, -3))
  .sort();
// Bare words are benchmark names, except the value after an option (`--size-mb 256`).
const argv = process.argv.slice(2);
const wanted = argv.filter(
  (a, i) => !a.startsWith('-') && !(i > 0 && /^--[^=]+$/.test(argv[i - 1] ?? '') && !available.includes(a)),
);
const names = wanted.length > 0 ? wanted : available;
for (const name of names) {
  if (!available.includes(name)) {
    console.error(`unknown benchmark "${name}"; available: ${available.join(', ')}`);
    process.exit(2);
  }
}
for (const name of names) {
  console.log(`\n== bench ${name} ==`);
  const mod = (await import(`./${name}.ts`)) as { main(args: string[]): Promise<void> };
  await mod.main(process.argv.slice(2));
}
