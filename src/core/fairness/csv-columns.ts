/**
 * A byte-level RFC 4180 reader that hands over only the columns it is asked for. It exists because
 * the general parser in src/core/csv.ts builds every field character by character, which caps it far
 * below the 100 MB/s the fairness command needs; this one scans bytes (all CSV delimiters are ASCII,
 * so UTF-8 needs no decoding to find them) and turns a field into a string only when it is wanted,
 * reusing the same string for repeated values. Quoted fields (commas, doubled quotes, line breaks)
 * follow RFC 4180 §2 exactly; the tests check it against src/core/csv.ts.
 */
import { VeritrailError } from '../errors.js';

const COMMA = 44;
const QUOTE = 34;
const LF = 10;
const CR = 13;

export interface CsvColumnsHandler {
  /** Receives the header's field names; returns which column indices to deliver, in order. */
  header(names: string[]): number[];
  /** One data record: `values[j]` is the field at the j-th requested column. `values` is reused. */
  record(values: string[], line: number): void;
}

/** Remembers the strings of a column's recent distinct values so repeated bytes cost no allocation. */
class Interner {
  private keys: Uint8Array[] = [];
  private strings: string[] = [];
  private misses = 0;
  private hits = 0;
  private last = 0;

  constructor(private readonly decode: (bytes: Uint8Array) => string) {}

  get(buf: Uint8Array, start: number, end: number): string {
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
    const s = this.decode(buf.subarray(start, end));
    if (keys.length < 32) {
      keys.push(buf.slice(start, end));
      this.strings.push(s);
    }
    return s;
  }
}

export class CsvColumnReader {
  private carry: Uint8Array | null = null;
  private line = 1;
  private wanted: Int32Array | null = null;
  /** wantedAt[col] = position in `values`, or -1. */
  private wantedAt: Int32Array = new Int32Array(0);
  private headerWidth = 0;
  private values: string[] = [];
  private interners: Interner[] = [];
  private readonly decoder = new TextDecoder('utf-8', { fatal: true });
  private first = true;
  private headerNames: string[] = [];

  constructor(private readonly handler: CsvColumnsHandler) {}

  /** Feeds the next chunk of the file. */
  push(chunk: Uint8Array): void {
    let buf = chunk;
    if (this.first) {
      this.first = false;
      if (buf.length >= 3 && buf[0] === 0xef && buf[1] === 0xbb && buf[2] === 0xbf) buf = buf.subarray(3);
    }
    if (this.carry !== null) {
      const joined = new Uint8Array(this.carry.length + buf.length);
      joined.set(this.carry, 0);
      joined.set(buf, this.carry.length);
      buf = joined;
      this.carry = null;
    }
    const done = this.guard(() => this.scan(buf, false));
    if (done < buf.length) this.carry = buf.slice(done);
  }

  /** Flushes the last record (a file need not end with a newline). */
  end(): void {
    if (this.carry !== null) {
      const buf = this.carry;
      this.carry = null;
      this.guard(() => this.scan(buf, true));
    }
    if (this.wanted === null) {
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
          details: { line: this.line },
        });
      }
      throw e;
    }
  }

  /** Scans complete records; returns the offset of the first byte not consumed. */
  private scan(buf: Uint8Array, final: boolean): number {
    const len = buf.length;
    let pos = 0;
    while (pos < len) {
      const recStart = pos;
      const recLine = this.line;
      let line = recLine;
      // blank line: skipped, as src/core/csv.ts does
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
      const header = this.wanted === null;
      const names: string[] = [];
      let col = 0;
      for (;;) {
        // one field starts at pos
        const slot = header ? -2 : col < this.wantedAt.length ? (this.wantedAt[col] as number) : -1;
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
          if (pos < len) {
            const c = buf[pos] as number;
            if (c !== COMMA && c !== LF && c !== CR) {
              this.fail(
                line,
                'text follows a closing quote; quote the whole field and double inner quotes (RFC 4180)',
              );
            }
          }
        } else {
          const start = pos;
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
          if (slot >= 0) value = (this.interners[slot] as Interner).get(buf, start, pos);
          else if (slot === -2) value = this.decoder.decode(buf.subarray(start, pos));
        }
        if (header) names.push(value ?? '');
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
    const wanted = this.handler.header(names);
    this.wanted = Int32Array.from(wanted);
    this.wantedAt = new Int32Array(names.length).fill(-1);
    wanted.forEach((c, j) => {
      if (c < 0 || c >= names.length)
        throw new VeritrailError('DATASET_SCHEMA', `column index ${c} is not in the header`);
      this.wantedAt[c] = j;
    });
    this.values = new Array(wanted.length).fill('');
    this.interners = wanted.map(() => new Interner((b) => this.decoder.decode(b)));
  }

  /** The header's names, once read. */
  get columns(): readonly string[] {
    return this.headerNames;
  }
}
