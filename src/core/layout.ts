/**
 * Where veritrail keeps things, written down once for the code that reads and writes them (src/)
 * and for the stacks that grant access to them (stacks/): the key prefixes of the artifacts bucket
 * and the audit log's default retention. Pure: names and numbers, no I/O.
 *
 * Artifacts bucket: content-addressed objects under `sha256/`, dataset listings under `listings/`,
 * the HashBatches Distributed Map's results under `map-results/<runId>/`, retrain-skip records under
 * `retrain-skips/`, SageMaker training output under `training/<pipeline>/`, Batch Transform scoring
 * under `scoring/<pipeline>/` and Preprocess's processing jobs under `processing/` and
 * `processing-code/` (its checks of their output under `processing-verify/`). The audit log
 * lives in a bucket of its own (src/audit/log.ts has its layout).
 */

/**
 * Content-addressed objects: `sha256/<hex>` (manifests, processed sets, models, bundles), written
 * once and read back verified (src/cas.ts, src/core/digest.ts casKey).
 */
export const CONTENT_PREFIX = 'sha256/';

/**
 * Dataset listings, `listings/<sha256 hex>.json` (src/steps/hashing.ts listingKey): the HashBatches
 * Distributed Map's ItemReader reads them as the state machine's role, which may read this prefix
 * and nothing else of the bucket (stacks/state-machine.ts).
 */
export const LISTING_PREFIX = 'listings/';

/**
 * The HashBatches Distributed Map's ResultWriter writes each run's Map Run results under
 * `map-results/<runId>/<map run id>/` (manifest.json, SUCCEEDED_<n>.json…), as the state machine's
 * role, which may write this prefix (stacks/state-machine.ts); HashDataset reads them back
 * (src/steps/map-results.ts). The ASL spells the same prefix in the ResultWriter's `Prefix`.
 */
export const MAP_RESULTS_PREFIX = 'map-results/';

/** Where a run's Map Run results go: the ResultWriter's `Prefix` (no trailing slash). */
export const mapResultsPrefix = (runId: string): string => `${MAP_RESULTS_PREFIX}${runId}`;

/**
 * Where retrain-skip decisions are remembered, `retrain-skips/<runId>.json` (src/app/start/skip.ts), so a
 * redelivered schedule finds its decision.
 */
export const SKIP_RECORD_PREFIX = 'retrain-skips/';

/** Batch Transform writes the control plane's scoring of the model under `scoring/<pipeline>/<job>/`. */
export const SCORING_PREFIX = 'scoring/';

/**
 * SageMaker writes model.tar.gz and output.tar.gz under `training/<pipeline>/<job>/`; each
 * pipeline's SageMaker role may write only under its own `training/<pipeline>/`.
 */
export const TRAINING_PREFIX = 'training/';

/**
 * Preprocess's processing jobs (src/aws/sagemaker-processor.ts): each job's result.json under
 * `processing/<job>/`, and the job program, content-addressed with its file name, under
 * `processing-code/sha256/<hex>/processing.mjs`.
 */
export const PROCESSING_PREFIX = 'processing/';
export const PROCESSING_CODE_PREFIX = 'processing-code/';

/**
 * Preprocess's progress in re-hashing a processing job's output, `processing-verify/<job>.json`
 * (src/steps/verify-job-output.ts), so the re-hash of a large output spans invocations. Not under
 * `processing/`: the job's own role writes there (its result.json), and a job must not be able to
 * write the control plane's record of how much of its output was already checked.
 */
export const PROCESSING_VERIFY_PREFIX = 'processing-verify/';

/**
 * Default Object Lock COMPLIANCE retention of audit entries (issue 4: "default 7 years"): seven
 * years, 7 × 365 + 2 leap days, a common record-keeping period for regulated models. The stacks
 * deploy it unless VERITRAIL_AUDIT_RETENTION_DAYS says otherwise; the functions and the audit log
 * use it when given no period.
 */
export const DEFAULT_AUDIT_RETENTION_DAYS = 2557;
