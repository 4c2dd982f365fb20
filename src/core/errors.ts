/**
 * One error type for the whole domain. Every failure carries a stable `code` from a closed union
 * so that callers, tests and the run record can branch on it; `message` says what to do next.
 */
export const ErrorCodes = [
  // input that a user can fix
  'USAGE',
  'PIPELINE_INVALID',
  'DATASET_MISSING',
  'DATASET_EMPTY',
  'DATASET_UNREADABLE',
  'DATASET_SCHEMA',
  'DATASET_VALUE',
  'PATH_REJECTED',
  'EVENT_INVALID',
  // chain of custody
  'DIGEST_MISMATCH',
  'SIGNATURE_INVALID',
  'ATTESTATION_INVALID',
  'PROVENANCE_BROKEN',
  // code checks
  'CODE_SECRET_FOUND',
  'CODE_IMAGE_UNPINNED',
  'CODE_VULNERABLE',
  // run state
  'RUN_NOT_FOUND',
  'RUN_EXISTS',
  'RUN_TRANSITION_ILLEGAL',
  // the orchestrator ended (or stopped reporting) while the run was still RUNNING: closed by the reconciler
  'ORCHESTRATOR_LOST',
  // training
  'TRAINING_FAILED',
  // the trainer ran past the pipeline's maxRuntimeSeconds: its whole process group was killed
  'TRAINING_TIMEOUT',
  // the trainer exited 0 without writing what it must (a model, predictions)
  'TRAINING_OUTPUT_MISSING',
  // the operator stopped the run (SIGINT/SIGTERM on `veritrail run`)
  'CANCELLED',
  // a staged input channel changed while the trainer ran (sealed inputs): details.channel names it
  'CHANNEL_TAMPERED',
  // the control plane could not score the model through the inference contract (predict / Batch Transform)
  'SCORING_FAILED',
  // Preprocess's SageMaker Processing job (or its local emulation) failed without a reason of its own
  'PROCESSING_FAILED',
  // Preprocess's processing job, or Evaluate's Batch Transform job, is still running: the state
  // machine invokes the step again (its own retrier)
  'PROCESSING_RUNNING',
  // stored state (run record, registry entry) disagrees with the signed statements and the audit log
  'STATE_TAMPERED',
  // audit log
  'AUDIT_CONFLICT',
  'AUDIT_CORRUPT',
  'OBJECT_EXISTS',
  'OBJECT_NOT_FOUND',
  // policy
  'POLICY_INVALID',
  // the cloud refused a call: a grant (IAM, key or bucket policy) is missing; never a verdict on evidence
  'ACCESS_DENIED',
  // anything transient: retried by the state machine
  'TRANSIENT',
  'INTERNAL',
  // EventBridge patterns
  'PATTERN_INVALID',
] as const;

export type ErrorCode = (typeof ErrorCodes)[number];

/**
 * The one base of every coded error (as sigstore-js has `BaseError<T>`): a closed union of codes
 * per module, a message for people, optional machine-readable details and the cause.
 */
export class CodedError<C extends string> extends Error {
  readonly code: C;
  /** Extra, machine-readable facts (a field name, a line number, a sequence number…). */
  readonly details: Readonly<Record<string, unknown>> | undefined;

  constructor(code: C, message: string, options?: { cause?: unknown; details?: Record<string, unknown> }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.details = options?.details;
  }
}

export class VeritrailError extends CodedError<ErrorCode> {
  override readonly name: string = 'VeritrailError';
}

export function isVeritrailError(e: unknown, code?: ErrorCode): e is VeritrailError {
  return e instanceof VeritrailError && (code === undefined || e.code === code);
}

/** The `{code, message}` shape stored in run records, audit entries and `--json` output. */
export interface ErrorInfo {
  code: ErrorCode;
  message: string;
}

export function toErrorInfo(e: unknown): ErrorInfo {
  if (e instanceof VeritrailError) return { code: e.code, message: e.message };
  // Module errors with codes of their own (AttestationError…) say how they map to the domain.
  const convert = (e as { toVeritrailError?: () => unknown } | null)?.toVeritrailError;
  if (typeof convert === 'function') {
    const v = convert.call(e);
    if (v instanceof VeritrailError) return { code: v.code, message: v.message };
  }
  const message = e instanceof Error ? e.message : String(e);
  return { code: 'INTERNAL', message };
}

/**
 * Step Functions' own errors that mean the orchestrator stopped hearing about the work: the Train
 * state's heartbeat (no callback and no reconciler within HeartbeatSeconds) or its timeout.
 */
const ORCHESTRATOR_ERRORS: Readonly<Record<string, string>> = {
  'States.HeartbeatTimeout':
    'no word on the training job within the heartbeat period: neither its state-change event nor the reconciler reported; check the job vt-<runId> in SageMaker and start the run again',
  'States.Timeout':
    'the step did not end within its timeout; check the training job vt-<runId> in SageMaker and start the run again',
};

/** Parses the Error/Cause pair Step Functions hands to a Catch target, locally or on AWS. */
export function errorFromCatch(caught: { Error?: string; Cause?: string } | undefined): ErrorInfo {
  if (!caught) return { code: 'INTERNAL', message: 'the run failed without an error record' };
  const lost = caught.Error !== undefined ? ORCHESTRATOR_ERRORS[caught.Error] : undefined;
  if (lost !== undefined) return { code: 'ORCHESTRATOR_LOST', message: `${caught.Error}: ${lost}` };
  let text = caught.Cause ?? '';
  // On AWS, Cause is the Lambda error JSON {errorType, errorMessage, trace}; locally it is the message.
  try {
    const lambda = JSON.parse(text) as { errorMessage?: string };
    if (typeof lambda.errorMessage === 'string') text = lambda.errorMessage;
  } catch {
    /* not JSON: keep the text */
  }
  try {
    const info = JSON.parse(text) as Partial<ErrorInfo>;
    if (typeof info.code === 'string' && typeof info.message === 'string') return info as ErrorInfo;
  } catch {
    /* not our StepFailure */
  }
  const code = caught.Error?.startsWith('Veritrail.') ? caught.Error.slice('Veritrail.'.length) : 'INTERNAL';
  return toErrorInfo(new VeritrailError(code as ErrorInfo['code'], `${caught.Error ?? 'Error'}: ${text}`));
}
