import type { Hash } from 'node:crypto';
import { CsvParser, type CsvRecord } from '../core/csv.js';
import { VeritrailError } from '../core/errors.js';

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
  const parser = new CsvParser();
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const feed = async (records: CsvRecord[]) => {
    for (const r of records) await onRecord(r);
  };
  for await (const chunk of stream) {
    const bytes = chunk as Buffer;
    hash?.update(bytes);
    let text: string;
    try {
      text = decoder.decode(bytes, { stream: true });
    } catch (e) {
      throw new VeritrailError(
        'DATASET_UNREADABLE',
        `${file} is not UTF-8 text; export the data as UTF-8 CSV`,
        { cause: e },
      );
    }
    await feed(parser.push(text));
  }
  await feed(parser.push(decoder.decode()));
  await feed(parser.end());
}
