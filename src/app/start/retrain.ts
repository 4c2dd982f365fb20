/**
 * The retrain decision: whether a schedule or an operator start trains again, or nothing changed
 * since the last successful run of the pipeline. Its inputs (issue 11, the retrain identity) are
 * compared with what that run recorded: the training code, the definition, the gate policy, the
 * trainer environment, and last (it is the dear one) the data. Every digest is computed by the very
 * function the run's own step uses (CheckCode: hashTrainingCode; HashDataset: listPinned and
 * datasetDigestOf), so a skip is never decided on a digest the run would not have recorded.
 */

import { type Digest, digestOf } from '../../core/digest.js';
import { factsOf } from '../../core/run-facts.js';
import { decideRetrain, type RetrainDecision, type RunInputs } from '../../core/start.js';
import type { DatasetSource, PinnedDataset, RunRecord, RunStore } from '../../ports.js';
import { hashTrainingCode } from '../../steps/check-code.js';
import { readGatePolicy } from '../../steps/gate-policy.js';
import { datasetDigestOf } from '../../steps/hash-dataset.js';
import { listPinned } from '../../steps/list-dataset.js';
import { trainerEnvironment } from '../../steps/trainer-env.js';
import type { StartPipeline, StartRequest } from './routing.js';

/** What the retrain decision reads: past runs, the datasets and the code. */
export interface RetrainDeps {
  runs: RunStore;
  datasets: DatasetSource;
  /**
   * The most bytes of new data a scheduled retrain hashes to decide whether anything changed.
   * Above it the run is started and HashDataset (a Distributed Map) settles the digest: the start
   * function has 60 s. Absent (locally): no limit.
   */
  retrainHashBudgetBytes?: number;
  /** Reports what does not change the outcome (a new version too large to hash here). */
  warn?: (message: string) => void;
}

/** A decision, the inputs it compared, and the run it compared them with. */
export interface Retrain {
  decision: RetrainDecision;
  inputs: RunInputs;
  last: RunRecord;
}

/**
 * The retrain decision for a request and the dataset it found; `undefined` when there is nothing to
 * compare with (forced, no successful run yet, a run without the digests to compare, code that
 * cannot be read here, data too large to hash in time): then the run trains.
 */
export async function retrainDecision(
  deps: RetrainDeps,
  req: StartRequest,
  dataset: PinnedDataset,
): Promise<Retrain | undefined> {
  if (req.force) return undefined;
  const last = await lastSucceeded(deps.runs, req.pipeline.def.name);
  if (last === undefined) return undefined;
  const lastFacts = factsOf(last);
  const lastRaw = lastFacts.rawDigest;
  const lastCode = lastFacts.codeDigest;
  if (lastRaw === undefined || lastCode === undefined) return undefined;
  const code = await codeDigestOf(req.pipeline, deps.datasets);
  if (code === undefined) return undefined;
  // The rest of the retrain identity (issue 11): the gate policy's bytes and, locally, the
  // trainer environment; the earlier run recorded both (Gate and CheckCode facts).
  // (A custom policy cannot be read on AWS yet: Gate refuses that run, so it is not compared here.)
  const policy =
    req.pipeline.base === undefined && req.pipeline.def.gate.policy !== undefined
      ? undefined
      : digestOf((await readGatePolicy(req.pipeline.def, req.pipeline.base)).text);
  const environment = req.pipeline.base?.startsWith('file:')
    ? trainerEnvironment(req.pipeline.def.trainer.command).digest
    : undefined;
  const inputs: RunInputs = {
    data: lastRaw, // compared below, only when everything else is unchanged
    code,
    definition: req.pipeline.digest,
    ...(policy ? { policy } : {}),
    ...(environment ? { environment } : {}),
  };
  const lastPolicy = lastFacts.policyDigest;
  const lastEnvironment = lastFacts.environmentDigest;
  const lastSuccessfulRun = {
    runId: last.runId,
    inputs: {
      data: lastRaw,
      code: lastCode,
      definition: last.pipelineDigest,
      ...(lastPolicy ? { policy: lastPolicy } : {}),
      ...(lastEnvironment ? { environment: lastEnvironment } : {}),
    },
  };
  // The cheap inputs first: when the code, definition, policy or environment changed, the run
  // trains whatever the data is, and the data is not read.
  const withoutData = decideRetrain({ latestInputs: inputs, lastSuccessfulRun, force: req.force });
  if (withoutData.action === 'train') return { decision: withoutData, inputs, last };
  const data = await retrainDataDigest(deps, req, dataset, last, lastRaw);
  if (data === undefined) return undefined;
  const latestInputs = { ...inputs, data };
  const decision = decideRetrain({ latestInputs, lastSuccessfulRun, force: req.force });
  return { decision, inputs: latestInputs, last };
}

async function lastSucceeded(runs: RunStore, pipeline: string): Promise<RunRecord | undefined> {
  const listed = await runs.list({ pipeline, limit: 200 });
  const when = (r: RunRecord) => factsOf(r).finishedAt ?? r.updatedAt;
  return listed
    .filter((r) => r.status === 'SUCCEEDED')
    .sort((a, b) => (when(a) < when(b) ? 1 : when(a) > when(b) ? -1 : 0))[0];
}

/**
 * The training-code digest CheckCode records for this pipeline (hashTrainingCode, reading where
 * CheckCode reads: the folder next to the definition locally, the copy bundled into the function on
 * AWS); `undefined` on AWS for a pipeline that does not train on SageMaker (its code is not
 * bundled, and it cannot run there at all).
 */
export async function codeDigestOf(p: StartPipeline, datasets: DatasetSource): Promise<Digest | undefined> {
  if (p.base === undefined && p.def.trainer.aws === undefined) return undefined;
  return (await hashTrainingCode(p.def, p.base, datasets)).digest;
}

/**
 * The digest HashDataset would record for the dataset a schedule found, or `undefined` when
 * finding it out would read more than the start function may (then the run starts, and its own
 * HashDataset settles the digest; a retrain over the same bytes under a new object version then
 * trains again rather than being skipped).
 */
async function retrainDataDigest(
  deps: RetrainDeps,
  req: StartRequest,
  dataset: PinnedDataset,
  last: RunRecord,
  lastRaw: Digest,
): Promise<Digest | undefined> {
  if (dataset.digest !== undefined) return dataset.digest;
  // The same S3 object version is the same bytes: no need to read it again.
  if (
    dataset.versionId !== undefined &&
    last.dataset.uri === dataset.uri &&
    last.dataset.versionId === dataset.versionId
  )
    return lastRaw;
  const files = await listPinned(deps.datasets, dataset);
  const size = files.reduce((n, f) => n + f.size, 0);
  const budget = deps.retrainHashBudgetBytes;
  if (budget !== undefined && size > budget) {
    deps.warn?.(
      `scheduled retraining of ${req.pipeline.def.name}: ${dataset.uri} is a new version of ${size} bytes, more than the ${budget} the start function hashes; starting the run, whose HashDataset records the digest`,
    );
    return undefined;
  }
  return datasetDigestOf(deps.datasets, files);
}
