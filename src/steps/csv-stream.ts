import type { Hash } from 'node:crypto';
import { CsvReader, type CsvRecord } from '../core/csv.js';
import { isVeritrailError, VeritrailError } from '../core/errors.js';

/**
 * Streams a UTF-8 CSV file record by record (constant memory), optionally hashing the very bytes
 * it parses, so that what was validated and what was hashed can never differ.
 */
export async function streamCsvRecords(
  stream: AsyncIterable<unknown>,
  file: string,
  onRecord: (record: CsvRecord) => Promise<void> | void,
  hash?: Hash,
): Promise<void> {
  let records: CsvRecord[] = [];
  const reader = new CsvReader(
    { record: (fields, line) => void records.push({ fields, line }) },
    { afterQuote: 'continue' }, // "a"b reads as ab, as this path always has
  );
  const feed = async () => {
    const done = records;
    records = [];
    for (const r of done) {
      const p = onRecord(r);
      if (p !== undefined) await p; // a synchronous callback costs no turn of the event loop
    }
  };
  const read = (f: () => void) => {
    try {
      f();
    } catch (e) {
      if (isVeritrailError(e, 'DATASET_VALUE') && e.details?.utf8 === false) {
        throw new VeritrailError(
          'DATASET_UNREADABLE',
          `${file} is not UTF-8 text; export the data as UTF-8 CSV`,
          { cause: e },
        );
      }
      throw e;
    }
  };
  for await (const chunk of stream) {
    const bytes = chunk as Buffer;
    hash?.update(bytes);
    read(() => reader.push(bytes));
    await feed();
  }
  read(() => reader.end());
  await feed();
}
