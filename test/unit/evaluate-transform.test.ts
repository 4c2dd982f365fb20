/**
 * Evaluate's data work (src/steps/evaluate-transform.ts), the same in the Lambda and in its jobs:
 * shards that are complete CSVs and add back up to the file, counts that do not depend on how the
 * predictions were split, and every input checked against its digest.
 */
import { describe, expect, it } from 'vitest';
import { type Digest, digestOf } from '../../src/core/digest.js';
import { FairnessAccumulator } from '../../src/core/fairness/index.js';
import {
  countPredictions,
  predictionColumn,
  selfReportedCounts,
  shardFeatures,
} from '../../src/steps/evaluate-transform.js';

/** The bytes as a stream of chunks of random sizes (seeded), so record boundaries fall anywhere. */
async function* chunks(bytes: Buffer, seed = 7): AsyncGenerator<Buffer> {
  let s = seed;
  let at = 0;
  while (at < bytes.length) {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    const n = 1 + (s % 13);
    yield bytes.subarray(at, at + n);
    at += n;
  }
}

async function cut(text: string, shardBytes: number) {
  const emitted: { bytes: Buffer; rows: number }[] = [];
  const out = await shardFeatures(chunks(Buffer.from(text)), shardBytes, async (bytes, rows) => {
    emitted.push({ bytes, rows });
  });
  return { out, emitted };
}

const FEATURES = `a,"b\nwith a break",c\n${Array.from({ length: 40 }, (_, i) => `${i},${i % 3 === 0 ? '"x\ny"' : i * 2},${i * 3}`).join('\n')}\n`;

describe('shardFeatures', () => {
  it('a file that fits is one shard with exactly its bytes (the same digest)', async () => {
    const { out, emitted } = await cut(FEATURES, 1 << 20);
    expect(out.digest).toBe(digestOf(Buffer.from(FEATURES)));
    expect(out.shards).toEqual([{ digest: out.digest, size: FEATURES.length, rows: 40 }]);
    expect(emitted[0]?.bytes.toString()).toBe(FEATURES);
  });

  it('small shards each start with the header, never cut a quoted line break, and add back up to the file', async () => {
    const { out, emitted } = await cut(FEATURES, 90);
    const header = 'a,"b\nwith a break",c\n';
    expect(emitted.length).toBeGreaterThan(4);
    expect(out.rows).toBe(40);
    expect(out.shards.reduce((a, s) => a + s.rows, 0)).toBe(40);
    let body = '';
    for (const [i, e] of emitted.entries()) {
      const text = e.bytes.toString();
      expect(text.startsWith(header)).toBe(true);
      expect(e.bytes.length <= 90 || e.rows === 1).toBe(true);
      expect(out.shards[i]).toEqual({ digest: digestOf(e.bytes), size: e.bytes.length, rows: e.rows });
      body += text.slice(header.length);
    }
    expect(header + body).toBe(FEATURES);
  });

  it('a record longer than the shard size is a shard of its own; a last record without a line break is kept', async () => {
    const text = `h\n1\n${'9'.repeat(50)}\n2`;
    const { emitted } = await cut(text, 10);
    expect(emitted.map((e) => e.bytes.toString())).toEqual(['h\n1\n', `h\n${'9'.repeat(50)}\n`, 'h\n2']);
  });

  it('an empty file is refused; a header alone is one shard of no rows', async () => {
    await expect(cut('', 10)).rejects.toMatchObject({ code: 'DATASET_EMPTY' });
    const { out } = await cut('a,b\n', 10);
    expect(out.shards).toEqual([{ digest: digestOf(Buffer.from('a,b\n')), size: 4, rows: 0 }]);
  });
});

/** A small held-out split: test.csv (features, label), test-groups.csv (two attributes, one quoted). */
function split(n: number) {
  const test = ['x,label'];
  const groups = ['sex,region'];
  const predictions: number[] = [];
  for (let i = 0; i < n; i++) {
    test.push(`${i},${i % 3 === 0 ? 1 : 0}`);
    groups.push(`${i % 2 ? 'f' : 'm'},${i % 5 === 0 ? '"north\nwest"' : 'south'}`);
    predictions.push(i % 4 === 0 ? 1 : 0);
  }
  const testBytes = Buffer.from(`${test.join('\n')}\n`);
  const groupBytes = Buffer.from(`${groups.join('\r\n')}\r\n`);
  return { testBytes, groupBytes, predictions };
}

const csvOf = (values: readonly number[]) =>
  Buffer.from(`prediction\n${values.map((v) => `${v}\n`).join('')}`);

function expectedCounts(n: number) {
  const { predictions } = split(n);
  const acc = new FairnessAccumulator(['sex', 'region']);
  for (let i = 0; i < n; i++)
    acc.add([i % 2 ? 'f' : 'm', i % 5 === 0 ? 'north\nwest' : 'south'], i % 3 === 0, predictions[i] === 1);
  return acc.toCounts();
}

async function count(n: number, sizes: number[], tamper?: 'test' | 'groups') {
  const { testBytes, groupBytes, predictions } = split(n);
  const shards: { rows: number; read: () => Promise<Uint8Array> }[] = [];
  let at = 0;
  for (const size of sizes) {
    // Padded with 0s past the end: a shard always answers for as many rows as it claims.
    const part = Array.from({ length: size }, (_, i) => predictions[at + i] ?? 0);
    at += size;
    shards.push({ rows: size, read: async () => csvOf(part) });
  }
  const expected = {
    test: digestOf(testBytes) as Digest,
    groups: digestOf(groupBytes) as Digest,
  };
  const test = tamper === 'test' ? Buffer.from(testBytes.toString().replace('3,1', '3,0')) : testBytes;
  return countPredictions({
    test: chunks(test, 3),
    groups: chunks(groupBytes, 11),
    expected,
    label: 'label',
    attributes: ['sex', 'region'],
    shards,
    who: 'the predict command',
  });
}

describe('countPredictions', () => {
  it('gives the same counts however the predictions are split, and joins several shards under one header', async () => {
    const one = await count(37, [37]);
    const many = await count(37, [10, 10, 10, 7]);
    expect(one.counts).toEqual(expectedCounts(37));
    expect(many.counts).toEqual(one.counts);
    expect(one.joined).toBeUndefined();
    expect(many.joined?.toString()).toBe(csvOf(split(37).predictions).toString());
    expect(many.rows).toBe(37);
  });

  it('refuses a test file whose bytes are not the recorded ones', async () => {
    await expect(count(37, [20, 17], 'test')).rejects.toMatchObject({
      code: 'DIGEST_MISMATCH',
      message: expect.stringMatching(/^test\.csv: stored bytes hash to sha256:/),
    });
  });

  it('refuses predictions that do not line up with the rows', async () => {
    await expect(count(37, [20, 20])).rejects.toMatchObject({ code: 'DIGEST_MISMATCH' });
    await expect(count(37, [20, 10])).rejects.toMatchObject({ code: 'DIGEST_MISMATCH' });
  });

  it('names the shard whose predictions are short', async () => {
    const { testBytes, groupBytes, predictions } = split(10);
    const run = countPredictions({
      test: chunks(testBytes),
      groups: chunks(groupBytes),
      expected: { test: digestOf(testBytes), groups: digestOf(groupBytes) },
      label: 'label',
      attributes: ['sex', 'region'],
      shards: [
        { rows: 5, read: async () => csvOf(predictions.slice(0, 5)) },
        { rows: 5, read: async () => csvOf(predictions.slice(5, 9)) },
      ],
      who: 'the model',
    });
    await expect(run).rejects.toMatchObject({
      code: 'SCORING_FAILED',
      message:
        'the model (shard 2 of 2) returned 4 predictions for 5 rows; it must predict every input row, in order',
    });
  });
});

describe('predictionColumn and the self-reported check', () => {
  it('reads 0 and 1 only, in a column named prediction', () => {
    expect([...predictionColumn(Buffer.from('id,prediction\n1,1\n2, 0\n'), 2, 'p')]).toEqual([1, 0]);
    expect(() => predictionColumn(Buffer.from('p\n1\n'), 1, 'p')).toThrow(/wrote no "prediction" column/);
    expect(() => predictionColumn(Buffer.from('prediction\n0.7\n'), 1, 'p')).toThrow(
      'p: prediction 1 is "0.7", not 0 or 1',
    );
  });

  it('counts the right ones against validation.csv, and says why unusable predictions cannot count', async () => {
    const validation = Buffer.from('x,label\n1,1\n2,0\n3,1\n4,0\n');
    const expected = digestOf(validation);
    const run = (claimed: string) =>
      selfReportedCounts({ validation: chunks(validation), expected, claimed: Buffer.from(claimed) });
    expect(await run('prediction\n1\n1\n1\n0\n')).toEqual({ rows: 4, correct: 3 });
    expect(await run('prediction\n1\n1\n')).toEqual({
      unusable:
        "the trainer's predictions.csv returned 2 predictions for 4 rows; it must predict every input row, in order",
    });
    expect(await run('prediction\n1\nyes\n1\n0\n')).toEqual({
      unusable: `the trainer's predictions.csv: prediction 2 is "yes", not 0 or 1`,
    });
    await expect(
      selfReportedCounts({
        validation: chunks(validation),
        expected: digestOf(Buffer.from('x')),
        claimed: Buffer.from('prediction\n'),
      }),
    ).rejects.toMatchObject({ code: 'DIGEST_MISMATCH' });
  });
});
