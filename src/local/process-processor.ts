/**
 * Preprocess's processing job, emulated on this machine: the SageMaker Processing container
 * contract (src/core/processing.ts) laid out under a temporary root, the job program
 * (functions/processing/preprocess.ts) run as a child process of Node 22 with only that root in its
 * environment, then its outputs "uploaded" as SageMaker would: each file of output/processed/ to the
 * artifacts store at `sha256/<its name>`, output/result/result.json to `processing/<job>/result.json`.
 * The Preprocess step then re-hashes what was stored, as it does on AWS.
 *
 * Differences from SageMaker: no container image and no network isolation (the program runs on
 * this host's Node, the same code the job image runs); the raw files are copied from the pinned
 * dataset rather than downloaded by prefix.
 */
import { spawn } from 'node:child_process';
import { createReadStream, createWriteStream, existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { readObject } from '../cas.js';
import { digestOf } from '../core/digest.js';
import { isVeritrailError, VeritrailError } from '../core/errors.js';
import { CONTENT_PREFIX, PROCESSING_PREFIX } from '../core/layout.js';
import {
  errorOfFailedJob,
  PROCESSING_PATHS,
  PROCESSING_RESULT_FILE,
  verifyBytesSetting,
} from '../core/processing.js';
import type {
  DatasetSource,
  EvaluateJobSpec,
  ObjectStore,
  PreprocessJobSpec,
  ProcessingJobResult,
  Processor,
  VerifyBudget,
} from '../ports.js';

/** The job programs: the TypeScript source in a checkout, the compiled module in a built package. */
const PROGRAMS = {
  preprocess: [
    new URL('../../functions/processing/preprocess.ts', import.meta.url),
    new URL('../../functions/processing/preprocess.js', import.meta.url),
  ],
  evaluate: [
    new URL('../../functions/processing/evaluate.ts', import.meta.url),
    new URL('../../functions/processing/evaluate.js', import.meta.url),
  ],
} as const;

function jobProgram(name: keyof typeof PROGRAMS): string {
  const [ts, js] = PROGRAMS[name].map((u) => fileURLToPath(u)) as [string, string];
  return existsSync(ts) ? ts : js;
}

/** VERITRAIL_PROCESSING_THRESHOLD_BYTES: unset means no processing job locally. */
export function processingThresholdFromEnv(env: NodeJS.ProcessEnv = process.env): number | undefined {
  const raw = env.VERITRAIL_PROCESSING_THRESHOLD_BYTES;
  if (raw === undefined || raw === '') return undefined;
  if (!/^\d+$/.test(raw))
    throw new VeritrailError(
      'USAGE',
      `VERITRAIL_PROCESSING_THRESHOLD_BYTES must be a whole number of bytes (got ${JSON.stringify(raw)}); unset it to preprocess in-process`,
    );
  return Number(raw);
}

/**
 * VERITRAIL_PROCESSING_VERIFY_BYTES (src/core/processing.ts verifyBytesSetting): the bytes
 * Preprocess re-hashes of the job's output per invocation before it saves its progress and is
 * invoked again (the runner plays the ASL's retrier). Unset: the whole output in one go.
 */
export function verifyBudgetFromEnv(env: NodeJS.ProcessEnv = process.env): VerifyBudget | undefined {
  const bytes = verifyBytesSetting(env.VERITRAIL_PROCESSING_VERIFY_BYTES);
  return bytes === undefined ? undefined : { bytes };
}

export class LocalProcessor implements Processor {
  readonly verifyBudget?: VerifyBudget;

  constructor(
    readonly thresholdBytes: number,
    private readonly objects: ObjectStore,
    private readonly datasets: DatasetSource,
    options: { verifyBudget?: VerifyBudget } = {},
  ) {
    if (options.verifyBudget) this.verifyBudget = options.verifyBudget;
  }

  preprocess(spec: PreprocessJobSpec): Promise<ProcessingJobResult> {
    return this.run('preprocess', spec, async (at) => {
      for (const file of spec.raw) {
        const to = join(at(PROCESSING_PATHS.raw), file.path);
        await mkdir(dirname(to), { recursive: true });
        await pipeline(await this.datasets.open(file), createWriteStream(to));
      }
    });
  }

  /** Each input's keys copied to `input/<name>/<path below its prefix>`, as an S3Prefix input lays them out. */
  evaluate(spec: EvaluateJobSpec): Promise<ProcessingJobResult> {
    return this.run('evaluate', spec, async (at) => {
      for (const input of spec.inputs) {
        for (const key of input.keys) {
          if (!key.startsWith(input.prefix))
            throw new VeritrailError('INTERNAL', `input ${input.name}: ${key} is not under ${input.prefix}`);
          const rel = key === input.prefix ? (key.split('/').pop() ?? key) : key.slice(input.prefix.length);
          const to = join(at(`input/${input.name}`), rel);
          await mkdir(dirname(to), { recursive: true });
          await pipeline(await this.objects.open('artifacts', key), createWriteStream(to));
        }
      }
    });
  }

  private async run(
    name: 'preprocess' | 'evaluate',
    spec: { jobName: string; config: { key: string } },
    layout: (at: (p: string) => string) => Promise<void>,
  ): Promise<ProcessingJobResult> {
    const program = jobProgram(name);
    const resultKey = `${PROCESSING_PREFIX}${spec.jobName}/${PROCESSING_RESULT_FILE}`;
    // Idempotent by name, as SageMaker is: a job that completed (its result stored, after its
    // files) is not run again when its step is invoked again (to go on re-hashing its output).
    if (await this.objects.head('artifacts', resultKey)) return this.completed(spec, program, resultKey);
    const root = await mkdtemp(join(tmpdir(), 'veritrail-processing-'));
    try {
      const at = (p: string) => join(root, p);
      await mkdir(at(PROCESSING_PATHS.config), { recursive: true });
      // As the S3Prefix input of the config object lays it out: one file, named as its key ends.
      await writeFile(
        join(at(PROCESSING_PATHS.config), spec.config.key.split('/').pop() ?? 'config.json'),
        await readObject(this.objects, 'artifacts', spec.config.key),
      );
      await layout(at);
      const messageFile = join(root, 'output-message');
      const { code, log } = await runChild(program, {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        HOME: root,
        VERITRAIL_PROCESSING_ROOT: root,
        VERITRAIL_PROCESSING_EXIT_MESSAGE: messageFile,
      });
      if (code !== 0) {
        const exitMessage = await readFile(messageFile, 'utf8').catch(() => undefined);
        throw errorOfFailedJob({
          name: spec.jobName,
          status: 'Failed',
          ...(exitMessage ? { exitMessage } : {}),
          failureReason: `AlgorithmError: exit code ${code}: ${log.trim().split('\n').slice(-3).join(' / ')}`,
        });
      }
      const processed = at(PROCESSING_PATHS.processed);
      for (const file of await readdir(processed).catch(() => [] as string[])) {
        await this.upload(`${CONTENT_PREFIX}${file}`, join(processed, file));
      }
      const result = join(at(PROCESSING_PATHS.result), PROCESSING_RESULT_FILE);
      if (existsSync(result)) await this.upload(resultKey, result, true);
      return await this.completed(spec, program, resultKey);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  }

  private async completed(
    spec: { jobName: string },
    program: string,
    resultKey: string,
  ): Promise<ProcessingJobResult> {
    return {
      resultKey,
      code: { digest: digestOf(await readFile(program)) },
      executor: { kind: 'local-process', jobName: spec.jobName },
    };
  }

  /** As ProcessingOutput uploads: the file at the key (a content address already there is kept). */
  private async upload(key: string, path: string, replace = false): Promise<void> {
    try {
      await this.objects.put('artifacts', key, createReadStream(path), {
        ...(replace ? {} : { ifAbsent: true }),
        size: (await stat(path)).size,
      });
    } catch (e) {
      if (!isVeritrailError(e, 'OBJECT_EXISTS')) throw e;
    }
  }
}

function runChild(program: string, env: Record<string, string>): Promise<{ code: number; log: string }> {
  const args = program.endsWith('.ts') ? ['--import', 'tsx', program] : [program];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    const keep = (b: Buffer) => {
      log = (log + b.toString()).slice(-8192);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? 1, log }));
  });
}
