/**
 * The program a Preprocess processing job runs (SageMaker Processing on AWS, a child process
 * locally: src/local/process-processor.ts). It follows the processing container contract
 * (src/core/processing.ts): the job config, the one file in input/config, the raw files at
 * input/raw/<path>, the processed files written to output/processed/ each named by its own SHA-256
 * (so the job's output lands at their content addresses), the claims to output/result/result.json,
 * and on failure `<CODE>: <message>` in /opt/ml/output/message (DescribeProcessingJob's
 * ExitMessage) and exit status 1. It runs the very transform the Preprocess Lambda runs.
 *
 * VERITRAIL_PROCESSING_ROOT and VERITRAIL_PROCESSING_EXIT_MESSAGE move the two paths (the local
 * emulation and the tests); SageMaker sets neither.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { digestsEqual } from '../../src/core/digest.js';
import { toErrorInfo, VeritrailError } from '../../src/core/errors.js';
import { canonicalDigest } from '../../src/core/jcs.js';
import {
  exitMessageOf,
  jobPipeline,
  PROCESSING_EXIT_MESSAGE,
  PROCESSING_PATHS,
  PROCESSING_RESULT_FILE,
  PROCESSING_ROOT,
  PreprocessJobConfigSchema,
  type PreprocessJobOutput,
} from '../../src/core/processing.js';
import {
  PROCESSED_FILES,
  type ProcessedFile,
  transformDataset,
} from '../../src/steps/preprocess-transform.js';

async function sha256File(path: string): Promise<{ hex: string; size: number }> {
  const h = createHash('sha256');
  let size = 0;
  for await (const c of createReadStream(path, { highWaterMark: 1 << 20 })) {
    h.update(c as Buffer);
    size += (c as Buffer).length;
  }
  return { hex: h.digest('hex'), size };
}

export async function runPreprocessJob(root: string): Promise<PreprocessJobOutput> {
  const at = (p: string) => join(root, p);
  // The config input holds one file: SageMaker names it after its S3 key (its content address).
  const configDir = at(PROCESSING_PATHS.config);
  const names = await readdir(configDir).catch(() => [] as string[]);
  let raw: unknown;
  try {
    if (names.length !== 1) throw new Error(`${names.length} files in ${PROCESSING_PATHS.config}`);
    raw = JSON.parse(await readFile(join(configDir, names[0] as string), 'utf8'));
  } catch (e) {
    throw new VeritrailError(
      'PROCESSING_FAILED',
      `the job config (one file in ${PROCESSING_PATHS.config}) is missing or not JSON`,
      { cause: e },
    );
  }
  const parsed = PreprocessJobConfigSchema.safeParse(raw);
  if (!parsed.success)
    throw new VeritrailError('PROCESSING_FAILED', `the job config is not a veritrail preprocess job config`);
  const config = parsed.data;
  if (!digestsEqual(canonicalDigest(config.pipeline), config.pipelineDigest)) {
    throw new VeritrailError(
      'DIGEST_MISMATCH',
      `the job config's pipeline definition does not match its digest ${config.pipelineDigest}`,
    );
  }
  const def = jobPipeline(config);
  const rawDir = at(PROCESSING_PATHS.raw);
  const pins = config.files.map((f) => {
    if (f.path.split('/').some((seg) => seg === '..' || seg === '') || f.path.startsWith('/'))
      throw new VeritrailError('PATH_REJECTED', `raw file path ${JSON.stringify(f.path)} leaves input/raw`);
    return { ...f, digest: f.digest as `sha256:${string}`, uri: pathToFileURL(join(rawDir, f.path)).href };
  });
  const work = await mkdtemp(join(tmpdir(), 'veritrail-job-'));
  try {
    const rows = await transformDataset({
      def,
      pins,
      splitSeed: config.rawDigest as `sha256:${string}`,
      open: async (file) => {
        const path = join(rawDir, file.path);
        if (!(await stat(path).catch(() => undefined))?.isFile())
          throw new VeritrailError(
            'DATASET_MISSING',
            `raw file ${file.path} was not handed to the job (input/raw); it was deleted after it was hashed, start a new run`,
          );
        return createReadStream(path, { highWaterMark: 1 << 20 });
      },
      dir: work,
    });
    const outDir = at(PROCESSING_PATHS.processed);
    await mkdir(outDir, { recursive: true });
    const rowsOf: Record<ProcessedFile, number> = {
      train: rows.train,
      validation: rows.validation,
      test: rows.test,
      testFeatures: rows.test,
      testGroups: rows.test,
    };
    const files = {} as PreprocessJobOutput['files'];
    for (const f of Object.keys(PROCESSED_FILES) as ProcessedFile[]) {
      const from = join(work, PROCESSED_FILES[f]);
      const { hex, size } = await sha256File(from);
      await copyFile(from, join(outDir, hex));
      files[f] = { digest: `sha256:${hex}`, size, rows: rowsOf[f] };
    }
    const output: PreprocessJobOutput = {
      kind: 'veritrail/preprocess-result@1',
      runId: config.runId,
      rows,
      files,
    };
    const resultDir = at(PROCESSING_PATHS.result);
    await mkdir(resultDir, { recursive: true });
    await writeFile(join(resultDir, PROCESSING_RESULT_FILE), `${JSON.stringify(output)}\n`);
    return output;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const root = process.env.VERITRAIL_PROCESSING_ROOT ?? PROCESSING_ROOT;
  const messageFile = process.env.VERITRAIL_PROCESSING_EXIT_MESSAGE ?? PROCESSING_EXIT_MESSAGE;
  try {
    const out = await runPreprocessJob(root);
    process.stdout.write(
      `veritrail preprocess job: ${out.rows.train} train, ${out.rows.validation} validation, ${out.rows.test} test rows\n`,
    );
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

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
