import { VeritrailError } from './errors.js';

/**
 * Incremental RFC 4180 CSV parser: feed it text chunks as they stream in, take complete records
 * out. Quoted fields may hold commas, doubled quotes and line breaks. Memory is bounded by the
 * longest record, never by the file.
 */
export interface CsvRecord {
  fields: string[];
  /** 1-based line number where the record starts, for error messages. */
  line: number;
}

export class CsvParser {
  private field = '';
  private fields: string[] = [];
  private inQuotes = false;
  /** The previous char was a quote inside a quoted field: either an escape or the closing quote. */
  private quotePending = false;
  private line = 1;
  private recordLine = 1;
  private pendingCR = false;
  private fieldStarted = false;
  private atRecordStart = true;

  /** Parses a chunk; returns the records completed by it. */
  push(chunk: string): CsvRecord[] {
    const out: CsvRecord[] = [];
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk[i] as string;
      if (this.pendingCR) {
        this.pendingCR = false;
        if (c === '\n') continue; // CRLF already ended the record
      }
      if (this.atRecordStart && c !== '\n' && c !== '\r') {
        this.atRecordStart = false;
        this.recordLine = this.line;
      }
      if (this.inQuotes) {
        if (this.quotePending) {
          this.quotePending = false;
          if (c === '"') {
            this.field += '"';
            continue;
          }
          this.inQuotes = false; // that quote closed the field; fall through to unquoted handling
        } else if (c === '"') {
          this.quotePending = true;
          continue;
        } else {
          if (c === '\n') this.line++;
          this.field += c;
          continue;
        }
      }
      if (c === ',') {
        this.endField();
      } else if (c === '\n' || c === '\r') {
        this.endRecord(out);
        this.line++;
        if (c === '\r') this.pendingCR = true;
      } else if (c === '"') {
        if (this.fieldStarted) {
          throw new VeritrailError(
            'DATASET_VALUE',
            `CSV line ${this.line}: a quote appears inside an unquoted field; quote the whole field and double inner quotes (RFC 4180)`,
            { details: { line: this.line } },
          );
        }
        this.inQuotes = true;
        this.fieldStarted = true;
      } else {
        this.field += c;
        this.fieldStarted = true;
      }
    }
    return out;
  }

  /** Flushes the last record (a file need not end with a newline). */
  end(): CsvRecord[] {
    if (this.inQuotes && !this.quotePending) {
      throw new VeritrailError(
        'DATASET_VALUE',
        `CSV line ${this.recordLine}: a quoted field is never closed; the file may be truncated`,
        { details: { line: this.recordLine } },
      );
    }
    this.inQuotes = false;
    this.quotePending = false;
    const out: CsvRecord[] = [];
    if (this.fieldStarted || this.fields.length > 0) this.endRecord(out);
    return out;
  }

  private endField(): void {
    this.fields.push(this.field);
    this.field = '';
    this.fieldStarted = false;
  }

  private endRecord(out: CsvRecord[]): void {
    this.atRecordStart = true;
    if (this.fields.length === 0 && !this.fieldStarted) {
      return; // blank line: skipped, as most CSV readers do
    }
    this.endField();
    out.push({ fields: this.fields, line: this.recordLine });
    this.fields = [];
  }
}

/** Parses a whole CSV text (tests, small files). */
export function parseCsv(text: string): CsvRecord[] {
  const p = new CsvParser();
  return [...p.push(text), ...p.end()];
}

/** Quotes a field when RFC 4180 requires it. */
function csvField(value: string): string {
  return /[",\r\n]/.test(value) ? `"${value.replaceAll('"', '""')}"` : value;
}

export function csvLine(fields: readonly string[]): string {
  return `${fields.map(csvField).join(',')}\n`;
}
