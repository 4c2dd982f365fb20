/**
 * Least privilege, written down once: what each Lambda may do, on which resources. stacks/grants.ts
 * turns each row into the statements of that function's own role, which the Pipeline stack
 * attaches; the Keys stack names the signing roles in the key policies, and docs/deploy.md prints
 * the same table. Nothing is granted through SST `bind` (it grants `dynamodb:*`, `s3:*`).
 *
 * Artifact key layout (shared with the code): src/core/layout.ts.
 */
import {
  CONTENT_PREFIX,
  LISTING_PREFIX,
  MAP_RESULTS_PREFIX,
  SCORING_PREFIX,
  SKIP_RECORD_PREFIX,
  TRAINING_PREFIX,
} from '../src/core/layout.js';
import {
  EVALUATE_COUNT_JOB_NAME_PREFIX,
  EVALUATE_SHARD_JOB_NAME_PREFIX,
  PREPROCESS_JOB_NAME_PREFIX,
} from '../src/core/processing.js';
import { functionArnVariable, TASK_STATES, type TaskState } from '../src/core/states.js';

// The artifact prefixes the rows below name: defined once, in src/core/layout.ts, for the code too.
export {
  CONTENT_PREFIX,
  LISTING_PREFIX,
  MAP_RESULTS_PREFIX,
  SCORING_PREFIX,
  SKIP_RECORD_PREFIX,
  TRAINING_PREFIX,
};

/** Every handler in functions/, one Lambda each (functions/<name>.ts exporting `handler`). */
export const FUNCTION_NAMES = [
  'start',
  'register-run',
  'list-dataset',
  'hash-batch',
  'hash-dataset',
  'preprocess',
  'check-code',
  'train',
  'training-callback',
  'evaluate',
  'gate',
  'sign',
  'register',
  'finish',
  'record-failure',
  'reconcile',
] as const;

export type FunctionName = (typeof FUNCTION_NAMES)[number];

/**
 * The functions the state machine invokes, with their definition-substitution variable: from the
 * registry of task states (src/core/states.ts), each task's function checked to be one of ours.
 */
export const STATE_MACHINE_TASKS: Readonly<Partial<Record<FunctionName, string>>> = Object.fromEntries(
  Object.entries(TASK_STATES).map(([state, task]): [FunctionName, string] => [
    task.function,
    functionArnVariable(state as TaskState),
  ]),
);

export type TableAction =
  | 'dynamodb:GetItem'
  | 'dynamodb:PutItem'
  | 'dynamodb:UpdateItem'
  | 'dynamodb:ConditionCheckItem'
  | 'dynamodb:Query';

export interface FunctionAccess {
  /** What the function does, for the permission table. */
  purpose: string;
  /** s3:GetObject/GetObjectVersion on each pipeline's landing prefix; ListBucket(Versions) limited to it. */
  landingRead?: boolean;
  /** Artifact key prefixes read (s3:GetObject, s3:GetObjectVersion). */
  artifactsRead?: readonly string[];
  /** Artifact key prefixes written (s3:PutObject). */
  artifactsWrite?: readonly string[];
  /** Appends to the WORM audit log: s3:PutObject (with retention), s3:PutObjectRetention, s3:GetObject, s3:ListBucket. */
  auditAppend?: boolean;
  /** Actions on the table (and on its gsi1 index for Query). */
  table?: readonly TableAction[];
  /** kms:Sign on the attestation key (and GetPublicKey for the bundle's key hint). */
  signAttestations?: boolean;
  /** kms:GetPublicKey on the attestation key: re-checks statements signed earlier in the run. */
  verifyAttestations?: boolean;
  /** kms:Sign on the checkpoint key (C2SP checkpoints at the end of a run). */
  signCheckpoints?: boolean;
  /** states:StartExecution on the state machine. */
  startExecution?: boolean;
  /** states:SendTaskSuccess/SendTaskFailure/SendTaskHeartbeat on the state machine. */
  taskCallback?: boolean;
  /** sagemaker:CreateTrainingJob (+ AddTags) and iam:PassRole of the pipelines' SageMaker roles. */
  createTrainingJob?: boolean;
  /** sagemaker:DescribeTrainingJob. */
  describeTrainingJob?: boolean;
  /** states:DescribeExecution on the state machine's executions. */
  describeExecutions?: boolean;
  /**
   * Scoring by Batch Transform (src/aws/sagemaker-scorer.ts): sagemaker:CreateModel (network
   * isolation only), CreateTransformJob (data key), DescribeTransformJob, AddTags on create, on
   * `vts-*`; iam:PassRole of the pipelines' SageMaker roles; kms:CreateGrant for the job's volume.
   */
  batchTransform?: boolean;
  /**
   * SageMaker Processing jobs, when the deployment enables them (VERITRAIL_PROCESSING_IMAGE), named
   * with these prefixes: CreateProcessingJob (network isolation, inter-container encryption, the
   * data key) and DescribeProcessingJob on `<prefix>*`, PassRole of the processing role, the job
   * program written under processing-code/ and the jobs' results read under processing/.
   */
  processingJobs?: readonly string[];
  /** sagemaker:CreateModelPackage (+ group create/describe, AddTags). */
  registerModel?: boolean;
  /** events:PutEvents on the default bus (OpenLineage run events). */
  putEvents?: boolean;
}

const RUN_ITEMS: readonly TableAction[] = ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem'];

/** The table of grants. Keep docs/deploy.md in step (a test compares them). */
export const ACCESS: Record<FunctionName, FunctionAccess> = {
  start: {
    // src/app/start/ stores the definition content-addressed, reads the last run's signed
    // provenance to decide a retrain, and signs the retrain-skip statement.
    purpose: 'validates a trigger, pins the dataset version, dedupes, StartExecution',
    landingRead: true,
    artifactsRead: [CONTENT_PREFIX, SKIP_RECORD_PREFIX],
    artifactsWrite: [CONTENT_PREFIX, SKIP_RECORD_PREFIX],
    signAttestations: true,
    auditAppend: true,
    table: [...RUN_ITEMS, 'dynamodb:Query'],
    signCheckpoints: true,
    startExecution: true,
    putEvents: true,
  },
  'register-run': {
    // A Step Functions console start is an operator start: RegisterRun runs the start service on it
    // (src/aws/console-start.ts), so it may do what start does except StartExecution (it already
    // is the execution). The definitions are bundled with it as with start.
    purpose:
      'claims the run for this execution (conditional writes); a console start goes through the start service',
    landingRead: true,
    artifactsRead: [CONTENT_PREFIX, SKIP_RECORD_PREFIX],
    artifactsWrite: [CONTENT_PREFIX, SKIP_RECORD_PREFIX],
    auditAppend: true,
    table: [...RUN_ITEMS, 'dynamodb:ConditionCheckItem', 'dynamodb:Query'],
    signAttestations: true,
    putEvents: true,
  },
  // HashDataset is three states (src/steps/hashing.ts): the listing, one HashBatch per batch of
  // it, the fold that records the step. Only the fold touches the run and its audit.
  'list-dataset': {
    purpose: 'lists the dataset pinned by VersionId, writes the listing the Distributed Map reads',
    landingRead: true,
    // Create-once writes look first (src/cas.ts).
    artifactsRead: [LISTING_PREFIX],
    artifactsWrite: [LISTING_PREFIX],
  },
  'hash-batch': {
    purpose: 'streams one batch of the listing, pinned by VersionId, writes the batch’s digests',
    landingRead: true,
    artifactsRead: [CONTENT_PREFIX],
    artifactsWrite: [CONTENT_PREFIX],
  },
  'hash-dataset': {
    purpose: 'folds the batches into the manifest and the dataset digest, records the step',
    // map-results/: the HashBatches Map Run's results, as its ResultWriter exported them.
    artifactsRead: [CONTENT_PREFIX, LISTING_PREFIX, MAP_RESULTS_PREFIX],
    artifactsWrite: [CONTENT_PREFIX],
    auditAppend: true,
    table: RUN_ITEMS,
  },
  preprocess: {
    purpose: 'schema check, deterministic split, processed set, signed transform statement',
    landingRead: true,
    processingJobs: [PREPROCESS_JOB_NAME_PREFIX],
    artifactsRead: [CONTENT_PREFIX],
    artifactsWrite: [CONTENT_PREFIX],
    signAttestations: true,
    auditAppend: true,
    table: RUN_ITEMS,
  },
  'check-code': {
    purpose: 'training code and image pinned by digest',
    artifactsRead: [CONTENT_PREFIX],
    // On AWS it stores the scanned code as a content-addressed bundle, the job's `code` channel.
    artifactsWrite: [CONTENT_PREFIX],
    auditAppend: true,
    table: RUN_ITEMS,
  },
  train: {
    purpose: 'CreateTrainingJob on the processed digest, stores the task token',
    artifactsRead: [CONTENT_PREFIX],
    auditAppend: true,
    table: RUN_ITEMS,
    createTrainingJob: true,
  },
  'training-callback': {
    // It finishes the Train step (src/steps/train.ts handleTrainingEnd): hashes model.tar.gz and
    // output.tar.gz under training/, appends the step's audit entry, then resolves the task token.
    purpose: 'SageMaker state change → hash model and output, audit, SendTaskSuccess/SendTaskFailure',
    artifactsRead: [TRAINING_PREFIX],
    auditAppend: true,
    table: RUN_ITEMS,
    taskCallback: true,
  },
  evaluate: {
    purpose: 'scores the model itself (Batch Transform on the held-out features), fairness metrics',
    artifactsRead: [CONTENT_PREFIX, TRAINING_PREFIX, SCORING_PREFIX],
    artifactsWrite: [CONTENT_PREFIX],
    batchTransform: true,
    // Above the processing threshold: the shard job and the count job (src/steps/evaluate.ts).
    processingJobs: [EVALUATE_SHARD_JOB_NAME_PREFIX, EVALUATE_COUNT_JOB_NAME_PREFIX],
    auditAppend: true,
    table: RUN_ITEMS,
  },
  gate: {
    purpose: 'policy decision (allow / deny + reasons)',
    artifactsRead: [CONTENT_PREFIX],
    artifactsWrite: [CONTENT_PREFIX],
    verifyAttestations: true,
    auditAppend: true,
    table: RUN_ITEMS,
  },
  sign: {
    purpose: 'in-toto statements → DSSE → KMS Sign → Sigstore bundles',
    artifactsRead: [CONTENT_PREFIX, TRAINING_PREFIX],
    artifactsWrite: [CONTENT_PREFIX],
    auditAppend: true,
    table: RUN_ITEMS,
    signAttestations: true,
  },
  register: {
    purpose: 'CreateModelPackage with the gate’s approval status',
    artifactsRead: [CONTENT_PREFIX, TRAINING_PREFIX],
    auditAppend: true,
    table: RUN_ITEMS,
    registerModel: true,
  },
  finish: {
    // The signed model report sums up the run's evidence (src/report/produce.ts): it reads the
    // evidence by content address and stores the signed report statement the same way.
    purpose: 'run status SUCCEEDED | REJECTED, signed model report, signed checkpoint',
    artifactsRead: [CONTENT_PREFIX, TRAINING_PREFIX],
    artifactsWrite: [CONTENT_PREFIX],
    signAttestations: true,
    auditAppend: true,
    table: RUN_ITEMS,
    signCheckpoints: true,
    putEvents: true,
  },
  'record-failure': {
    purpose: 'run status FAILED with the reason, signed model report, signed checkpoint',
    artifactsRead: [CONTENT_PREFIX, TRAINING_PREFIX],
    artifactsWrite: [CONTENT_PREFIX],
    signAttestations: true,
    auditAppend: true,
    table: RUN_ITEMS,
    signCheckpoints: true,
    putEvents: true,
  },
  reconcile: {
    // Every 5 minutes (src/aws/reconcile.ts): unsettled runs (Query on gsi1) → DescribeExecution;
    // a Train step whose job ended → finish it as training-callback does (hash under training/) and
    // resolve the token; a job still running → SendTaskHeartbeat; an execution that ended under a
    // RUNNING run → FAILED ORCHESTRATOR_LOST (audit, checkpoint, lineage).
    purpose:
      'every 5 min: finish Train steps whose SageMaker event was lost, heartbeat running jobs, fail runs whose execution ended',
    // A run it closes gets its signed model report, as at Finish and RecordFailure.
    artifactsRead: [CONTENT_PREFIX, TRAINING_PREFIX],
    artifactsWrite: [CONTENT_PREFIX],
    signAttestations: true,
    auditAppend: true,
    table: [...RUN_ITEMS, 'dynamodb:Query'],
    signCheckpoints: true,
    taskCallback: true,
    describeTrainingJob: true,
    describeExecutions: true,
    putEvents: true,
  },
};

/** Whether a function touches data encrypted with the data key (S3 objects, the table). */
export function usesDataKey(access: FunctionAccess): boolean {
  return Boolean(
    access.landingRead ||
      access.artifactsRead?.length ||
      access.artifactsWrite?.length ||
      access.auditAppend ||
      access.table?.length,
  );
}

/** Functions whose roles the checkpoint / attestation key policies name for kms:Sign. */
export function signers(kind: 'attestation' | 'checkpoint'): FunctionName[] {
  return FUNCTION_NAMES.filter((name) =>
    kind === 'attestation' ? ACCESS[name].signAttestations : ACCESS[name].signCheckpoints,
  );
}
