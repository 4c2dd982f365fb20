/**
 * Evaluate's data work, in constant memory, shared by the Evaluate function and its processing
 * jobs (functions/processing/evaluate.ts), as Preprocess shares src/steps/preprocess-transform.ts:
 * cutting the test features into shards the inference contract scores one request at a time, the
 * fairness counts of the predictions against the labels and protected attributes Preprocess kept
 * (each file hashed as it is read and checked against its digest), and the trainer's self-reported
 * validation accuracy.
 */
import { createHash, type Hash } from 'node:crypto';
import { CsvReader, type CsvRecord, parseCsv } from '../core/csv.js';
import { type Digest, digestOf, digestsEqual } from '../core/digest.js';
import { VeritrailError } from '../core/errors.js';
import { FairnessAccumulator, type FairnessCounts } from '../core/fairness/index.js';

export interface ShardClaim {
  digest: Digest;
  size: number;
  rows: number;
}

/**
 * Cuts a features CSV into complete CSVs: the header line, then whole records, each shard at most
 * `shardBytes` (a single record longer than that makes a shard of its own). Records end at a line
 * break outside quotes (RFC 4180), so a quoted line break never splits one. A file that fits in one
 * shard becomes one shard with exactly its bytes (the same digest). `emit` stores each shard before
 * the next is cut; the caller checks the returned digest against the one it expected.
 */
export async function shardFeatures(
  source: AsyncIterable<unknown>,
  shardBytes: number,
  emit: (bytes: Buffer, rows: number) => Promise<void>,
): Promise<{ digest: Digest; size: number; rows: number; shards: ShardClaim[] }> {
  const whole = createHash('sha256');
  let size = 0;
  let header: Buffer | undefined;
  let parts: Buffer[] = [];
  let partBytes = 0;
  let partRows = 0;
  let rows = 0;
  const shards: ShardClaim[] = [];
  let record: Buffer[] = [];
  let recordBytes = 0;
  let inQuote = false;

  const flush = async () => {
    if (!header || partRows === 0) return;
    const bytes = Buffer.concat([header, ...parts]);
    await emit(bytes, partRows);
    shards.push({ digest: digestOf(bytes), size: bytes.length, rows: partRows });
    parts = [];
    partBytes = 0;
    partRows = 0;
  };
  const endRecord = async () => {
    const bytes = record.length === 1 ? (record[0] as Buffer) : Buffer.concat(record);
    record = [];
    recordBytes = 0;
    if (!header) {
      header = bytes;
      return;
    }
    if (partRows > 0 && header.length + partBytes + bytes.length > shardBytes) await flush();
    parts.push(bytes);
    partBytes += bytes.length;
    partRows++;
    rows++;
  };

  for await (const chunk of source) {
    const buf = chunk as Buffer;
    whole.update(buf);
    size += buf.length;
    let start = 0;
    for (let i = 0; i < buf.length; i++) {
      const b = buf[i];
      if (b === 0x22) inQuote = !inQuote;
      else if (b === 0x0a && !inQuote) {
        record.push(Buffer.from(buf.subarray(start, i + 1)));
        recordBytes += i + 1 - start;
        start = i + 1;
        await endRecord();
      }
    }
    if (start < buf.length) {
      record.push(Buffer.from(buf.subarray(start)));
      recordBytes += buf.length - start;
    }
  }
  if (recordBytes > 0) await endRecord();
  await flush();
  if (!header) throw new VeritrailError('DATASET_EMPTY', 'test-features.csv is empty');
  if (shards.length === 0) {
    // A header and no rows: nothing to score, but the shard is the file itself.
    await emit(header, 0);
    shards.push({ digest: digestOf(header), size: header.length, rows: 0 });
  }
  return { digest: `sha256:${whole.digest('hex')}`, size, rows, shards };
}

/** Pulls CSV records from a byte stream one at a time, hashing every byte it reads. */
class RecordCursor {
  private queue: CsvRecord[] = [];
  private at = 0;
  private ended = false;
  private readonly reader: CsvReader;
  private readonly chunks: AsyncIterator<unknown>;
  private readonly hash: Hash = createHash('sha256');

  constructor(
    source: AsyncIterable<unknown>,
    readonly name: string,
  ) {
    // as Evaluate always has: bytes that are not UTF-8 become U+FFFD, "a"b reads as ab
    this.reader = new CsvReader(
      { record: (fields, line) => void this.queue.push({ fields: [...fields], line }) },
      { fatal: false, afterQuote: 'continue' },
    );
    this.chunks = source[Symbol.asyncIterator]();
  }

  async next(): Promise<CsvRecord | undefined> {
    while (this.at >= this.queue.length) {
      if (this.ended) return undefined;
      this.queue = [];
      this.at = 0;
      const r = await this.chunks.next();
      if (r.done) {
        this.reader.end();
        this.ended = true;
      } else {
        this.hash.update(r.value as Buffer);
        this.reader.push(r.value as Buffer);
      }
    }
    return this.queue[this.at++];
  }

  /** Reads to the end (the rest must be empty) and checks the bytes against their recorded digest. */
  async close(expected: Digest): Promise<void> {
    while ((await this.next()) !== undefined) {
      throw new VeritrailError(
        'DIGEST_MISMATCH',
        'test.csv and test-groups.csv do not line up with the predictions; re-run Preprocess',
      );
    }
    const actual = `sha256:${this.hash.digest('hex')}`;
    if (!digestsEqual(actual, expected)) {
      throw new VeritrailError(
        'DIGEST_MISMATCH',
        `${this.name}: stored bytes hash to ${actual}, recorded ${expected}`,
      );
    }
  }
}

/**
 * The `prediction` column of a predictions CSV, 1 or 0 per row (255 where a value is neither), with
 * the first bad value; SCORING_FAILED when there is no such column.
 */
function predictionValues(bytes: Uint8Array, who: string): { values: Uint8Array; bad?: string } {
  const table = parseCsv(bytes, { fatal: false, afterQuote: 'continue' }).map((r) => r.fields);
  if (table.length === 0) throw new VeritrailError('DATASET_EMPTY', `${who}: the predictions are empty`);
  const idx = table[0]?.map((h) => h.trim()).indexOf('prediction') ?? -1;
  if (idx < 0) {
    throw new VeritrailError(
      'SCORING_FAILED',
      `${who} wrote no "prediction" column (header: ${(table[0] ?? []).join(',').slice(0, 80)})`,
    );
  }
  const values = new Uint8Array(table.length - 1);
  let bad: string | undefined;
  for (let i = 1; i < table.length; i++) {
    const p = (table[i]?.[idx] ?? '').trim();
    values[i - 1] = p === '1' ? 1 : p === '0' ? 0 : 255;
    if (values[i - 1] === 255 && bad === undefined)
      bad = `${who}: prediction ${i} is "${p.slice(0, 20)}", not 0 or 1`;
  }
  return { values, ...(bad !== undefined ? { bad } : {}) };
}

function checkCount(got: number, n: number, who: string): void {
  if (got !== n) {
    throw new VeritrailError(
      'SCORING_FAILED',
      `${who} returned ${got} predictions for ${n} rows; it must predict every input row, in order`,
    );
  }
}

/** The `prediction` column of a predictions CSV of `n` rows, 1 or 0 each; SCORING_FAILED says what is wrong. */
export function predictionColumn(bytes: Uint8Array, n: number, who: string): Uint8Array {
  const { values, bad } = predictionValues(bytes, who);
  checkCount(values.length, n, who);
  if (bad !== undefined) throw new VeritrailError('SCORING_FAILED', bad);
  return values;
}

export interface ShardPredictions {
  rows: number;
  /** The predictions CSV the inference contract returned for this shard. */
  read(): Promise<Uint8Array>;
}

/**
 * The fairness counts of the shards' predictions against test.csv (the label) and test-groups.csv
 * (the protected attributes), row by row in the shards' order; both files are hashed as read and
 * checked against the digests Preprocess recorded. With more than one shard the predictions are
 * also joined into one CSV (a `prediction` header, then one 0 or 1 per row) for the record.
 */
export async function countPredictions(input: {
  test: AsyncIterable<unknown>;
  groups: AsyncIterable<unknown>;
  expected: { test: Digest; groups: Digest };
  label: string;
  attributes: readonly string[];
  shards: readonly ShardPredictions[];
  who: string;
}): Promise<{ counts: FairnessCounts; rows: number; joined?: Buffer }> {
  const test = new RecordCursor(input.test, 'test.csv');
  const groups = new RecordCursor(input.groups, 'test-groups.csv');
  const header = await test.next();
  await groups.next();
  if (!header) throw new VeritrailError('DATASET_EMPTY', 'test.csv is empty');
  const labelIdx = header.fields.indexOf(input.label);
  if (labelIdx < 0) {
    throw new VeritrailError(
      'DIGEST_MISMATCH',
      'test.csv and test-groups.csv do not line up; re-run Preprocess',
    );
  }
  const acc = new FairnessAccumulator(input.attributes);
  const joined: Buffer[] = input.shards.length > 1 ? [Buffer.from('prediction\n')] : [];
  let rows = 0;
  for (const [s, shard] of input.shards.entries()) {
    const who =
      input.shards.length > 1 ? `${input.who} (shard ${s + 1} of ${input.shards.length})` : input.who;
    const predicted = predictionColumn(await shard.read(), shard.rows, who);
    if (joined.length > 0) {
      const lines = Buffer.alloc(predicted.length * 2, 0x0a);
      predicted.forEach((p, i) => {
        lines[2 * i] = p === 1 ? 0x31 : 0x30;
      });
      joined.push(lines);
    }
    for (const p of predicted) {
      const t = await test.next();
      const g = await groups.next();
      if (!t || !g) {
        throw new VeritrailError(
          'DIGEST_MISMATCH',
          'test.csv and test-groups.csv do not line up with the predictions; re-run Preprocess',
        );
      }
      acc.add(g.fields, t.fields[labelIdx] === '1', p === 1);
      rows++;
    }
  }
  await test.close(input.expected.test);
  await groups.close(input.expected.groups);
  return { counts: acc.toCounts(), rows, ...(joined.length > 0 ? { joined: Buffer.concat(joined) } : {}) };
}

/**
 * How many of the trainer's own validation predictions (its predictions.csv) are right, against
 * validation.csv's label (its last column), read as a stream and checked against its digest.
 * `unusable` says why they cannot be compared.
 */
export async function selfReportedCounts(input: {
  validation: AsyncIterable<unknown>;
  expected: Digest;
  claimed: Uint8Array;
}): Promise<{ rows: number; correct: number } | { unusable: string }> {
  const who = "the trainer's predictions.csv";
  let claimed: { values: Uint8Array; bad?: string };
  try {
    claimed = predictionValues(input.claimed, who);
  } catch (e) {
    return { unusable: (e as Error).message };
  }
  const cursor = new RecordCursor(input.validation, 'validation.csv');
  const header = await cursor.next();
  if (!header) throw new VeritrailError('DATASET_EMPTY', 'validation.csv is empty');
  const label = header.fields.length - 1;
  let rows = 0;
  let correct = 0;
  for (let r = await cursor.next(); r !== undefined; r = await cursor.next()) {
    if (rows < claimed.values.length && claimed.values[rows] === (r.fields[label] === '1' ? 1 : 0)) correct++;
    rows++;
  }
  await cursor.close(input.expected);
  try {
    checkCount(claimed.values.length, rows, who);
  } catch (e) {
    return { unusable: (e as Error).message };
  }
  if (claimed.bad !== undefined) return { unusable: claimed.bad };
  return { rows, correct };
}
