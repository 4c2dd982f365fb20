/**
 * `npm run bench -- csv [--size-mb=N] [--rounds=N]`: the CSV path Preprocess and the local preflight
 * use (`streamCsvRecords`: parse every field of every record and hash the same bytes) in MB/s,
 * against a bare read that only hashes the file (the reference, measured in the same run). The file
 * is shaped like a tabular training set (an id, categorical and numeric columns, a quoted free-text
 * column on one row in eight), generated under os.tmpdir() and deleted afterwards. Each figure is
 * the best of a few rounds after a warm-up read, so both read from the page cache.
 */
import { createHash } from 'node:crypto';
import { closeSync, createReadStream, mkdtempSync, openSync, rmSync, statSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Xoshiro128 } from '../src/core/fairness/index.js';
import { streamCsvRecords } from '../src/steps/csv-stream.js';

function option(args: string[], name: string, fallback: number): number {
  // `--name=N` (bench/main.ts takes bare words for benchmark names), or `--name N` when run directly.
  const eq = args.find((a) => a.startsWith(`${name}=`));
  const i = args.indexOf(name);
  const v = eq !== undefined ? Number(eq.slice(name.length + 1)) : i >= 0 ? Number(args[i + 1]) : fallback;
  if (!Number.isFinite(v) || v <= 0) throw new Error(`${name} needs a positive number`);
  return v;
}

const SEX = ['female', 'male'];
const AGE = ['under_25', '25_to_60', 'over_60'];
const NOTES = ['"paid early, twice"', '"moved; new ""home"" address"', '"two\nlines"', 'none'];

function writeCsv(path: string, bytes: number): number {
  const rng = new Xoshiro128(7);
  const fd = openSync(path, 'w');
  let written = 0;
  let rows = 0;
  const header =
    'applicant_id,sex,age_group,income,debt_ratio,credit_history_years,late_payments,loan_amount,note,repaid\n';
  writeSync(fd, header);
  written += header.length;
  while (written < bytes) {
    let chunk = '';
    for (let k = 0; k < 10_000; k++) {
      const u = rng.nextUint32();
      const note = (u & 7) === 0 ? (NOTES[(u >>> 3) & 3] as string) : '';
      chunk += `A${String(rows).padStart(7, '0')},${SEX[u & 1]},${AGE[(u >>> 1) % 3]},${((u >>> 4) % 1000) / 10},${((u >>> 8) % 1000) / 1000},${((u >>> 12) % 300) / 10},${(u >>> 20) % 6},${((u >>> 14) % 900) / 10},${note},${(u >>> 30) & 1}\n`;
      rows++;
    }
    const b = Buffer.from(chunk);
    writeSync(fd, b);
    written += b.length;
  }
  closeSync(fd);
  return rows;
}

async function best(rounds: number, fn: () => Promise<unknown>): Promise<number> {
  let t = Number.POSITIVE_INFINITY;
  for (let i = 0; i < rounds; i++) {
    const t0 = process.hrtime.bigint();
    await fn();
    t = Math.min(t, Number(process.hrtime.bigint() - t0) / 1e9);
  }
  return t;
}

export async function main(args: string[]): Promise<void> {
  const sizeMb = option(args, '--size-mb', 200);
  const rounds = option(args, '--rounds', 3);
  const dir = mkdtempSync(join(tmpdir(), 'veritrail-bench-csv-'));
  try {
    const file = join(dir, 'data.csv');
    const rows = writeCsv(file, sizeMb * 1e6);
    const mb = statSync(file).size / 1e6;
    const bareRead = async () => {
      const h = createHash('sha256');
      for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
      return h.digest('hex');
    };
    await bareRead();
    const tRead = await best(rounds, bareRead);
    const tCsv = await best(rounds, async () => {
      let n = 0;
      let width = 0;
      const h = createHash('sha256');
      await streamCsvRecords(
        createReadStream(file),
        'data.csv',
        (r) => {
          n++;
          width += r.fields.length;
        },
        h,
      );
      h.digest('hex');
      if (n !== rows + 1 || width !== n * 10) throw new Error('CSV record count disagrees');
    });
    console.log(`CSV file                      ${mb.toFixed(0)} MB, ${rows} rows`);
    console.log(`reference read + sha256       ${(mb / tRead).toFixed(0)} MB/s`);
    console.log(
      `streamCsvRecords + sha256     ${(mb / tCsv).toFixed(0)} MB/s, ${(rows / tCsv / 1e6).toFixed(2)} M rows/s  (${(tCsv / tRead).toFixed(1)}× the reference)`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
