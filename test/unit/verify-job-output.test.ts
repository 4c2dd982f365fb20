/**
 * The re-hash of a processing job's output across invocations (src/steps/verify-job-output.ts):
 * however the budget cuts it, the result is the one pass's, test-groups.csv's rows included when a
 * quoted line break straddles a checkpoint; a file changed between invocations is refused; a
 * garbled checkpoint only costs a restart.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { parseCsv } from '../../src/core/csv.js';
import { casKey, type Digest } from '../../src/core/digest.js';
import { isVeritrailError, VeritrailError } from '../../src/core/errors.js';
import type { PreprocessJobOutput } from '../../src/core/processing.js';
import type { Bucket, ObjectStore, OpenOptions, VerifyBudget } from '../../src/ports.js';
import { PROCESSED_FILES, type ProcessedFile } from '../../src/steps/preprocess-transform.js';
import {
  VerifyCheckpointSchema,
  verifyCheckpointKey,
  verifyJobOutput,
} from '../../src/steps/verify-job-output.js';
import { MemoryObjectStore } from '../reliability/helpers.js';

const JOB = 'veritrail-pre-run-1';

async function bytesOf(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** A store whose reads arrive in small chunks, so budgets fall inside chunks and between them. */
class ChunkedStore extends MemoryObjectStore {
  constructor(private readonly chunk: number) {
    super();
  }
  override async open(bucket: Bucket, key: string, options: OpenOptions = {}): Promise<Readable> {
    const whole = await bytesOf(await super.open(bucket, key, options));
    const parts: Buffer[] = [];
    for (let i = 0; i < whole.length; i += this.chunk) parts.push(whole.subarray(i, i + this.chunk));
    return Readable.from(parts);
  }
}

const numbers = (rows: number, seed: number) =>
  `label,f1,f2\n${Array.from({ length: rows }, (_, i) => `${(i + seed) % 2},${i * 0.5},${i + seed}\n`).join('')}`;

/** Protected attributes as the raw data spelled them: quoted cells with line breaks, commas, quotes. */
const TEST_GROUPS = [
  '\uFEFFsex,age_band',
  '"fe\nmale","18,25"',
  'male,"say ""hi""\nthere"',
  '',
  '"multi\r\nline\nvalue",x',
  'female,"a"b',
  'male,60+',
].join('\r\n');

function filesOf(testGroups = TEST_GROUPS): Record<ProcessedFile, string> {
  return {
    train: numbers(40, 1),
    validation: numbers(9, 2),
    test: numbers(7, 3),
    testFeatures: numbers(7, 4),
    testGroups,
  };
}

const sha = (b: Buffer): Digest => `sha256:${createHash('sha256').update(b).digest('hex')}`;

async function stage(store: ObjectStore, files: Record<ProcessedFile, string>) {
  const claimed = {} as PreprocessJobOutput['files'];
  for (const f of Object.keys(PROCESSED_FILES) as ProcessedFile[]) {
    const bytes = Buffer.from(files[f]);
    const records = () => {
      try {
        return parseCsv(bytes, { afterQuote: 'continue' }).length;
      } catch {
        return 0; // a file the parser refuses: its claim is never reached
      }
    };
    const rows = f === 'testGroups' ? records() - 1 : (files[f].match(/\n/g)?.length ?? 0) - 1;
    claimed[f] = { digest: sha(bytes), size: bytes.length, rows };
    await store.put('artifacts', casKey(sha(bytes)), bytes);
  }
  return claimed;
}

/** Invokes the verification as the retrier does until it no longer asks to be invoked again. */
async function untilDone(
  store: ObjectStore,
  claimed: PreprocessJobOutput['files'],
  budget: VerifyBudget,
  now: () => number = () => 0,
  between?: (invocation: number) => Promise<void>,
) {
  const checkpoints: unknown[] = [];
  for (let invocation = 1; invocation < 10_000; invocation++) {
    try {
      const files = await verifyJobOutput({
        objects: store,
        jobName: JOB,
        claimed,
        budget,
        startedAt: now(),
        now,
      });
      return { files, invocations: invocation, checkpoints };
    } catch (e) {
      if (!isVeritrailError(e, 'PROCESSING_RUNNING')) throw e;
      const stored = await store.open('artifacts', verifyCheckpointKey(JOB));
      checkpoints.push(JSON.parse((await bytesOf(stored)).toString()));
      await between?.(invocation);
    }
  }
  throw new Error('never finished');
}

describe('verifyJobOutput', () => {
  it('in one pass (no budget): every claim matches, and the finished checkpoint is stored', async () => {
    const store = new ChunkedStore(64);
    const claimed = await stage(store, filesOf());
    expect(claimed.testGroups.rows).toBe(5);
    const { files, invocations } = await untilDone(store, claimed, {});
    expect(invocations).toBe(1);
    expect(files.testGroups).toEqual({
      key: casKey(claimed.testGroups.digest as Digest),
      digest: claimed.testGroups.digest,
      size: claimed.testGroups.size,
    });
    const stored = await bytesOf(await store.open('artifacts', verifyCheckpointKey(JOB)));
    expect(VerifyCheckpointSchema.parse(JSON.parse(stored.toString()))).toMatchObject({
      jobName: JOB,
      at: null,
    });
    // Invoked again (a retry after a later failure of the step), it reads nothing more.
    const reads: string[] = [];
    const spy = Object.assign(Object.create(store) as ObjectStore, {
      open: (b: Bucket, k: string, o?: OpenOptions) => {
        reads.push(k);
        return store.open(b, k, o);
      },
    });
    await verifyJobOutput({
      objects: spy,
      jobName: JOB,
      claimed,
      budget: { bytes: 1 },
      startedAt: 0,
      now: () => 0,
    });
    expect(reads).toEqual([verifyCheckpointKey(JOB)]);
  });

  describe('when the budget cuts the re-hash into many invocations', () => {
    for (const [chunk, bytes] of [
      [64, 1],
      [5, 3],
      [7, 11],
      [1, 17],
      [1024, 100],
    ] as const) {
      it(`gives the one pass's result (chunks of ${chunk} bytes, ${bytes} bytes per invocation)`, async () => {
        const store = new ChunkedStore(chunk);
        const claimed = await stage(store, filesOf());
        const total = Object.values(claimed).reduce((n, c) => n + c.size, 0);
        const { files, invocations, checkpoints } = await untilDone(store, claimed, { bytes });
        expect(Object.keys(files)).toEqual(Object.keys(PROCESSED_FILES));
        expect(invocations).toBeGreaterThanOrEqual(Math.floor(total / bytes / 2));
        const groups = checkpoints
          .map((c) => VerifyCheckpointSchema.parse(c).at)
          .filter((at) => at?.file === 'testGroups' && at.offset > 0);
        // test-groups.csv stops only where a record (or a blank line) ends, never inside a quoted cell.
        const text = Buffer.from(TEST_GROUPS);
        for (const at of groups) expect(text[(at?.offset ?? 0) - 1]).toBe(10);
        expect(groups.length).toBeGreaterThan(0);
      });
    }

    it('stops test-groups.csv only after a quoted line break that straddles the budget', async () => {
      const store = new ChunkedStore(1024);
      const claimed = await stage(store, filesOf());
      const before = Object.entries(claimed)
        .filter(([f]) => f !== 'testGroups')
        .reduce((n, [, c]) => n + c.size, 0);
      const text = Buffer.from(TEST_GROUPS);
      // The budget runs out just after the line break inside "fe\nmale".
      const inside = text.indexOf('fe\nmale') + 3;
      const first = await untilDone(store, claimed, { bytes: before + inside });
      const at = VerifyCheckpointSchema.parse(first.checkpoints[0]).at;
      expect(at).toMatchObject({ file: 'testGroups', offset: text.indexOf('\r\nmale,') + 2, records: 2 });
      expect(first.invocations).toBe(2);
    });

    it('stops on the clock too: a fake clock that passes the deadline on every read', async () => {
      const store = new ChunkedStore(16);
      const claimed = await stage(store, filesOf());
      let t = 0;
      const { invocations } = await untilDone(store, claimed, { ms: 50 }, () => (t += 20));
      expect(invocations).toBeGreaterThan(5);
    });
  });

  it('refuses a file whose bytes changed between invocations (DIGEST_MISMATCH)', async () => {
    const store = new ChunkedStore(8);
    const files = filesOf();
    const claimed = await stage(store, files);
    const changed = async (invocation: number) => {
      if (invocation !== 3) return;
      // Same size, other bytes, at the address already half re-hashed.
      const key = casKey(claimed.train.digest as Digest);
      await store.put('artifacts', key, Buffer.from(files.train.replaceAll('0.5', '0.6')));
    };
    const e = await untilDone(store, claimed, { bytes: 40 }, () => 0, changed).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(VeritrailError);
    expect((e as VeritrailError).code).toBe('DIGEST_MISMATCH');
    expect((e as VeritrailError).message).toMatch(/claimed train\.csv .* rows\); the stored object is/);
  });

  it('refuses a wrong row count of test-groups.csv, counted across invocations', async () => {
    const store = new ChunkedStore(3);
    const claimed = await stage(store, filesOf());
    claimed.testGroups.rows += 1;
    const e = await untilDone(store, claimed, { bytes: 5 }).catch((x: unknown) => x);
    expect((e as VeritrailError).code).toBe('DIGEST_MISMATCH');
    expect((e as VeritrailError).message).toMatch(/claimed test-groups\.csv .* 6 rows\).* 5 rows\)/);
  });

  it('refuses a file larger than claimed without reading it all', async () => {
    const store = new ChunkedStore(4);
    const claimed = await stage(store, filesOf());
    claimed.train.size -= 10;
    const e = await untilDone(store, claimed, {}).catch((x: unknown) => x);
    expect((e as VeritrailError).code).toBe('DIGEST_MISMATCH');
    expect((e as VeritrailError).message).toMatch(/the stored object is larger/);
  });

  it('reports a file the job did not store as PROCESSING_FAILED', async () => {
    const store = new ChunkedStore(64);
    const claimed = await stage(store, filesOf());
    claimed.test.digest = `sha256:${'0'.repeat(64)}`;
    const e = await untilDone(store, claimed, {}).catch((x: unknown) => x);
    expect((e as VeritrailError).code).toBe('PROCESSING_FAILED');
  });

  it('a read that breaks off is TRANSIENT, and the retry goes on from the last checkpoint', async () => {
    const store = new ChunkedStore(16);
    const claimed = await stage(store, filesOf());
    // The first invocation checkpoints inside train.csv; the second's read of it breaks off.
    await expect(
      untilDone(
        store,
        claimed,
        { bytes: 50 },
        () => 0,
        async () => Promise.reject(new Error('stop')),
      ),
    ).rejects.toThrow('stop');
    const before = VerifyCheckpointSchema.parse(
      JSON.parse((await bytesOf(await store.open('artifacts', verifyCheckpointKey(JOB)))).toString()),
    );
    expect(before.at).toMatchObject({ file: 'train', offset: 50 });
    let broken = true;
    const flaky = Object.assign(Object.create(store) as ObjectStore, {
      open: async (b: Bucket, k: string, o?: OpenOptions) => {
        const stream = await store.open(b, k, o);
        if (!broken || k === verifyCheckpointKey(JOB)) return stream;
        broken = false;
        return Readable.from(
          (async function* () {
            let n = 0;
            for await (const c of stream) {
              if (++n > 1) throw new Error('socket hang up');
              yield c;
            }
          })(),
        );
      },
    });
    const e = await verifyJobOutput({
      objects: flaky,
      jobName: JOB,
      claimed,
      budget: {},
      startedAt: 0,
      now: () => 0,
    }).catch((x: unknown) => x);
    expect((e as VeritrailError).code).toBe('TRANSIENT');
    expect((e as VeritrailError).message).toMatch(
      /^reading train\.csv \(sha256\/[0-9a-f]{64}\) broke off at byte 66: socket hang up;/,
    );
    // The retry (the state machine's TRANSIENT retrier) finishes from the stored checkpoint.
    const { files } = await untilDone(store, claimed, {});
    expect(files.train.digest).toBe(claimed.train.digest);
  });

  it("names the file's own line when a resumed parser meets a stray quote", async () => {
    const groups = 'sex,age\nfemale,"x\ny"\nmale,1\nma"le,2\n';
    const once = new ChunkedStore(64);
    const claimedOnce = await stage(once, filesOf(groups));
    const whole = await untilDone(once, claimedOnce, {}).catch((x: unknown) => x);
    const store = new ChunkedStore(2);
    const claimed = await stage(store, filesOf(groups));
    const split = await untilDone(store, claimed, { bytes: 3 }).catch((x: unknown) => x);
    expect((whole as VeritrailError).code).toBe('DATASET_VALUE');
    expect((split as VeritrailError).code).toBe('DATASET_VALUE');
    expect((split as VeritrailError).message).toBe((whole as VeritrailError).message);
    expect((split as VeritrailError).message).toMatch(/^CSV line 5:/);
  });

  describe('when the checkpoint is garbled, foreign or stale', () => {
    const cases: Array<[string, (c: Record<string, unknown>) => unknown]> = [
      ['not JSON', () => '{"kind": '],
      ['an unknown field', (c) => ({ ...c, extra: 1 })],
      ['another job', (c) => ({ ...c, jobName: 'veritrail-pre-other' })],
      ['other claims', (c) => ({ ...c, claims: `sha256:${'1'.repeat(64)}` })],
      ['a hash state that does not load', (c) => ({ ...c, at: { ...(c.at as object), state: 'AAAA' } })],
      ['a negative offset', (c) => ({ ...c, at: { ...(c.at as object), offset: -1 } })],
    ];
    for (const [what, garble] of cases) {
      it(`restarts safely from the first byte (${what})`, async () => {
        const store = new ChunkedStore(16);
        const claimed = await stage(store, filesOf());
        const first = await verifyJobOutput({
          objects: store,
          jobName: JOB,
          claimed,
          budget: { bytes: 150 },
          startedAt: 0,
          now: () => 0,
        }).catch((e: unknown) => e);
        expect((first as VeritrailError).code).toBe('PROCESSING_RUNNING');
        const key = verifyCheckpointKey(JOB);
        const stored = JSON.parse((await bytesOf(await store.open('artifacts', key))).toString());
        const bad = garble(stored);
        await store.put('artifacts', key, Buffer.from(typeof bad === 'string' ? bad : JSON.stringify(bad)));
        const { files } = await untilDone(store, claimed, {});
        expect(files.train.digest).toBe(claimed.train.digest);
      });
    }
  });
});
