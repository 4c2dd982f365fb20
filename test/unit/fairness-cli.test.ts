import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { run } from '../../src/cli/commands/fairness.js';
import { captureText } from '../helpers/workspace.js';

const fixtures = join(import.meta.dirname, '..', 'fixtures', 'fairness');

const capture = (cwd = fixtures) => captureText(cwd);

describe('veritrail fairness', () => {
  describe('on a CSV with quoted fields, embedded commas and line breaks', () => {
    it('prints exactly groups, aggregates, intervals and warnings with --json', async () => {
      const io = capture();
      const code = await run(
        [
          'small.csv',
          '--label',
          'label',
          '--prediction',
          'pred',
          '--protected',
          'sex',
          '--privileged',
          'sex=M',
          '--bootstrap',
          '50',
          '--json',
        ],
        io,
      );
      expect(code).toBe(0);
      const out = JSON.parse(io.stdout);
      expect(Object.keys(out)).toEqual(['groups', 'aggregates', 'intervals', 'warnings']);
      expect(out.groups.F).toMatchObject({ count: 3, tp: 1, fp: 1, tn: 1, fn: 0 });
      expect(out.groups.M).toMatchObject({ count: 3, tp: 1, fp: 0, tn: 1, fn: 1 });
      // selection rates: F 2/3, M 1/3 → DI = (2/3)/(1/3) with d = F
      expect(out.aggregates.disparateImpact).toBeCloseTo(2, 12);
      expect(out.intervals.disparateImpact.samples).toBeGreaterThan(0);
      expect(out.warnings.some((w: string) => w.includes('fewer than the minimum of 30'))).toBe(true);
    });

    it('prints an aligned table without --json', async () => {
      const io = capture();
      const code = await run(
        [
          'small.csv',
          '--label',
          'label',
          '--prediction',
          'pred',
          '--protected',
          'sex,race',
          '--bootstrap',
          '0',
        ],
        io,
      );
      expect(code).toBe(0);
      expect(io.stdout).toMatch(/^group\s+count\s+baseRate/m);
      expect(io.stdout).toMatch(/^F\|w\s+2\s/m);
      expect(io.stdout).toMatch(/^demographicParityDifference\s/m);
    });
  });

  it('derives predictions from --score and --threshold', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vt-fair-'));
    writeFileSync(join(dir, 's.csv'), 'y,score,g\n1,0.9,a\n0,0.2,a\n1,0.4,b\n0,0.7,b\n');
    const io = capture(dir);
    const code = await run(
      [
        's.csv',
        '--label',
        'y',
        '--score',
        'score',
        '--threshold',
        '0.5',
        '--protected',
        'g',
        '--json',
        '--bootstrap',
        '0',
      ],
      io,
    );
    expect(code).toBe(0);
    const out = JSON.parse(io.stdout);
    expect(out.groups.a).toMatchObject({ tp: 1, tn: 1 });
    expect(out.groups.b).toMatchObject({ fn: 1, fp: 1 });
  });

  it('reads JSON Lines, skipping blank lines', async () => {
    const io = capture();
    const code = await run(
      [
        'small.jsonl',
        '--label',
        'label',
        '--prediction',
        'pred',
        '--protected',
        'sex',
        '--json',
        '--bootstrap',
        '0',
      ],
      io,
    );
    expect(code).toBe(0);
    const out = JSON.parse(io.stdout);
    expect(out.groups.F).toMatchObject({ tp: 1, fp: 1 });
    expect(out.groups.M).toMatchObject({ fn: 1, tn: 1 });
  });

  describe('when the input is bad', () => {
    it('names the line of a malformed CSV row and exits 2', async () => {
      const io = capture();
      const code = await run(
        ['bad-quote.csv', '--label', 'label', '--prediction', 'pred', '--protected', 'sex'],
        io,
      );
      expect(code).toBe(2);
      expect(io.stderr).toMatch(/line 4/);
    });

    it('names a missing column and exits 2', async () => {
      const io = capture();
      const code = await run(
        ['small.csv', '--label', 'nope', '--prediction', 'pred', '--protected', 'sex'],
        io,
      );
      expect(code).toBe(2);
      expect(io.stderr).toMatch(/"nope"/);
    });

    it('refuses a third label value with its line', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'vt-fair-'));
      writeFileSync(join(dir, 't.csv'), 'y,p,g\n1,1,a\n0,0,a\nyes,1,b\n');
      const io = capture(dir);
      expect(await run(['t.csv', '--label', 'y', '--prediction', 'p', '--protected', 'g'], io)).toBe(2);
      expect(io.stderr).toMatch(/line 4: column y has a third distinct value "yes"/);
    });

    it('names the line of invalid JSON', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'vt-fair-'));
      writeFileSync(join(dir, 'x.ndjson'), '{"y":1,"p":1,"g":"a"}\n{"y":1,\n');
      const io = capture(dir);
      expect(await run(['x.ndjson', '--label', 'y', '--prediction', 'p', '--protected', 'g'], io)).toBe(2);
      expect(io.stderr).toMatch(/line 2: not valid JSON/);
    });

    it('rejects a row with the wrong number of fields', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'vt-fair-'));
      writeFileSync(join(dir, 'w.csv'), 'y,p,g\n1,1,a\n0,0\n');
      const io = capture(dir);
      expect(await run(['w.csv', '--label', 'y', '--prediction', 'p', '--protected', 'g'], io)).toBe(2);
      expect(io.stderr).toMatch(/line 3: expected 3 fields/);
    });

    it('exits 2 for a missing file', async () => {
      const io = capture();
      expect(await run(['absent.csv', '--label', 'y', '--prediction', 'p', '--protected', 'g'], io)).toBe(2);
    });
  });

  describe('when the options are wrong', () => {
    it.each([
      [['small.csv', '--prediction', 'pred', '--protected', 'sex']],
      [['small.csv', '--label', 'label', '--protected', 'sex']],
      [['small.csv', '--label', 'label', '--score', 's', '--protected', 'sex']],
      [
        [
          'small.csv',
          '--label',
          'label',
          '--prediction',
          'pred',
          '--protected',
          'sex',
          '--privileged',
          'race=w',
        ],
      ],
      [['small.csv', '--label', 'label', '--prediction', 'pred', '--protected', 'sex', '--bootstrap', '-1']],
      [['small.csv', '--label', 'label', '--prediction', 'pred', '--protected', 'sex', '--bogus']],
    ])('exits 2 with usage for %j', async (args) => {
      const io = capture();
      expect(await run(args, io)).toBe(2);
      expect(io.stderr).toMatch(/usage: veritrail fairness/);
    });
  });
});
