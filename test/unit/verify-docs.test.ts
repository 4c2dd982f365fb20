/**
 * docs/verify.md is the auditor's reference for `veritrail verify <runId>`: its check table and its
 * list of codes must be exactly the closed unions of src/verify/codes.ts, so a check or a code
 * added, renamed or removed in one and not the other fails here.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Checks } from '../../src/verify/checks/context.js';
import { isVerifyCheckName, VerifyCheckNames, VerifyCodes } from '../../src/verify/codes.js';
import { BUNDLE_SLOTS } from '../../src/verify/run.js';

const doc = readFileSync(join(import.meta.dirname, '..', '..', 'docs', 'verify.md'), 'utf8');

/** The lines of the table that follows the `| check | what holds |` header. */
function checkTableRows(): string[] {
  const lines = doc.split('\n');
  const head = lines.findIndex((l) => l.startsWith('| check | what holds |'));
  if (head < 0) throw new Error('docs/verify.md has no `| check | what holds |` table');
  const rows: string[] = [];
  for (const line of lines.slice(head + 2)) {
    if (!line.startsWith('|')) break;
    rows.push(line);
  }
  return rows;
}

/** The check names of the table's first column; `<slot>.x` stands for x of each statement slot. */
function documentedChecks(): string[] {
  const names: string[] = [];
  for (const row of checkTableRows()) {
    const first = row.split('|')[1] ?? '';
    for (const [, name] of first.matchAll(/`([^`]+)`/g)) {
      if (name === undefined) continue;
      if (name.startsWith('<slot>.'))
        names.push(...BUNDLE_SLOTS.map((b) => `${b.slot}${name.slice('<slot>'.length)}`));
      else names.push(name);
    }
  }
  return names;
}

/** The codes listed in the paragraph that starts with "Codes (`src/verify/codes.ts`)". */
function documentedCodes(): string[] {
  const start = doc.indexOf('Codes (`src/verify/codes.ts`)');
  if (start < 0) throw new Error('docs/verify.md has no "Codes (`src/verify/codes.ts`)" paragraph');
  const paragraph = doc.slice(start, doc.indexOf('\n\n', start));
  return [...paragraph.matchAll(/`([A-Z][A-Z_]+)`/g)].map((m) => m[1] as string);
}

describe('docs/verify.md', () => {
  it('lists every check verify reports, and no other, in its check table', () => {
    const documented = documentedChecks();
    expect(documented.filter((n) => !isVerifyCheckName(n))).toEqual([]);
    expect(VerifyCheckNames.filter((n) => !documented.includes(n))).toEqual([]);
    expect(new Set(documented).size).toBe(documented.length);
  });

  it('lists every code a check can carry, and no other', () => {
    const documented = documentedCodes();
    expect([...documented].sort()).toEqual([...VerifyCodes].sort());
  });
});

describe('the check names', () => {
  it('are unique dotted names', () => {
    expect(new Set(VerifyCheckNames).size).toBe(VerifyCheckNames.length);
    for (const name of VerifyCheckNames) expect(name).toMatch(/^[a-z-]+\.[a-z-]+$/);
  });

  it('are the only names a check can be recorded under (a typo does not compile)', () => {
    const c = new Checks();
    c.pass('raw.data', 'ok');
    // @ts-expect-error: not a VerifyCheckName
    c.pass('raw.dta', 'ok');
    // @ts-expect-error: OK is not a failure code
    c.fail('raw.data', 'OK', 'ok');
    expect(c.list.map((x) => x.name)).toEqual(['raw.data', 'raw.dta', 'raw.data']);
  });

  it('refuse a name outside the union at run time too', () => {
    expect(isVerifyCheckName('raw.data')).toBe(true);
    expect(isVerifyCheckName('raw.dta')).toBe(false);
    expect(isVerifyCheckName('transform.present')).toBe(false);
  });
});
