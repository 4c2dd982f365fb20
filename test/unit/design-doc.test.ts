/**
 * docs/design.md names, for each invariant, the tests that hold it: every path it names exists
 * (a glob like audit-tamper*.test.ts matches at least one file), and every invariant 1–10 has a row.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');
const doc = readFileSync(join(ROOT, 'docs', 'design.md'), 'utf8');
const rows = doc.split('\n').filter((l) => /^\| \d+ \|/.test(l));

function exists(path: string): boolean {
  if (!path.includes('*')) return existsSync(join(ROOT, path));
  const [before, after] = basename(path).split('*') as [string, string];
  const dir = join(ROOT, dirname(path));
  return existsSync(dir) && readdirSync(dir).some((f) => f.startsWith(before) && f.endsWith(after));
}

describe('docs/design.md', () => {
  it('has a row for each of the ten invariants, each naming at least one test', () => {
    expect(rows.map((r) => Number(r.split('|')[1]))).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    for (const r of rows) expect(r, r).toMatch(/test\//);
  });

  it('names only tests that exist', () => {
    const named = [...doc.matchAll(/test\/[\w./*-]+/g)].map((m) => m[0].replace(/[.)]$/, ''));
    expect(named.length).toBeGreaterThan(10);
    expect(named.filter((p) => !exists(p))).toEqual([]);
  });
});
