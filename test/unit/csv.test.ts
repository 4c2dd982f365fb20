import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CsvParser, csvLine, parseCsv } from '../../src/core/csv.js';
import { isVeritrailError } from '../../src/core/errors.js';

describe('CSV parser (RFC 4180)', () => {
  it('reads quoted fields with commas, doubled quotes and line breaks', () => {
    const records = parseCsv('a,b,c\r\n1,"x, y","say ""hi"""\n2,"two\nlines",z\n');
    expect(records.map((r) => r.fields)).toEqual([
      ['a', 'b', 'c'],
      ['1', 'x, y', 'say "hi"'],
      ['2', 'two\nlines', 'z'],
    ]);
  });

  it('numbers each record by the line it starts on, counting line breaks inside quotes', () => {
    const records = parseCsv('h\n"a\nb"\n\nc\n');
    expect(records.map((r) => r.line)).toEqual([1, 2, 5]);
  });

  it('keeps empty fields and reads a last record without a newline', () => {
    expect(parseCsv('a,,c\n,,').map((r) => r.fields)).toEqual([
      ['a', '', 'c'],
      ['', '', ''],
    ]);
  });

  describe('when the input is malformed', () => {
    it('a quote inside an unquoted field is refused with its line', () => {
      try {
        parseCsv('a,b\n1,x"y\n');
        expect.unreachable();
      } catch (e) {
        expect(isVeritrailError(e, 'DATASET_VALUE')).toBe(true);
        expect((e as Error).message).toMatch(/line 2/);
      }
    });

    it('an unclosed quote (a truncated file) is refused', () => {
      expect(() => parseCsv('a\n"never closed\n')).toThrow(/never closed/);
    });
  });

  it('gives the same records however the text is chunked', () => {
    const field = fc.string({ unit: fc.constantFrom('a', 'b', ',', '"', '\n', ' ') });
    fc.assert(
      fc.property(
        fc.array(fc.array(field, { minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: 6 }),
        fc.array(fc.nat(40)),
        (rows, cuts) => {
          const text = rows.map((r) => csvLine(r)).join('');
          const whole = parseCsv(text).map((r) => r.fields);
          const p = new CsvParser();
          const chunked: string[][] = [];
          let at = 0;
          for (const c of [...cuts].sort((a, b) => a - b)) {
            const end = Math.min(text.length, c);
            if (end > at) {
              chunked.push(...p.push(text.slice(at, end)).map((r) => r.fields));
              at = end;
            }
          }
          chunked.push(...p.push(text.slice(at)).map((r) => r.fields), ...p.end().map((r) => r.fields));
          expect(chunked).toEqual(whole);
          // csvLine round-trips every record that is not a lone empty field (a blank line is skipped).
          expect(whole).toEqual(rows.filter((r) => !(r.length === 1 && r[0] === '')));
        },
      ),
    );
  });
});
