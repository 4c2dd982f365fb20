import { createReadStream } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { digestsEqual } from '../../src/core/digest.js';
import { VeritrailError } from '../../src/core/errors.js';
import { canonicalDigest } from '../../src/core/jcs.js';
import {
  jobPipeline,
  PROCESSING_PATHS,
  PreprocessJobConfigSchema,
  type PreprocessJobOutput,
} from '../../src/core/processing.js';
import {
  PROCESSED_FILES,
  type ProcessedFile,
  transformDataset,
} from '../../src/steps/preprocess-transform.js';
import { readConfig, runAsJob, sha256File, writeResult } from './job.js';

export async function runPreprocessJob(root: string): Promise<PreprocessJobOutput> {
  const at = (p: string) => join(root, p);
  // The config input holds one file: SageMaker names it after its S3 key (its content address).
  const config = await readConfig(root, PreprocessJobConfigSchema, 'veritrail preprocess job config');
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
    await writeResult(root, output);
    return output;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href)
  await runAsJob('preprocess', async (root) => {
    const out = await runPreprocessJob(root);
    return `${out.rows.train} train, ${out.rows.validation} validation, ${out.rows.test} test rows`;
  });
