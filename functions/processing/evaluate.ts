/**
 * The program Evaluate's processing jobs run (SageMaker Processing on AWS, a child process locally:
 * src/local/process-processor.ts), under the container contract of src/core/processing.ts. Its
 * config's kind says which job it is:
 *
 * - the shard job cuts input/features (test-features.csv, checked against its digest as it is
 *   read) into shards, each written to output/processed/ named by its own SHA-256;
 * - the count job streams input/test (test.csv), input/groups (test-groups.csv) and each shard's
 *   predictions under input/predictions, checking both files against their digests, and writes the
 *   fairness counts; with several shards also the joined predictions to output/processed/; with the
 *   trainer's own predictions (input/claimed) it counts how many are right on input/validation.
 *
 * Both run the very functions the Evaluate Lambda runs below the threshold
 * (src/steps/evaluate-transform.ts); the claims go to output/result/result.json.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, normalize } from 'node:path';
import { pathToFileURL } from 'node:url';
import { hexOf } from '../../src/core/digest.js';
import { VeritrailError } from '../../src/core/errors.js';
import {
  EVALUATE_INPUTS,
  type EvaluateCountJobConfig,
  EvaluateCountJobConfigSchema,
  type EvaluateCountJobOutput,
  type EvaluateShardJobConfig,
  EvaluateShardJobConfigSchema,
  type EvaluateShardJobOutput,
  PROCESSING_PATHS,
} from '../../src/core/processing.js';
import { countPredictions, selfReportedCounts, shardFeatures } from '../../src/steps/evaluate-transform.js';
import { oneFile, readConfig, runAsJob, writeResult } from './job.js';

const read = (path: string) => createReadStream(path, { highWaterMark: 1 << 20 });

async function shardJob(root: string, config: EvaluateShardJobConfig): Promise<EvaluateShardJobOutput> {
  const out = join(root, PROCESSING_PATHS.processed);
  await mkdir(out, { recursive: true });
  const features = await oneFile(join(root, EVALUATE_INPUTS.features), 'test-features.csv');
  const cut = await shardFeatures(read(features), config.shardBytes, async (bytes) => {
    await writeFile(join(out, createHash('sha256').update(bytes).digest('hex')), bytes);
  });
  if (cut.digest !== config.features.digest) {
    throw new VeritrailError(
      'DIGEST_MISMATCH',
      `test-features.csv hashes to ${cut.digest}, not the recorded ${config.features.digest}; re-run Preprocess`,
    );
  }
  const output: EvaluateShardJobOutput = {
    kind: 'veritrail/evaluate-shard-result@1',
    runId: config.runId,
    features: { digest: cut.digest, size: cut.size, rows: cut.rows },
    shards: cut.shards,
  };
  await writeResult(root, output);
  return output;
}

async function countJob(root: string, config: EvaluateCountJobConfig): Promise<EvaluateCountJobOutput> {
  const predictionsDir = join(root, EVALUATE_INPUTS.predictions);
  const shards = config.predictions.map((p) => {
    const path = normalize(join(predictionsDir, p.path));
    if (!path.startsWith(`${predictionsDir}/`))
      throw new VeritrailError(
        'PATH_REJECTED',
        `predictions path ${JSON.stringify(p.path)} leaves input/predictions`,
      );
    return { rows: p.rows, read: async () => new Uint8Array(await readFile(path)) };
  });
  const counted = await countPredictions({
    test: read(await oneFile(join(root, EVALUATE_INPUTS.test), 'test.csv')),
    groups: read(await oneFile(join(root, EVALUATE_INPUTS.groups), 'test-groups.csv')),
    expected: {
      test: config.test.digest as `sha256:${string}`,
      groups: config.groups.digest as `sha256:${string}`,
    },
    label: config.label,
    attributes: config.attributes,
    shards,
    who: 'the model (Batch Transform)',
  });
  let predictions: EvaluateCountJobOutput['predictions'];
  if (counted.joined) {
    const hex = createHash('sha256').update(counted.joined).digest('hex');
    const out = join(root, PROCESSING_PATHS.processed);
    await mkdir(out, { recursive: true });
    await writeFile(join(out, hex), counted.joined);
    predictions = { digest: `sha256:${hex}`, size: counted.joined.length, rows: counted.rows };
  }
  let selfReported: EvaluateCountJobOutput['selfReported'];
  if (config.selfReported) {
    const claimed = await readFile(
      await oneFile(join(root, EVALUATE_INPUTS.claimed), "the trainer's predictions.csv"),
    );
    if (`sha256:${createHash('sha256').update(claimed).digest('hex')}` !== config.selfReported.claimed.digest)
      throw new VeritrailError(
        'DIGEST_MISMATCH',
        `the trainer's predictions.csv does not match ${hexOf(config.selfReported.claimed.digest as `sha256:${string}`).slice(0, 12)}`,
      );
    selfReported = await selfReportedCounts({
      validation: read(await oneFile(join(root, EVALUATE_INPUTS.validation), 'validation.csv')),
      expected: config.selfReported.validation.digest as `sha256:${string}`,
      claimed: new Uint8Array(claimed),
    });
  }
  const output: EvaluateCountJobOutput = {
    kind: 'veritrail/evaluate-count-result@1',
    runId: config.runId,
    rows: counted.rows,
    counts: counted.counts,
    ...(predictions ? { predictions } : {}),
    ...(selfReported ? { selfReported } : {}),
  };
  await writeResult(root, output);
  return output;
}

/** Runs the job its config names; a summary line for the job's log. */
export async function runEvaluateJob(root: string): Promise<string> {
  const config = await readConfig(
    root,
    EvaluateShardJobConfigSchema.or(EvaluateCountJobConfigSchema),
    'veritrail evaluate job config',
  );
  if (config.kind === 'veritrail/evaluate-shard-job@1') {
    const out = await shardJob(root, config);
    return `${out.features.rows} test rows cut into ${out.shards.length} shards`;
  }
  const out = await countJob(root, config);
  return `${out.rows} test rows counted over ${config.predictions.length} shards`;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href)
  await runAsJob('evaluate', runEvaluateJob);
