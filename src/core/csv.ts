/**
 * veritrail's one CSV reader (RFC 4180) and writer. The reader is byte-level: feed it chunks as they
 * stream in; it scans bytes (every CSV delimiter is ASCII, so UTF-8 needs no decoding to find them)
 * and turns a field into a string only when it is wanted, reusing the same string for a repeated
 * value. Quoted fields hold commas, doubled quotes and line breaks; blank lines are skipped; a file
 * need not end with a newline; a UTF-8 byte order mark is dropped. Memory is bounded by the longest
 * record, never by the file.
 *
 * Two ways to read:
 * - every record (`CsvRecordsHandler`): each record's fields, header included, with the line it
 *   starts on. Preprocess, the local preflight and Evaluate read this way.
 * - only some columns (`CsvColumnsHandler`): the header picks the columns, records get only their
 *   values, and every record must be as wide as the header. `veritrail fairness` reads this way.
 *
 * A quote inside an unquoted field is refused. Text between a closing quote and the next delimiter
 * (`"a"b`) is refused too, unless `afterQuote: 'continue'` (Preprocess, the preflight, Evaluate: what
 * they have always accepted) makes it continue the field (`ab`).
 */
import { VeritrailError } from './errors.js';

const COMMA = 44;
const QUOTE = 34;
const LF = 10;
const CR = 13;

export interface CsvRecord {
  fields: string[];
  /** 1-based line number where the record starts, for error messages. */
  line: number;
}

export interface CsvRecordsHandler {
  /** One record (the header is the first): its own fresh `fields` array. */
  record(fields: string[], line: number): void;
}

export interface CsvColumnsHandler {
  /** Receives the header's field names; returns which column indices to deliver, in order. */
  header(names: string[]): number[];
  /** One data record: `values[j]` is the field at the j-th requested column. `values` is reused. */
  record(values: string[], line: number): void;
}

export interface CsvReaderOptions {
  /**
   * true (the default): bytes that are not UTF-8 are refused (DATASET_VALUE, `details.utf8` false).
   * false: they become U+FFFD, as TextDecoder does.
   */
  fatal?: boolean;
  /** Text between a closing quote and the next delimiter: 'refuse' (the default, RFC 4180) or 'continue' the field. */
  afterQuote?: 'refuse' | 'continue';
}

type Decode = (buf: Uint8Array, start: number, end: number, ascii: boolean) => string;

/** Remembers the strings of a column's recent distinct values so repeated bytes cost no allocation. */
class Interner {
  private keys: Uint8Array[] = [];
  private strings: string[] = [];
  private misses = 0;
  private hits = 0;
  private last = 0;

  constructor(private readonly decode: Decode) {}

  get(buf: Uint8Array, start: number, end: number, ascii: boolean): string {
    const len = end - start;
    const keys = this.keys;
    // the value of the previous row first: sorted or clustered files repeat it
    const last = keys[this.last];
    if (last !== undefined && last.length === len) {
      let i = 0;
      while (i < len && last[i] === buf[start + i]) i++;
      if (i === len) {
        this.hits++;
        return this.strings[this.last] as string;
      }
    }
    if (this.misses <= this.hits + 64) {
      for (let j = 0; j < keys.length; j++) {
        const k = keys[j] as Uint8Array;
        if (k.length !== len) continue;
        let i = 0;
        while (i < len && k[i] === buf[start + i]) i++;
        if (i === len) {
          this.hits++;
          this.last = j;
          return this.strings[j] as string;
        }
      }
    }
    this.misses++;
    const s = this.decode(buf, start, end, ascii);
    if (keys.length < 32) {
      // a copy: the chunk may be a view of a buffer its stream reuses
      keys.push(new Uint8Array(buf.subarray(start, end)));
      this.strings.push(s);
    }
    return s;
  }
}

const BOM = [0xef, 0xbb, 0xbf];

export class CsvReader {
  private carry: Uint8Array | null = null;
  private line = 1;
  /** Records mode: every field of every record, no header handling. */
  private readonly all: boolean;
  private wanted: Int32Array | null = null;
  /** wantedAt[col] = position in `values`, or -1. */
  private wantedAt: Int32Array = new Int32Array(0);
  private headerWidth = 0;
  private values: string[] = [];
  private interners: Interner[] = [];
  private readonly decoder: InstanceType<typeof TextDecoder>;
  private readonly continueAfterQuote: boolean;
  /** Still looking at the first bytes for a byte order mark. */
  private atStart = true;
  private headerNames: string[] = [];
  private readonly text: Decode = (buf, start, end, ascii) => {
    if (ascii && end - start <= 32) {
      let s = '';
      for (let i = start; i < end; i++) s += String.fromCharCode(buf[i] as number);
      return s;
    }
    return this.decoder.decode(buf.subarray(start, end));
  };

  constructor(
    private readonly handler: CsvRecordsHandler | CsvColumnsHandler,
    options: CsvReaderOptions = {},
  ) {
    this.all = !('header' in handler);
    this.continueAfterQuote = options.afterQuote === 'continue';
    // ignoreBOM: each field is decoded on its own, and a field may begin with U+FEFF; only the
    // file's first bytes are a byte order mark (dropped in push)
    this.decoder = new TextDecoder('utf-8', { fatal: options.fatal ?? true, ignoreBOM: true });
  }

  /** Feeds the next chunk of the file. */
  push(chunk: Uint8Array): void {
    let buf = chunk;
    if (this.carry !== null) {
      const joined = new Uint8Array(this.carry.length + buf.length);
      joined.set(this.carry, 0);
      joined.set(buf, this.carry.length);
      buf = joined;
      this.carry = null;
    }
    if (this.atStart) {
      let i = 0;
      while (i < 3 && i < buf.length && buf[i] === BOM[i]) i++;
      if (i === buf.length && i < 3) {
        this.carry = new Uint8Array(buf); // a byte order mark may be split across chunks
        return;
      }
      this.atStart = false;
      if (i === 3) buf = buf.subarray(3);
    }
    const done = this.guard(() => this.scan(buf, false));
    // a copy: the chunk may be a view of a buffer its stream reuses
    if (done < buf.length) this.carry = new Uint8Array(buf.subarray(done));
  }

  /** Flushes the last record (a file need not end with a newline). */
  end(): void {
    if (this.carry !== null) {
      const buf = this.carry;
      this.carry = null;
      this.guard(() => this.scan(buf, true));
    }
    if (!this.all && this.wanted === null) {
      throw new VeritrailError(
        'DATASET_EMPTY',
        'the CSV file has no header line; the first line must name the columns',
      );
    }
  }

  private fail(line: number, msg: string): never {
    throw new VeritrailError('DATASET_VALUE', `CSV line ${line}: ${msg}`, { details: { line } });
  }

  /** Invalid UTF-8 surfaces from TextDecoder as a TypeError; report it as bad input with its line. */
  private guard(f: () => number): number {
    try {
      return f();
    } catch (e) {
      if (e instanceof TypeError && (e as { code?: string }).code === 'ERR_ENCODING_INVALID_ENCODED_DATA') {
        throw new VeritrailError('DATASET_VALUE', `CSV line ${this.line}: the text is not valid UTF-8`, {
          cause: e,
          details: { line: this.line, utf8: false },
        });
      }
      throw e;
    }
  }

  private interner(slot: number): Interner {
    let i = this.interners[slot];
    if (i === undefined) {
      i = new Interner(this.text);
      this.interners[slot] = i;
    }
    return i;
  }

  /** Scans complete records; returns the offset of the first byte not consumed. */
  private scan(buf: Uint8Array, final: boolean): number {
    const len = buf.length;
    const all = this.all;
    let pos = 0;
    while (pos < len) {
      const recStart = pos;
      const recLine = this.line;
      let line = recLine;
      // blank line: skipped, as most CSV readers do
      const b0 = buf[pos] as number;
      if (b0 === LF || b0 === CR) {
        if (b0 === CR) {
          if (pos + 1 >= len && !final) return recStart;
          pos += buf[pos + 1] === LF ? 2 : 1;
        } else {
          pos++;
        }
        this.line++;
        continue;
      }
      const header = !all && this.wanted === null;
      // the header's names (columns mode) or the record's fields (records mode)
      const names: string[] = [];
      let col = 0;
      for (;;) {
        // one field starts at pos; slot -2: decode it whole, -1: skip it, ≥ 0: its interner
        const slot = all
          ? col
          : header
            ? -2
            : col < this.wantedAt.length
              ? (this.wantedAt[col] as number)
              : -1;
        let value: string | null = null;
        if (pos < len && buf[pos] === QUOTE) {
          const start = pos + 1;
          let q = start;
          let escaped = false;
          for (;;) {
            q = buf.indexOf(QUOTE, q);
            if (q < 0) {
              if (final) this.fail(recLine, 'a quoted field is never closed; the file may be truncated');
              return recStart;
            }
            if (q + 1 >= len && !final) return recStart; // cannot tell "" from a closing quote yet
            if (buf[q + 1] === QUOTE) {
              escaped = true;
              q += 2;
              continue;
            }
            break;
          }
          for (let i = start; i < q; i++) if (buf[i] === LF) line++;
          if (slot !== -1) {
            const raw = this.decoder.decode(buf.subarray(start, q));
            value = escaped ? raw.replaceAll('""', '"') : raw;
          }
          pos = q + 1;
          if (!this.continueAfterQuote && pos < len) {
            const c = buf[pos] as number;
            if (c !== COMMA && c !== LF && c !== CR) {
              this.fail(
                line,
                'text follows a closing quote; quote the whole field and double inner quotes (RFC 4180)',
              );
            }
          }
          // 'continue': text after the closing quote continues the field, up to the next delimiter
          const rest = pos;
          while (pos < len) {
            const c = buf[pos] as number;
            if (c === COMMA || c === LF || c === CR) break;
            if (c === QUOTE) {
              this.fail(
                line,
                'a quote appears inside an unquoted field; quote the whole field and double inner quotes (RFC 4180)',
              );
            }
            pos++;
          }
          if (pos >= len && !final) return recStart;
          if (pos > rest && value !== null) value += this.decoder.decode(buf.subarray(rest, pos));
        } else {
          const start = pos;
          let bits = 0;
          while (pos < len) {
            const c = buf[pos] as number;
            if (c === COMMA || c === LF || c === CR) break;
            if (c === QUOTE) {
              this.fail(
                line,
                'a quote appears inside an unquoted field; quote the whole field and double inner quotes (RFC 4180)',
              );
            }
            bits |= c;
            pos++;
          }
          if (pos >= len && !final) return recStart;
          const ascii = bits < 0x80;
          if (slot >= 0) value = this.interner(slot).get(buf, start, pos, ascii);
          else if (slot === -2) value = this.text(buf, start, pos, ascii);
        }
        if (all || header) names.push(value ?? '');
        else if (slot >= 0) this.values[slot] = value ?? '';
        col++;
        if (pos >= len) {
          if (!final) return recStart;
          break;
        }
        const d = buf[pos] as number;
        if (d === COMMA) {
          pos++;
          if (pos >= len && !final) return recStart;
          continue;
        }
        if (d === CR) {
          if (pos + 1 >= len && !final) return recStart;
          pos += buf[pos + 1] === LF ? 2 : 1;
        } else {
          pos++;
        }
        line++;
        break;
      }
      this.line = line;
      if (all) {
        this.handler.record(names, recLine);
        continue;
      }
      if (header) {
        this.startColumns(names);
        continue;
      }
      if (col !== this.headerWidth) {
        this.fail(recLine, `expected ${this.headerWidth} fields as in the header, found ${col}`);
      }
      this.handler.record(this.values, recLine);
    }
    return len;
  }

  private startColumns(names: string[]): void {
    this.headerNames = names;
    this.headerWidth = names.length;
    const wanted = (this.handler as CsvColumnsHandler).header(names);
    this.wanted = Int32Array.from(wanted);
    this.wantedAt = new Int32Array(names.length).fill(-1);
    wanted.forEach((c, j) => {
      if (c < 0 || c >= names.length)
        throw new VeritrailError('DATASET_SCHEMA', `column index ${c} is not in the header`);
      this.wantedAt[c] = j;
    });
    this.values = new Array(wanted.length).fill('');
    this.interners = wanted.map(() => new Interner(this.text));
  }

  /** The header's names, once read (columns mode). */
  get columns(): readonly string[] {
    return this.headerNames;
  }
}

/** Reads a whole CSV file in memory (small files, tests): every record, header included. */
export function parseCsv(data: Uint8Array | string, options?: CsvReaderOptions): CsvRecord[] {
  const out: CsvRecord[] = [];
  const reader = new CsvReader({ record: (fields, line) => void out.push({ fields, line }) }, options);
  reader.push(typeof data === 'string' ? new TextEncoder().encode(data) : data);
  reader.end();
  return out;
}

/** Quotes a field when RFC 4180 requires it. */
function csvField(value: string): string {
  return /[",\r\n]/.test(value) ? `"${value.replaceAll('"', '""')}"` : value;
}

export function csvLine(fields: readonly string[]): string {
  return `${fields.map(csvField).join(',')}\n`;
}
