import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CsvReader, type CsvReaderOptions, type CsvRecord, csvLine, parseCsv } from '../../src/core/csv.js';
import { isVeritrailError } from '../../src/core/errors.js';
import { streamCsvRecords } from '../../src/steps/csv-stream.js';

const utf8 = (s: string) => new TextEncoder().encode(s);

/** Every record of `bytes` fed to one reader in the given pieces. */
function chunked(bytes: Uint8Array, cuts: number[], options?: CsvReaderOptions): CsvRecord[] {
  const out: CsvRecord[] = [];
  const reader = new CsvReader({ record: (fields, line) => void out.push({ fields, line }) }, options);
  let at = 0;
  for (const c of [...cuts].sort((a, b) => a - b)) {
    const end = Math.min(bytes.length, c);
    if (end > at) {
      reader.push(bytes.subarray(at, end));
      at = end;
    }
  }
  reader.push(bytes.subarray(at));
  reader.end();
  return out;
}

function refusal(f: () => unknown): Error {
  try {
    f();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a refusal');
}

describe('CSV reader (RFC 4180)', () => {
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

  it('skips blank lines of any line ending and reads a lone CR as a line break', () => {
    expect(parseCsv('\r\na\r\n\n\rb\rc').map((r) => [r.fields, r.line])).toEqual([
      [['a'], 2],
      [['b'], 5],
      [['c'], 6],
    ]);
  });

  it('drops a UTF-8 byte order mark and hands over every record as wide as it is', () => {
    expect(parseCsv('\uFEFFa,b\n1\n"é",2,3\n').map((r) => r.fields)).toEqual([
      ['a', 'b'],
      ['1'],
      ['é', '2', '3'],
    ]);
    // only the file's first bytes are a byte order mark; U+FEFF inside the data is kept
    expect(parseCsv('\uFEFF\uFEFFa,"\uFEFFb"\n').map((r) => r.fields)).toEqual([['\uFEFFa', '\uFEFFb']]);
  });

  it("refuses text after a closing quote, or continues the field with it (afterQuote: 'continue')", () => {
    const e = refusal(() => parseCsv('h\n"a"b,"x"\n'));
    expect(isVeritrailError(e, 'DATASET_VALUE')).toBe(true);
    expect(e.message).toMatch(/^CSV line 2: text follows a closing quote/);
    expect(parseCsv('"a"b,"x"\n', { afterQuote: 'continue' }).map((r) => r.fields)).toEqual([['ab', 'x']]);
    expect(refusal(() => parseCsv('"a"b"\n', { afterQuote: 'continue' })).message).toMatch(
      /^CSV line 1: a quote appears inside an unquoted field/,
    );
  });

  describe('when the input is malformed', () => {
    it('a quote inside an unquoted field is refused with its line', () => {
      const e = refusal(() => parseCsv('a,b\n1,x"y\n'));
      expect(isVeritrailError(e, 'DATASET_VALUE')).toBe(true);
      expect(e.message).toMatch(/line 2/);
      expect(e.message).toMatch(/a quote appears inside an unquoted field/);
      expect(refusal(() => parseCsv('h\n"a\nb"c"\n', { afterQuote: 'continue' })).message).toMatch(
        /^CSV line 3: a quote appears/,
      );
    });

    it('an unclosed quote (a truncated file) is refused', () => {
      expect(() => parseCsv('a\n"never closed\n')).toThrow(/never closed/);
      expect(refusal(() => parseCsv('a\n"never closed\n')).message).toMatch(/^CSV line 2: /);
    });

    it('bytes that are not UTF-8 are refused with their line, or replaced when not fatal', () => {
      const bytes = Uint8Array.from([...utf8('a\nok\n'), 0x62, 0xff, 0x0a]);
      const e = refusal(() => parseCsv(bytes));
      expect(isVeritrailError(e, 'DATASET_VALUE')).toBe(true);
      expect(e.message).toBe('CSV line 3: the text is not valid UTF-8');
      expect(parseCsv(bytes, { fatal: false }).map((r) => r.fields)).toEqual([['a'], ['ok'], ['b\uFFFD']]);
    });
  });

  describe('reading only some columns', () => {
    it('hands over the requested columns in the requested order, with each line', () => {
      const got: Array<[string[], number]> = [];
      const reader = new CsvReader({
        header: (names) => [names.indexOf('c'), names.indexOf('a')],
        record: (values, line) => void got.push([[...values], line]),
      });
      reader.push(utf8('a,b,c\n1,"x\ny",3\n\n4,5,6'));
      reader.end();
      expect(reader.columns).toEqual(['a', 'b', 'c']);
      expect(got).toEqual([
        [['3', '1'], 2],
        [['6', '4'], 5],
      ]);
    });

    it('refuses a record narrower or wider than the header, and a file with no header', () => {
      const reader = new CsvReader({ header: () => [0], record: () => {} });
      const e = refusal(() => reader.push(utf8('a,b\n1,2\n3\n')));
      expect(e.message).toBe('CSV line 3: expected 2 fields as in the header, found 1');
      const empty = new CsvReader({ header: () => [0], record: () => {} });
      empty.push(utf8('\n\n'));
      expect(
        isVeritrailError(
          refusal(() => empty.end()),
          'DATASET_EMPTY',
        ),
      ).toBe(true);
    });
  });

  describe('chunk boundaries', () => {
    const text = '\uFEFFid,note\r\n1,"a, ""b""\r\nc"\r\n\r\n2,é\r\n"3",\r\n4,"x"y';
    const whole = parseCsv(text, { afterQuote: 'continue' });

    it('gives the same records wherever one cut falls: in a record, a quote, a CRLF, a BOM, a character', () => {
      expect(whole).toEqual([
        { fields: ['id', 'note'], line: 1 },
        { fields: ['1', 'a, "b"\r\nc'], line: 2 },
        { fields: ['2', 'é'], line: 5 },
        { fields: ['3', ''], line: 6 },
        { fields: ['4', 'xy'], line: 7 },
      ]);
      const bytes = utf8(text);
      for (let cut = 0; cut <= bytes.length; cut++) {
        expect(chunked(bytes, [cut], { afterQuote: 'continue' })).toEqual(whole);
        expect(() => chunked(bytes, [cut])).toThrow(/^CSV line 7: text follows a closing quote/);
      }
    });

    it('gives the same records one byte at a time', () => {
      const bytes = utf8(text);
      expect(
        chunked(
          bytes,
          Array.from({ length: bytes.length }, (_, i) => i),
          { afterQuote: 'continue' },
        ),
      ).toEqual(whole);
    });

    it('gives the same records however the bytes are chunked (property)', () => {
      const field = fc.string({ unit: fc.constantFrom('a', 'b', ',', '"', '\n', '\r\n', '\r', 'é', ' ') });
      fc.assert(
        fc.property(
          fc.array(fc.array(field, { minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: 6 }),
          fc.array(fc.nat(60)),
          fc.boolean(),
          (rows, cuts, crlf) => {
            const text = rows.map((r) => (crlf ? csvLine(r).replace(/\n$/, '\r\n') : csvLine(r))).join('');
            const bytes = utf8(text);
            const whole = chunked(bytes, []);
            expect(chunked(bytes, cuts)).toEqual(whole);
            // csvLine round-trips every record that is not a lone empty field (a blank line is skipped).
            expect(whole.map((r) => r.fields)).toEqual(rows.filter((r) => !(r.length === 1 && r[0] === '')));
          },
        ),
      );
    });
  });
});

describe('streamCsvRecords', () => {
  async function* pieces(bytes: Uint8Array, size: number) {
    for (let i = 0; i < bytes.length; i += size) yield Buffer.from(bytes.subarray(i, i + size));
  }

  it('hashes exactly the bytes it parses, byte order mark included, and reads "a"b as ab as it always has', async () => {
    const bytes = utf8('\uFEFFa,b\n1,"x\ny"\n2,"é"s');
    const h = createHash('sha256');
    const got: CsvRecord[] = [];
    await streamCsvRecords(pieces(bytes, 3), 'd.csv', (r) => void got.push(r), h);
    expect(h.digest('hex')).toBe(createHash('sha256').update(bytes).digest('hex'));
    expect(got).toEqual([
      { fields: ['a', 'b'], line: 1 },
      { fields: ['1', 'x\ny'], line: 2 },
      { fields: ['2', 'és'], line: 4 },
    ]);
  });

  it('refuses bytes that are not UTF-8 as an unreadable file', async () => {
    const bytes = Uint8Array.from([...utf8('a,b\n1,'), 0xc3, 0x28, 0x0a]);
    const e = await streamCsvRecords(pieces(bytes, 4), 'd.csv', () => {}).catch((x: unknown) => x as Error);
    expect(isVeritrailError(e, 'DATASET_UNREADABLE')).toBe(true);
    expect((e as Error).message).toBe('d.csv is not UTF-8 text; export the data as UTF-8 CSV');
  });
});
