/**
 * `npm run bench -- fairness [--rows=N]`: the fairness engine against a plain single-pass counting loop
 * over the same in-memory columns (the reference, measured in the same run), and the CLI's CSV path in
 * MB/s against a bare read of the same file. Goals (issue 5): engine within 1.5× of the loop; CSV ≥ 100 MB/s.
 */
import { closeSync, createReadStream, mkdtempSync, openSync, rmSync, statSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run as fairnessCli } from '../src/cli/commands/fairness.js';
import type { CliIo } from '../src/cli/io.js';
import { FairnessAccumulator, Xoshiro128 } from '../src/core/fairness/index.js';

const SEX = ['F', 'M'];
const RACE = ['asian', 'black', 'hispanic', 'other', 'white'];

function parseRows(args: string[]): number {
  // `--rows=N` (bench/main.ts takes bare words as benchmark names); `--rows N` when called directly
  const eq = args.find((a) => a.startsWith('--rows='));
  const i = args.indexOf('--rows');
  const n = eq !== undefined ? Number(eq.slice(7)) : i >= 0 ? Number(args[i + 1]) : 10_000_000;
  if (!Number.isSafeInteger(n) || n <= 0) throw new Error('--rows takes a positive integer');
  return n;
}

function columns(n: number) {
  const rng = new Xoshiro128(2024);
  const sex = new Uint8Array(n);
  const race = new Uint8Array(n);
  const label = new Uint8Array(n);
  const pred = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const u = rng.nextUint32();
    sex[i] = u & 1;
    race[i] = ((u >>> 1) & 7) % 5;
    label[i] = (u >>> 4) & 1;
    pred[i] = ((u >>> 5) & 3) === 0 ? 1 - (label[i] as number) : (label[i] as number);
  }
  return { sex, race, label, pred };
}

function time<T>(f: () => T): [T, number] {
  const t0 = process.hrtime.bigint();
  const r = f();
  return [r, Number(process.hrtime.bigint() - t0) / 1e9];
}

/** The reference: the simplest loop that produces the same counts. */
function plainLoop(c: ReturnType<typeof columns>): Float64Array {
  const counts = new Float64Array(SEX.length * RACE.length * 4);
  const { sex, race, label, pred } = c;
  for (let i = 0; i < sex.length; i++) {
    const slot =
      ((sex[i] as number) + 2 * (race[i] as number)) * 4 + (label[i] as number) * 2 + (pred[i] as number);
    counts[slot] = (counts[slot] as number) + 1;
  }
  return counts;
}

function writeCsv(path: string, c: ReturnType<typeof columns>): void {
  const fd = openSync(path, 'w');
  try {
    writeSync(fd, 'id,label,prediction,sex,race,note\n');
    const n = c.sex.length;
    const batch = 100_000;
    for (let start = 0; start < n; start += batch) {
      const parts: string[] = [];
      for (let i = start; i < Math.min(n, start + batch); i++) {
        // every 50th row carries a quoted note with a comma, a doubled quote and a line break
        const note = i % 50 === 0 ? '"late, ""manual""\nreview"' : 'ok';
        parts.push(
          `${i},${c.label[i]},${c.pred[i]},${SEX[c.sex[i] as number]},${RACE[c.race[i] as number]},${note}\n`,
        );
      }
      writeSync(fd, parts.join(''));
    }
  } finally {
    closeSync(fd);
  }
}

async function bareRead(path: string): Promise<number> {
  let lines = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) {
    const b = chunk as Buffer;
    let i = b.indexOf(10);
    while (i >= 0) {
      lines++;
      i = b.indexOf(10, i + 1);
    }
  }
  return lines;
}

const fmtRate = (x: number): string => `${(x / 1e6).toFixed(1)} M`;

export async function main(args: string[]): Promise<void> {
  const n = parseRows(args);
  console.log(`rows: ${n.toLocaleString('en-US')}, protected attributes: sex (2) × race (5)`);
  const c = columns(n);

  const engine = (): FairnessAccumulator => {
    const a = new FairnessAccumulator(['sex', 'race']);
    a.addColumns(
      [
        { codes: c.sex, values: SEX },
        { codes: c.race, values: RACE },
      ],
      c.label,
      c.pred,
    );
    return a;
  };
  // both warmed up once so that each is measured optimized
  plainLoop(c);
  engine();
  // the machine may be shared: alternate the two and keep each one's best of three
  let [ref, tRef] = time(() => plainLoop(c));
  let [acc, tEngine] = time(engine);
  for (let k = 0; k < 2; k++) {
    const [r, t] = time(() => plainLoop(c));
    if (t < tRef) [ref, tRef] = [r, t];
    const [a, u] = time(engine);
    if (u < tEngine) [acc, tEngine] = [a, u];
  }
  const total = acc.toCounts().cells.reduce((s, x) => s + x.tp + x.fp + x.tn + x.fn, 0);
  if (total !== n || ref.reduce((s, x) => s + x, 0) !== n) throw new Error('row counts disagree');
  const rowVals = ['', ''];
  const [, tRows] = time(() => {
    const a = new FairnessAccumulator(['sex', 'race']);
    for (let i = 0; i < n; i++) {
      rowVals[0] = SEX[c.sex[i] as number] as string;
      rowVals[1] = RACE[c.race[i] as number] as string;
      a.add(rowVals, c.label[i] === 1, c.pred[i] === 1);
    }
    return a;
  });
  console.log(`reference plain loop   ${fmtRate(n / tRef)} rows/s`);
  console.log(
    `engine addColumns      ${fmtRate(n / tEngine)} rows/s  ratio ${(tEngine / tRef).toFixed(2)}× (goal ≤ 1.5×)`,
  );
  console.log(
    `engine add() per row   ${fmtRate(n / tRows)} rows/s  ratio ${(tRows / tRef).toFixed(2)}× (string rows)`,
  );

  const dir = mkdtempSync(join(tmpdir(), 'veritrail-bench-fairness-'));
  try {
    const file = join(dir, 'predictions.csv');
    writeCsv(file, c);
    const bytes = statSync(file).size;
    const t0 = process.hrtime.bigint();
    await bareRead(file);
    const tRead = Number(process.hrtime.bigint() - t0) / 1e9;
    let out = '';
    const io: CliIo = { out: (t) => (out += t), err: (t) => console.error(t), env: {}, cwd: dir, tty: false };
    const t1 = process.hrtime.bigint();
    const code = await fairnessCli(
      [
        'predictions.csv',
        '--label',
        'label',
        '--prediction',
        'prediction',
        '--protected',
        'sex,race',
        '--bootstrap',
        '0',
        '--json',
      ],
      io,
    );
    const tCsv = Number(process.hrtime.bigint() - t1) / 1e9;
    if (code !== 0) throw new Error(`fairness CLI exited ${code}`);
    const report = JSON.parse(out) as { aggregates: { count: number } };
    if (report.aggregates.count !== n) throw new Error('CSV row count disagrees');
    const mb = bytes / 1e6;
    console.log(`CSV file               ${mb.toFixed(0)} MB`);
    console.log(`reference bare read    ${(mb / tRead).toFixed(0)} MB/s`);
    console.log(
      `CSV end to end (CLI)   ${(mb / tCsv).toFixed(0)} MB/s, ${fmtRate(n / tCsv)} rows/s  (goal ≥ 100 MB/s; ${(tCsv / tRead).toFixed(1)}× bare read)`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
