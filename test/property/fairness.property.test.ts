import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CsvReader, csvLine } from '../../src/core/csv.js';
import {
  FairnessAccumulator,
  type FairnessCounts,
  fairnessReport,
  mergeCounts,
} from '../../src/core/fairness/index.js';

type Row = { s: string; r: string; y: boolean; p: boolean };

const rowArb = fc.record({
  s: fc.constantFrom('F', 'M', 'X'),
  r: fc.constantFrom('u', 'v|w', 'x'),
  y: fc.boolean(),
  p: fc.boolean(),
});
const rowsArb = fc.array(rowArb, { maxLength: 60 });

function countRows(rows: readonly Row[]): FairnessCounts {
  const acc = new FairnessAccumulator(['s', 'r']);
  for (const row of rows) acc.add([row.s, row.r], row.y, row.p);
  return acc.toCounts();
}

const OPTS = {
  attributes: ['s', 'r'],
  privileged: { s: 'M', r: 'u' },
  minGroupSize: 3,
  bootstrap: { samples: 20, seed: 3 },
};

describe('fairness properties', () => {
  it('permuting rows changes nothing', () => {
    fc.assert(
      fc.property(
        rowsArb.chain((rows) =>
          fc.tuple(
            fc.constant(rows),
            fc.shuffledSubarray(rows, { minLength: rows.length, maxLength: rows.length }),
          ),
        ),
        ([rows, shuffled]) => {
          expect(fairnessReport(countRows(shuffled), OPTS)).toEqual(fairnessReport(countRows(rows), OPTS));
        },
      ),
      { numRuns: 60 },
    );
  });

  it('splitting into k shards and merging gives identical results', () => {
    fc.assert(
      fc.property(rowsArb, fc.integer({ min: 1, max: 5 }), (rows, k) => {
        const shards: Row[][] = Array.from({ length: k }, () => []);
        rows.forEach((row, i) => {
          (shards[i % k] as Row[]).push(row);
        });
        const merged = shards.map(countRows).reduce(mergeCounts);
        expect(merged).toEqual(countRows(rows));
        expect(fairnessReport(merged, OPTS)).toEqual(fairnessReport(countRows(rows), OPTS));
      }),
      { numRuns: 60 },
    );
  });

  it('relabelling groups permutes the group results and keeps the aggregates', () => {
    const rename: Record<string, string> = { F: 'f2', M: 'm2', X: 'x2' };
    fc.assert(
      fc.property(rowsArb, (rows) => {
        const before = fairnessReport(countRows(rows), { ...OPTS, bootstrap: undefined });
        const after = fairnessReport(countRows(rows.map((r) => ({ ...r, s: rename[r.s] as string }))), {
          ...OPTS,
          privileged: { s: 'm2', r: 'u' },
          bootstrap: undefined,
        });
        for (const [key, g] of Object.entries(before.groups)) {
          const renamed = key.startsWith('s=')
            ? `s=${rename[key.slice(2)]}`
            : key.startsWith('r=')
              ? key
              : `${rename[key.split('|')[0] as string]}${key.slice(1)}`;
          expect(after.groups[renamed]).toEqual(g);
        }
        expect(after.aggregates).toEqual(before.aggregates);
      }),
      { numRuns: 60 },
    );
  });

  it('never puts NaN or Infinity in the JSON, whatever the counts', () => {
    const cell = fc.record({ tp: fc.nat(5), fp: fc.nat(5), tn: fc.nat(5), fn: fc.nat(5) });
    fc.assert(
      fc.property(
        fc.dictionary(fc.constantFrom('a', 'b', 'c'), cell),
        fc.option(fc.constantFrom('a', 'b', 'z')),
        (groups, priv) => {
          const counts: FairnessCounts = {
            version: 1,
            attributes: ['g'],
            cells: Object.entries(groups).map(([v, c]) => ({ values: [v], ...c })),
          };
          const r = fairnessReport(counts, {
            attributes: ['g'],
            ...(priv === null ? {} : { privileged: { g: priv } }),
            minGroupSize: 1,
            bootstrap: { samples: 10, seed: 1 },
          });
          const json = JSON.stringify(r);
          expect(json).not.toMatch(/NaN|Infinity/);
          const values = [
            ...Object.values(r.aggregates),
            ...Object.values(r.groups).flatMap((g) => Object.values(g)),
          ];
          expect(values.every((v) => v === null || Number.isFinite(v))).toBe(true);
        },
      ),
      { numRuns: 150 },
    );
  });

  it('the CSV reader hands over the requested columns of each record with its line, however the bytes are chunked', () => {
    const field = fc.string({
      unit: fc.constantFrom('a', 'b', ',', '"', '\n', '\r\n', 'é', ' ', '1'),
      maxLength: 6,
    });
    fc.assert(
      fc.property(
        fc
          .integer({ min: 1, max: 4 })
          .chain((w) =>
            fc.tuple(
              fc.constant(w),
              fc.array(fc.array(field, { minLength: w, maxLength: w }), { minLength: 1, maxLength: 8 }),
            ),
          ),
        fc.integer({ min: 1, max: 7 }),
        ([w, raw], chunk) => {
          // a one-column record holding "" would be a blank line, which is skipped
          const table = raw.map((r) => (w === 1 && r[0] === '' ? ['z'] : r));
          const lines = table.map((r) => csvLine(r));
          const text = lines.join('');
          // each record starts one line after the previous one's line breaks, quoted ones included
          const expected: Array<{ fields: string[]; line: number }> = [];
          let line = 1;
          table.forEach((r, i) => {
            expected.push({ fields: i === 0 ? r : [...r].reverse(), line });
            line += (lines[i] as string).split('\n').length - 1;
          });
          const got: Array<{ fields: string[]; line: number }> = [];
          const reader = new CsvReader({
            header: (names) => {
              got.push({ fields: names, line: 1 });
              return names.map((_, i) => names.length - 1 - i);
            },
            record: (values, line) => {
              got.push({ fields: [...values], line });
            },
          });
          const bytes = new TextEncoder().encode(text);
          for (let i = 0; i < bytes.length; i += chunk) reader.push(bytes.subarray(i, i + chunk));
          reader.end();
          expect(got).toEqual(expected);
        },
      ),
      { numRuns: 200 },
    );
  });
});
