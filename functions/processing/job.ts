/**
 * What every veritrail processing job program shares (src/core/processing.ts, the container
 * contract): the one config file of input/config, one input file of a folder, files hashed as they
 * are copied, and a failure reported as `<CODE>: <message>` in /opt/ml/output/message (the job's
 * ExitMessage) with exit status 1.
 *
 * VERITRAIL_PROCESSING_ROOT and VERITRAIL_PROCESSING_EXIT_MESSAGE move the two paths (the local
 * emulation and the tests); SageMaker sets neither.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { z } from 'zod';
import { toErrorInfo, VeritrailError } from '../../src/core/errors.js';
import {
  exitMessageOf,
  PROCESSING_EXIT_MESSAGE,
  PROCESSING_PATHS,
  PROCESSING_RESULT_FILE,
  PROCESSING_ROOT,
} from '../../src/core/processing.js';

export async function sha256File(path: string): Promise<{ hex: string; size: number }> {
  const h = createHash('sha256');
  let size = 0;
  for await (const c of createReadStream(path, { highWaterMark: 1 << 20 })) {
    h.update(c as Buffer);
    size += (c as Buffer).length;
  }
  return { hex: h.digest('hex'), size };
}

/** The path of the one file an input folder holds (SageMaker names it after its S3 key). */
export async function oneFile(dir: string, what: string): Promise<string> {
  const names = await readdir(dir).catch(() => [] as string[]);
  if (names.length !== 1) {
    throw new VeritrailError(
      'PROCESSING_FAILED',
      `${what}: expected one file in ${dir}, found ${names.length}`,
    );
  }
  return join(dir, names[0] as string);
}

/** The job config, the one file of input/config, parsed with its schema. */
export async function readConfig<T extends z.ZodTypeAny>(
  root: string,
  schema: T,
  what: string,
): Promise<z.infer<T>> {
  let raw: unknown;
  try {
    raw = JSON.parse(
      await readFile(await oneFile(join(root, PROCESSING_PATHS.config), 'the job config'), 'utf8'),
    );
  } catch (e) {
    throw new VeritrailError(
      'PROCESSING_FAILED',
      `the job config (one file in ${PROCESSING_PATHS.config}) is missing or not JSON`,
      { cause: e },
    );
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw new VeritrailError('PROCESSING_FAILED', `the job config is not a ${what}`);
  return parsed.data;
}

/** Writes output/result/result.json. */
export async function writeResult(root: string, output: unknown): Promise<void> {
  const dir = join(root, PROCESSING_PATHS.result);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, PROCESSING_RESULT_FILE), `${JSON.stringify(output)}\n`);
}

/** Runs a job program as its container's entrypoint: a summary line, or the exit message and status 1. */
export async function runAsJob(name: string, job: (root: string) => Promise<string>): Promise<void> {
  const root = process.env.VERITRAIL_PROCESSING_ROOT ?? PROCESSING_ROOT;
  const messageFile = process.env.VERITRAIL_PROCESSING_EXIT_MESSAGE ?? PROCESSING_EXIT_MESSAGE;
  try {
    process.stdout.write(`veritrail ${name} job: ${await job(root)}\n`);
  } catch (e) {
    const info = toErrorInfo(e);
    const text = exitMessageOf(info.code, info.message);
    process.stderr.write(`${text}\n`);
    try {
      await mkdir(dirname(messageFile), { recursive: true });
      await writeFile(messageFile, text);
    } catch {
      /* the message is on stderr, in the job's log */
    }
    process.exitCode = 1;
  }
}
