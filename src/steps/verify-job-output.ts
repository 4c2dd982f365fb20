/**
 * Trust but verify, resumably: Preprocess re-hashes and counts every file a processing job wrote
 * (src/steps/preprocess.ts transformByJob) and refuses any claim that differs, before anything is
 * signed. One Lambda invocation streams about 120 GB in its 15 minutes; a 1 TB dataset's processed
 * files do not fit, so the re-hash spans invocations.
 *
 * Each invocation hashes within its budget (VerifyBudget, src/ports.ts), then stores a checkpoint
 * and throws PROCESSING_RUNNING, which Preprocess's retrier in the ASL answers by invoking it again;
 * the next invocation loads the checkpoint and reads on from its byte offset (a ranged read). The
 * checkpoint holds the file, the offset, the SHA-256 state (hash-wasm's save()/load(): node:crypto
 * cannot export a hash's state) and the rows counted so far. It is written only after the bytes it
 * covers were hashed, so an invocation that dies leaves the previous checkpoint, still true.
 *
 * test-groups.csv is counted by the CSV parser (a quoted cell may hold a line break). Its checkpoints
 * fall only on record boundaries: once the budget is spent, reading goes on to the next line break
 * outside quotes (an even number of quote bytes since the last boundary; in the CSV this parser
 * accepts, quotes pair up inside quoted fields, and a stray quote is refused by the parser), so a
 * fresh parser continues exactly where the last one stopped, and counts the rows one pass would.
 *
 * The checkpoint lives under `processing-verify/` (src/core/layout.ts), which the job's role cannot
 * write. It is bound to the job name and the digest of the job's claims, and validated with zod;
 * anything that does not parse, does not match, or whose hash state does not load, is ignored and
 * the re-hash starts again from the first byte: a garbled checkpoint costs time, never a check.
 * Like any SHA-256 state, the saved state holds up to 63 bytes of the file being hashed (hash-wasm's
 * save() says so): it is as sensitive as the processed files, and kept in the same bucket.
 */

import type { Readable } from 'node:stream';
import { createSHA256 } from 'hash-wasm';
import { z } from 'zod';
import { CsvReader } from '../core/csv.js';
import { casKey, type Digest, digestsEqual } from '../core/digest.js';
import { isVeritrailError, VeritrailError } from '../core/errors.js';
import { canonicalDigest } from '../core/jcs.js';
import { PROCESSING_VERIFY_PREFIX } from '../core/layout.js';
import type { PreprocessJobOutput } from '../core/processing.js';
import type { ObjectStore, VerifyBudget } from '../ports.js';
import { PROCESSED_FILES, type ProcessedFile } from './preprocess-transform.js';

const LF = 10;
const QUOTE = 34;
const FILES = Object.keys(PROCESSED_FILES) as ProcessedFile[];
/** The file counted by the CSV parser; the others hold encoded numbers, one line per row. */
const PARSED: ProcessedFile = 'testGroups';

const VERIFY_CHECKPOINT_KIND = 'veritrail/preprocess-verify@1';

/** Where a job's checkpoint is stored in the artifacts bucket. */
export const verifyCheckpointKey = (jobName: string): string => `${PROCESSING_VERIFY_PREFIX}${jobName}.json`;

const count = z.number().int().nonnegative();

/** Where the re-hash of one file stopped. */
const PositionSchema = z.strictObject({
  file: z.enum(FILES as [ProcessedFile, ...ProcessedFile[]]),
  /** Bytes hashed so far: the next read starts here. */
  offset: count,
  /** hash-wasm's SHA-256 state after those bytes, base64. */
  state: z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/),
  /** Line feeds in those bytes (the plain files' rows + 1; the parsed file's line numbers). */
  lines: count,
  /** Records the CSV parser read in those bytes, header included (the parsed file only). */
  records: count,
});
type Position = z.infer<typeof PositionSchema>;

export const VerifyCheckpointSchema = z.strictObject({
  kind: z.literal(VERIFY_CHECKPOINT_KIND),
  jobName: z.string().min(1),
  /** canonicalDigest of the job's claimed files: a checkpoint of other claims is not this one's. */
  claims: z.string().regex(/^sha256:[0-9a-f]{64}$/),
  /** The file being re-hashed; the files before it (PROCESSED_FILES order) matched their claims. null: all did. */
  at: PositionSchema.nullable(),
});
type VerifyCheckpoint = z.infer<typeof VerifyCheckpointSchema>;

export type VerifiedFiles = Record<ProcessedFile, { key: string; digest: Digest; size: number }>;

export interface VerifyJobOutputInput {
  objects: ObjectStore;
  jobName: string;
  claimed: PreprocessJobOutput['files'];
  /** This invocation's budget, and when the invocation started (ms since the epoch). */
  budget: VerifyBudget;
  startedAt: number;
  /** The clock the time budget is read on (ms since the epoch). */
  now: () => number;
}

/**
 * Re-hashes and counts every file the job claims, resuming from the stored checkpoint. Returns the
 * verified files; throws DIGEST_MISMATCH for a file that differs from its claim, PROCESSING_FAILED
 * for one the job did not store, PROCESSING_RUNNING when the budget ran out (progress saved).
 */
export async function verifyJobOutput(input: VerifyJobOutputInput): Promise<VerifiedFiles> {
  const { objects, jobName, claimed } = input;
  const claims = canonicalDigest(claimed);
  const key = verifyCheckpointKey(jobName);
  const saved = await loadCheckpoint(objects, key, jobName, claims);
  const files = {} as VerifiedFiles;
  for (const f of FILES) {
    const digest = claimed[f].digest as Digest;
    files[f] = { key: casKey(digest), digest, size: claimed[f].size };
  }
  if (saved !== undefined && saved.at === null) return files;

  const deadline =
    input.budget.ms === undefined ? Number.POSITIVE_INFINITY : input.startedAt + input.budget.ms;
  const meter = { bytesLeft: input.budget.bytes ?? Number.POSITIVE_INFINITY, deadline, now: input.now };
  const store = (at: Position | null) =>
    objects.put(
      'artifacts',
      key,
      new TextEncoder().encode(
        JSON.stringify({ kind: VERIFY_CHECKPOINT_KIND, jobName, claims, at } satisfies VerifyCheckpoint),
      ),
      { contentType: 'application/json' },
    );
  const first = saved?.at ? FILES.indexOf(saved.at.file) : 0;
  for (let i = first; i < FILES.length; i++) {
    const f = FILES[i] as ProcessedFile;
    const from = saved?.at && saved.at.file === f ? saved.at : undefined;
    const outcome = await rehash(objects, jobName, f, claimed[f], from, meter);
    if ('stopped' in outcome) {
      await store(outcome.stopped);
      throw new VeritrailError(
        'PROCESSING_RUNNING',
        `processing job ${jobName}: re-hashed ${PROCESSED_FILES[f]} up to byte ${outcome.stopped.offset} of ${claimed[f].size} within this invocation's budget; Preprocess is invoked again and continues from there`,
        { details: { jobName, file: PROCESSED_FILES[f], offset: outcome.stopped.offset } },
      );
    }
    const claim = claimed[f];
    const seen = outcome.seen;
    if (
      !digestsEqual(seen.digest, claim.digest as Digest) ||
      seen.size !== claim.size ||
      seen.rows !== claim.rows
    ) {
      throw mismatch(jobName, f, claim, seen);
    }
  }
  await store(null);
  return files;
}

function mismatch(
  jobName: string,
  f: ProcessedFile,
  claim: { digest: string; size: number; rows: number },
  seen: { digest: string; size: number; rows: number },
): VeritrailError {
  return new VeritrailError(
    'DIGEST_MISMATCH',
    `processing job ${jobName} claimed ${PROCESSED_FILES[f]} is ${claim.digest} (${claim.size} bytes, ${claim.rows} rows); the stored object is ${seen.digest} (${seen.size} bytes, ${seen.rows} rows); start a new run`,
  );
}

/** The stored checkpoint when it is this job's, for these claims, and well formed; else none. */
async function loadCheckpoint(
  objects: ObjectStore,
  key: string,
  jobName: string,
  claims: Digest,
): Promise<VerifyCheckpoint | undefined> {
  let text: string;
  try {
    const chunks: Buffer[] = [];
    for await (const c of await objects.open('artifacts', key)) chunks.push(c as Buffer);
    text = Buffer.concat(chunks).toString('utf8');
  } catch (e) {
    if (isVeritrailError(e, 'OBJECT_NOT_FOUND')) return undefined;
    throw e;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  const parsed = VerifyCheckpointSchema.safeParse(value);
  if (!parsed.success || parsed.data.jobName !== jobName || parsed.data.claims !== claims) return undefined;
  const at = parsed.data.at;
  if (at && at.file !== PARSED && at.records !== 0) return undefined;
  return parsed.data;
}

interface Meter {
  bytesLeft: number;
  deadline: number;
  now: () => number;
}

type Outcome = { seen: { digest: Digest; size: number; rows: number } } | { stopped: Position };

/** One file, from a position or from its first byte, until its end or the budget's. */
async function rehash(
  objects: ObjectStore,
  job: string,
  f: ProcessedFile,
  claim: { digest: string; size: number; rows: number },
  from: Position | undefined,
  meter: Meter,
): Promise<Outcome> {
  const name = PROCESSED_FILES[f];
  const parse = f === PARSED;
  const hasher = await createSHA256();
  let resumed = from;
  if (from) {
    try {
      hasher.load(Buffer.from(from.state, 'base64'));
    } catch {
      // A state another build of hash-wasm saved, or garbled: start the file again.
      resumed = undefined;
      hasher.init();
    }
  } else hasher.init();
  let offset = resumed?.offset ?? 0;
  let lines = resumed?.lines ?? 0;
  const counter = parse ? new CsvCounter(name, resumed) : undefined;
  /** Quote bytes since the last record boundary, odd or even (the parsed file). */
  let inQuotes = false;
  let spent = false;
  const key = casKey(claim.digest as Digest);

  let stream: Readable;
  try {
    stream = await objects.open('artifacts', key, { start: offset });
  } catch (e) {
    throw notStored(e, name, key);
  }
  try {
    for await (const chunk of stream) {
      let buf = chunk as Buffer;
      while (buf.length > 0) {
        // Where the budget runs out in this chunk (its end when it does not).
        let take = buf.length;
        let stop = false;
        if (spent) take = 0;
        else if (meter.now() >= meter.deadline) {
          spent = true;
          take = 0;
        } else if (meter.bytesLeft <= take) {
          take = meter.bytesLeft;
          spent = true;
        }
        if (spent && !parse) stop = true;
        else if (spent) {
          // The parsed file reads on to the first line break outside quotes at or after that point.
          let q = inQuotes;
          for (let i = 0; i < buf.length; i++) {
            if (buf[i] === QUOTE) q = !q;
            else if (buf[i] === LF && !q && i >= take) {
              take = i + 1;
              stop = true;
              break;
            }
          }
          if (!stop) take = buf.length;
        }
        const part = buf.subarray(0, take);
        hasher.update(part);
        for (let i = part.indexOf(LF); i !== -1; i = part.indexOf(LF, i + 1)) lines++;
        if (counter) {
          for (let i = part.indexOf(QUOTE); i !== -1; i = part.indexOf(QUOTE, i + 1)) inQuotes = !inQuotes;
          counter.push(part);
        }
        offset += take;
        meter.bytesLeft -= take;
        buf = buf.subarray(take);
        if (offset > claim.size) {
          // Larger than claimed: no need to read the rest to refuse it.
          throw new VeritrailError(
            'DIGEST_MISMATCH',
            `processing job ${job} claimed ${name} is ${claim.digest} (${claim.size} bytes, ${claim.rows} rows); the stored object is larger (more than ${claim.size} bytes); start a new run`,
          );
        }
        if (stop) {
          counter?.checkBoundary();
          return {
            stopped: {
              file: f,
              offset,
              state: Buffer.from(hasher.save()).toString('base64'),
              lines,
              records: counter?.records ?? 0,
            },
          };
        }
      }
    }
    counter?.end();
  } catch (e) {
    if (e instanceof VeritrailError) throw e;
    // The object was there and the read broke off (a reset connection, a timeout): the state
    // machine retries the step, which goes on from the last checkpoint stored (an object deleted
    // since is then not found, and refused).
    throw new VeritrailError(
      'TRANSIENT',
      `reading ${name} (${key}) broke off at byte ${offset}: ${(e as Error).message}; Preprocess is retried and continues from its last checkpoint`,
      { cause: e },
    );
  } finally {
    stream.destroy();
  }
  const rows = Math.max(0, (counter ? counter.records : lines) - 1);
  return { seen: { digest: `sha256:${hasher.digest('hex')}`, size: offset, rows } };
}

function notStored(e: unknown, name: string, key: string): VeritrailError {
  if (e instanceof VeritrailError && e.code !== 'OBJECT_NOT_FOUND') return e;
  return new VeritrailError(
    'PROCESSING_FAILED',
    `the processing job did not store ${name} at ${key}; start a new run`,
    {
      cause: e,
    },
  );
}

/**
 * test-groups.csv's records, counted by veritrail's CSV parser (src/core/csv.ts, as
 * src/steps/csv-stream.ts reads it) across invocations. A resumed counter starts a fresh parser at
 * a record boundary; its line numbers in errors are shifted to the file's.
 */
class CsvCounter {
  records: number;
  private readonly reader: CsvReader;
  /**
   * What to add to a resumed parser's line numbers: its line 1 is the line break it is primed with,
   * its line 2 the file's line `lines + 1` (exact for files whose line breaks are LF or CRLF).
   */
  private readonly shift: number;

  constructor(
    private readonly name: string,
    from: Position | undefined,
  ) {
    this.records = from?.records ?? 0;
    this.reader = new CsvReader({ record: () => void this.records++ }, { afterQuote: 'continue' });
    this.shift = 0;
    if (from && from.offset > 0) {
      // A blank line: no record, and no byte order mark is looked for past the file's first bytes.
      this.reader.push(Uint8Array.of(LF));
      this.shift = from.lines - 1;
    }
  }

  push(part: Uint8Array): void {
    this.read(() => this.reader.push(part));
  }

  /** At a checkpoint: the parser holds no partial record (end() flushes nothing). */
  checkBoundary(): void {
    this.read(() => this.reader.end());
  }

  end(): void {
    this.read(() => this.reader.end());
  }

  private read(f: () => void): void {
    try {
      f();
    } catch (e) {
      if (isVeritrailError(e, 'DATASET_VALUE')) {
        const line = typeof e.details?.line === 'number' ? e.details.line + this.shift : undefined;
        if (e.details?.utf8 === false) {
          throw new VeritrailError(
            'DATASET_UNREADABLE',
            `${this.name} is not UTF-8 text; export the data as UTF-8 CSV`,
            {
              cause: e,
            },
          );
        }
        if (line !== undefined && this.shift !== 0) {
          throw new VeritrailError('DATASET_VALUE', e.message.replace(/^CSV line \d+/, `CSV line ${line}`), {
            cause: e,
            details: { ...e.details, line },
          });
        }
      }
      throw e;
    }
  }
}
