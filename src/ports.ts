/**
 * The small interfaces the pipeline needs from the outside world. Each has an AWS adapter
 * (src/aws) and an embedded one (src/local); both pass the same contract tests.
 */
import type { Readable } from 'node:stream';
import type { AuditEntry, AuditEventInput } from './core/audit-entry.js';
import type { Digest } from './core/digest.js';
import type { ErrorInfo } from './core/errors.js';
import type { ExecState } from './core/exec-state.js';
import type { RunEvent } from './core/lineage.js';
import type { PipelineDefinition } from './core/pipeline.js';
import type { RunRecord, RunStatus, StepRecord } from './core/run.js';

// ───────────────────────────── object store ─────────────────────────────

/** Logical buckets. On AWS each is an S3 bucket; locally a folder under the state dir. */
export type Bucket = 'landing' | 'artifacts' | 'audit';

export interface PutOptions {
  /** Create only if no object has this key (S3 `If-None-Match: *`); otherwise OBJECT_EXISTS. */
  ifAbsent?: boolean;
  /** Write once, read many: S3 Object Lock COMPLIANCE until this date; locally a read-only file. */
  retainUntil?: Date;
  contentType?: string;
  /** Byte length, required by S3 when the body is a stream. */
  size?: number;
}

export interface OpenOptions {
  versionId?: string;
  /**
   * Stream from this byte offset to the end (S3 `Range: bytes=<start>-`), so that a long read can
   * resume where an earlier invocation stopped. At or past the object's size: an empty stream.
   */
  start?: number;
}

export interface ObjectInfo {
  bucket: Bucket;
  key: string;
  size: number;
  /** S3 VersionId; absent locally (content digests pin versions there). */
  versionId?: string;
}

export interface ObjectStore {
  put(bucket: Bucket, key: string, body: Uint8Array | Readable, options?: PutOptions): Promise<ObjectInfo>;
  /** Streams an object; OBJECT_NOT_FOUND when absent. */
  open(bucket: Bucket, key: string, options?: OpenOptions): Promise<Readable>;
  head(bucket: Bucket, key: string): Promise<ObjectInfo | undefined>;
  /** Keys under a prefix, in lexicographic order. */
  list(bucket: Bucket, prefix: string): AsyncIterable<ObjectInfo>;
}

// ───────────────────────────── run store ─────────────────────────────

/** A run's record, as src/core reads it (reports, signed truth): defined in src/core/run.ts. */
export type { RunRecord, StepRecord } from './core/run.js';

export type NewRun = Omit<RunRecord, 'status' | 'updatedAt' | 'steps' | 'facts' | 'error'>;

export interface RunStore {
  /**
   * Conditional create: when a run with this id is already recorded, RunExistsError (RUN_EXISTS)
   * carrying that run.
   */
  create(run: NewRun): Promise<RunRecord>;
  get(runId: string): Promise<RunRecord | undefined>;
  /** Conditional status change: RUN_TRANSITION_ILLEGAL unless `to` is legal from the stored status. */
  transition(
    runId: string,
    to: RunStatus,
    patch?: { facts?: Record<string, unknown>; error?: ErrorInfo },
  ): Promise<RunRecord>;
  /** Appends a step record and merges facts, only while the run is RUNNING. */
  recordStep(runId: string, step: StepRecord, facts?: Record<string, unknown>): Promise<void>;
  /** Newest first; `unit` keeps the runs of one business unit (a record without one is the default unit's). */
  list(options?: { pipeline?: string; unit?: string; limit?: number }): Promise<RunRecord[]>;
}

/**
 * A Step Functions task token: a bearer credential for the waiting task. It is kept apart from
 * the run record (never in facts, `runs show`, lineage or the audit log); only the step that
 * receives it writes it, and only the functions that resolve it (training callback, reconciler)
 * read it.
 */
export interface TaskTokenStore {
  putTaskToken(runId: string, step: string, token: string): Promise<void>;
  getTaskToken(runId: string, step: string): Promise<string | undefined>;
}

/** Which orchestrator execution owns a run. The first RegisterRun to claim it wins. */
export interface ExecutionClaim {
  runId: string;
  /** Step Functions execution ARN (`local:<runId>` in the embedded runtime). */
  executionArn: string;
  claimedAt: string;
}

/**
 * The executions that own runs, and the runs not yet settled (the reconciler's work list). A
 * second execution of a run finds the first one's claim and ends without touching the run.
 */
export interface ExecutionIndex {
  /** Claims `runId` for `executionArn` unless another execution holds it; returns the holder. */
  claim(runId: string, executionArn: string): Promise<ExecutionClaim>;
  /** Who holds the claim of `runId`, if anyone (read only). */
  holder(runId: string): Promise<ExecutionClaim | undefined>;
  /** Claims of runs not yet settled, oldest first. */
  active(options?: { limit?: number }): Promise<ExecutionClaim[]>;
  /** The run has ended: its claim stays (a late execution still finds it) but leaves the active list. */
  settle(runId: string): Promise<void>;
}

// ───────────────────────────── signer ─────────────────────────────

/** The attestation and checkpoint signer: src/core/attest signs with it, so it is defined there. */
export type { Signer } from './core/attest/keys.js';

// ───────────────────────────── trainer ─────────────────────────────

interface TrainingChannel {
  /** Where the bytes are: an object key in the artifacts bucket. */
  key: string;
  /** The digest the trainer must verify before reading a single row (invariant 2). */
  digest: Digest;
  /** File name the channel's object gets inside its channel directory. */
  fileName: string;
}

export interface TrainingJobSpec {
  jobName: string;
  runId: string;
  pipeline: string;
  /** Local: the command the trainer child process runs, and the folder it runs in. */
  command?: string[];
  workingDir?: string;
  /**
   * Local: the trainer code folder (`trainer.code`, absolute). Under a bubblewrap sandbox it is the
   * only part of `workingDir` the trainer sees (read-only), so the command is confined to it.
   */
  codeDir?: string;
  /** AWS: the training image, pinned by digest. */
  image?: string;
  instanceType?: string;
  instanceCount?: number;
  volumeSizeGB?: number;
  /** SageMaker: no network inside the container (default true), and optionally run in a VPC. */
  networkIsolation?: boolean;
  vpc?: { subnets: readonly string[]; securityGroupIds: readonly string[] };
  hyperparameters: Record<string, string>;
  channels: Record<string, TrainingChannel>;
  /** Key prefix in the artifacts bucket for model.tar.gz and output.tar.gz. */
  outputPrefix: string;
  maxRuntimeSeconds: number;
  /** Passed back unchanged with the completion: the Step Functions task token on AWS. */
  taskToken?: string;
}

export interface TrainingJobResult {
  jobName: string;
  status: 'Completed' | 'Failed' | 'Stopped';
  failureReason?: string;
  /** Why the job failed, when the trainer adapter knows better than TRAINING_FAILED. */
  errorCode?: 'TRAINING_TIMEOUT' | 'TRAINING_OUTPUT_MISSING' | 'CHANNEL_TAMPERED';
  /** Artifacts bucket key of model.tar.gz (SM_MODEL_DIR packed). */
  modelKey?: string;
  /** Artifacts bucket key of output.tar.gz (SM_OUTPUT_DATA_DIR packed). */
  outputKey?: string;
  /**
   * How the trainer was confined, as the provenance records it: `bubblewrap`, `unshare` or `none`
   * locally (src/local/sandbox.ts), `sagemaker` on AWS (the job's own container and network isolation).
   */
  isolation?: { level: string; network: boolean; stateDirVisible: boolean; note?: string };
  /** The staged channels were re-hashed after the trainer exited and were unchanged. */
  channelsSealed?: boolean;
}

/**
 * The inference contract (docs/trainers.md): the control plane scores a trained model itself on
 * held-out features the trainer never saw. Locally the trainer code's `predict` command runs in a
 * separate, sandboxed process (features on stdin, predictions on stdout); on AWS a SageMaker Batch
 * Transform job of the same image (network isolation, KMS) reads them from S3.
 */
export interface ScoringJobSpec {
  jobName: string;
  runId: string;
  pipeline: string;
  /** The model.tar.gz the Train step hashed. */
  model: { key: string; digest: Digest };
  /** The features to score (CSV with a header, no label, no protected attributes). */
  input: { key: string; digest: Digest };
  /**
   * The features split into shards, in order (each a CSV with the features header, content-addressed
   * in the artifacts bucket); when present the adapter scores each shard as its own request and
   * `input` is the whole file they were cut from (for the record only).
   */
  shards?: readonly { key: string; digest: Digest; rows: number }[];
  /** Local: the predict command, the folder it runs in and the trainer code folder. */
  command?: string[];
  workingDir?: string;
  codeDir?: string;
  /** AWS: the image (pinned by digest) that serves the model, and the instance type. */
  image?: string;
  instanceType?: string;
  networkIsolation?: boolean;
  /** Key prefix in the artifacts bucket for the transform output (AWS). */
  outputPrefix: string;
  maxRuntimeSeconds: number;
}

export interface ScoringJobResult {
  /**
   * Artifacts bucket key of the predictions (CSV with a `prediction` column, one row per input row);
   * with shards: the first shard's predictions key.
   */
  predictionsKey: string;
  /** With shards: the predictions of each shard, in the shards' order (each a CSV with a `prediction` column, one row per shard row). */
  shardPredictionKeys?: string[];
  isolation?: { level: string; network: boolean; stateDirVisible: boolean; note?: string };
}

/** Runs the inference contract. A Trainer adapter implements it next to training (same code, same image). */
interface Scorer {
  score(spec: ScoringJobSpec): Promise<ScoringJobResult>;
}

export interface Trainer {
  start(spec: TrainingJobSpec): Promise<{ jobName: string }>;
  /** Resolves when the job has ended (locally the child exits; on AWS the state-change event arrives). */
  wait(jobName: string): Promise<TrainingJobResult>;
  /** The inference contract on the same code or image; absent: the adapter cannot score (SCORING_FAILED). */
  score?: Scorer['score'];
  /**
   * The largest features file one scoring request takes (Batch Transform: MaxPayloadInMB); Evaluate
   * cuts bigger test features into shards of at most this many bytes. Absent: no limit, one shard.
   */
  scoreShardBytes?: number;
}

// ───────────────────────────── processing ─────────────────────────────

/**
 * Preprocess as a job (src/core/processing.ts): the job reads the raw dataset and the content-
 * addressed job config, runs veritrail's transform, writes the processed files to the artifacts
 * bucket under their content addresses and its claims to `resultKey`.
 */
export interface PreprocessJobSpec {
  jobName: string;
  runId: string;
  pipeline: string;
  /** The job config (PreprocessJobConfig), content-addressed in the artifacts bucket. */
  config: { key: string; digest: Digest };
  /** The raw files, as HashDataset pinned them (the job is handed them at `input/raw/<path>`). */
  raw: readonly DatasetFile[];
  /** Total raw bytes (sizes the job's volume). */
  sizeBytes: number;
  maxRuntimeSeconds: number;
}

/**
 * One of Evaluate's jobs (src/core/processing.ts, "Evaluate's jobs"): the content-addressed config
 * and its inputs from the artifacts bucket, each `input/<name>/` in the job (an input's keys all
 * lie under its prefix and keep their path below it: one object, or a folder of objects).
 */
export interface EvaluateJobSpec {
  jobName: string;
  runId: string;
  pipeline: string;
  config: { key: string; digest: Digest };
  inputs: readonly { name: string; prefix: string; keys: readonly string[] }[];
  /** Total input bytes (sizes the job's volume). */
  sizeBytes: number;
  maxRuntimeSeconds: number;
}

export type PreprocessJobResult = ProcessingJobResult;

export interface ProcessingJobResult {
  /** Artifacts bucket key of the job's result.json (PreprocessJobOutput). */
  resultKey: string;
  /** The program the job ran, as the transform statement names it. */
  code: { digest: Digest };
  /** Where it ran, for the run record and the audit detail. */
  executor: { kind: 'sagemaker-processing' | 'local-process'; jobName: string; image?: string };
}

/**
 * How much of one Preprocess invocation the re-hash of a job's output may take before it saves its
 * progress and asks to be invoked again (src/steps/verify-job-output.ts). Absent limits: none.
 */
export interface VerifyBudget {
  /** Milliseconds after the invocation started (the job's polling included). */
  ms?: number;
  /** Bytes re-hashed per invocation (tests, and the local runner's VERITRAIL_PROCESSING_VERIFY_BYTES). */
  bytes?: number;
}

export interface Processor {
  /** Datasets larger than this many bytes are preprocessed by a job. */
  thresholdBytes: number;
  /** The re-hash's budget per invocation; absent: the whole output in one invocation. */
  verifyBudget?: VerifyBudget;
  /** Starts the job (idempotent by name) and resolves when it has completed; a failed job throws. */
  preprocess(spec: PreprocessJobSpec): Promise<PreprocessJobResult>;
  /** One of Evaluate's jobs (functions/processing/evaluate.ts), likewise. */
  evaluate(spec: EvaluateJobSpec): Promise<ProcessingJobResult>;
}

// ───────────────────────────── audit log ─────────────────────────────

/** Audit entries, as src/core/audit-entry.ts encodes and hashes them. */
export type { AuditEntry, AuditEventInput } from './core/audit-entry.js';

/** The append-only audit log. `append` resolves only once the entry is durable (invariant 1). */
export interface AuditLog {
  append(event: AuditEventInput): Promise<AuditEntry>;
  /** Signs and stores a checkpoint of the log as it is now (made at the end of every run). */
  checkpoint?(): Promise<{ treeSize: number | bigint }>;
  /**
   * Records in the log that statements are now signed with `keyId` (sha256 of its DER
   * SubjectPublicKeyInfo): nothing when the last key recorded is that key, else a
   * `signing.key-rotated` entry naming the previous key (none for the first) and the new public key.
   */
  noteSigningKey?(keyId: string, publicKeyPem: string): Promise<void>;
}

// ───────────────────────────── dataset source ─────────────────────────────

/** One file of a dataset, pinned: its size and, on S3, its VersionId. */
export interface DatasetFile {
  /** Where it is: `s3://bucket/key` or `file:///abs/path`. */
  uri: string;
  /** Path relative to the dataset root (the file name for a single-file dataset). */
  path: string;
  size: number;
  versionId?: string;
}

/** Reads raw datasets where they landed: the S3 landing bucket, or a local file or folder. */
export interface DatasetSource {
  /** The files of a dataset (one file, or every file under a folder or prefix), sorted by path. */
  list(uri: string, options?: { versionId?: string }): Promise<DatasetFile[]>;
  /** Streams exactly the pinned version of one file. */
  open(file: DatasetFile): Promise<Readable>;
  /** SHA-256 of one file, where the adapter can do better than streaming it through `open` (worker threads). */
  hash?(file: DatasetFile): Promise<{ hex: string; size: number }>;
}

// ───────────────────────────── model registry ─────────────────────────────

export interface ModelRegistration {
  pipeline: string;
  runId: string;
  modelDigest: Digest;
  /** Artifacts bucket key of model.tar.gz. */
  modelKey: string;
  image?: string;
  approval: 'Approved' | 'Rejected';
  /** Digests and bundle keys an auditor would look for first. */
  metadata: Record<string, string>;
}

export interface ModelRegistry {
  /** Idempotent per (pipeline, modelDigest, runId); returns a reference (ARN or key). */
  register(entry: ModelRegistration): Promise<{ ref: string }>;
}

// ───────────────────────────── start and lineage ─────────────────────────────

/** A dataset pinned to exact bytes: an S3 VersionId, or (locally) the content digest. */
export interface PinnedDataset {
  uri: string;
  versionId?: string;
  digest?: Digest;
}

/** Finds the newest dataset a pipeline has received (scheduled retraining trains on it). */
export interface LandingIndex {
  latest(def: PipelineDefinition): Promise<PinnedDataset | undefined>;
}

/** Hands a recorded run to the orchestrator. Idempotent per execution name. */
export type Launch = (input: ExecState, executionName: string) => Promise<{ alreadyStarted: boolean }>;

/** Where OpenLineage RunEvents go: files under the state dir locally, the EventBridge bus on AWS. */
export interface LineageSink {
  /** Idempotent per (run, eventType): emitting the same event twice is harmless. */
  emit(event: RunEvent): Promise<void>;
}
