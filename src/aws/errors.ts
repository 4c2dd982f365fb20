/**
 * Translation of AWS SDK v3 exceptions into domain errors, at the adapter boundary.
 *
 * Adapters never let an SDK exception escape: the core, the handlers and the run record branch on
 * `VeritrailError.code`, and an operator reading a FAILED run needs a message that says what to
 * check (which key, which bucket, which IAM action), not `AccessDeniedException`. The SDK
 * exception is kept as `cause` so logs still carry the request id.
 */
import { type ErrorCode, VeritrailError } from '../core/errors.js';

/** What an adapter was doing when the call failed: used to write a message a person can act on. */
export interface AwsCallContext {
  /** The IAM action, e.g. `s3:PutObject`, `kms:Sign`. */
  action: string;
  /** The resource the action was on: an ARN, or `s3://bucket/key`. */
  resource: string;
  /** What configuration names this resource, e.g. `VERITRAIL_SIGNING_KEY_ARN`; added to messages. */
  configuredBy?: string;
}

/** The facts of an SDK exception that translation looks at; everything is optional because anything can be thrown. */
interface SdkErrorShape {
  name?: unknown;
  code?: unknown;
  message?: unknown;
  $fault?: unknown;
  $retryable?: unknown;
  $metadata?: { httpStatusCode?: unknown; requestId?: unknown };
}

function shapeOf(e: unknown): SdkErrorShape {
  return typeof e === 'object' && e !== null ? (e as SdkErrorShape) : {};
}

/** The AWS error name (`NoSuchKey`, `ThrottlingException`…) of an SDK exception, if it has one. */
export function awsErrorName(e: unknown): string | undefined {
  const s = shapeOf(e);
  return typeof s.name === 'string' ? s.name : undefined;
}

export function awsHttpStatus(e: unknown): number | undefined {
  const status = shapeOf(e).$metadata?.httpStatusCode;
  return typeof status === 'number' ? status : undefined;
}

/**
 * Throttling error names across the services veritrail calls (S3 `SlowDown`, DynamoDB
 * `ProvisionedThroughputExceededException`, KMS/SFN/SageMaker `ThrottlingException`…). The SDK's
 * retry strategy has already retried these with backoff by the time one reaches us.
 */
const THROTTLING = new Set([
  'Throttling',
  'ThrottlingException',
  'ThrottledException',
  'RequestThrottledException',
  'RequestThrottled',
  'TooManyRequestsException',
  'ProvisionedThroughputExceededException',
  'RequestLimitExceeded',
  'RequestLimitExceededException',
  'LimitExceededException',
  'BandwidthLimitExceeded',
  'SlowDown',
  'PriorRequestNotComplete',
  'TransactionInProgressException',
  'EC2ThrottledException',
]);

/** Errors that say "try again later" without being throttling. */
const TRANSIENT_NAMES = new Set([
  'InternalError',
  'InternalFailure',
  'InternalServerError',
  'InternalServerException',
  'ServiceUnavailable',
  'ServiceUnavailableException',
  'RequestTimeout',
  'RequestTimeoutException',
  'TimeoutError',
  'KMSInternalException',
  'KeyUnavailableException',
  'DependencyTimeoutException',
  // S3: another conditional write on the same key is in flight; AWS says retry (then it gets 412).
  'ConditionalRequestConflict',
  'ExecutionLimitExceeded',
]);

/** Node network errors (no HTTP response at all): the endpoint or the network is down. */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
]);

const ACCESS_DENIED = new Set([
  'AccessDenied',
  'AccessDeniedException',
  'UnauthorizedOperation',
  'UnrecognizedClientException',
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'ExpiredToken',
  'ExpiredTokenException',
  'InvalidClientTokenId',
]);

const NOT_FOUND = new Set(['NoSuchKey', 'NoSuchVersion', 'NotFound']);

/** Digest mismatches S3 reports when the bytes it received do not match the checksum we sent. */
const CHECKSUM_MISMATCH = new Set([
  'BadDigest',
  'InvalidDigest',
  'XAmzContentSHA256Mismatch',
  'InvalidChecksum',
]);

/** True when the error is throttling, a 5xx, a transient service error or a network failure. */
export function isTransientAwsError(e: unknown): boolean {
  const s = shapeOf(e);
  const name = awsErrorName(e) ?? '';
  if (THROTTLING.has(name) || TRANSIENT_NAMES.has(name)) return true;
  if (typeof s.code === 'string' && NETWORK_CODES.has(s.code)) return true;
  const status = awsHttpStatus(e);
  if (status !== undefined && (status >= 500 || status === 429)) return true;
  return s.$fault === 'server' || (typeof s.$retryable === 'object' && s.$retryable !== null);
}

function where(ctx: AwsCallContext): string {
  return ctx.configuredBy ? `${ctx.resource} (from ${ctx.configuredBy})` : ctx.resource;
}

function sdkMessage(e: unknown): string {
  const m = shapeOf(e).message;
  return typeof m === 'string' && m.length > 0 ? m : String(e);
}

/**
 * Service-specific errors: a code and a message saying what to check. Looked up by the AWS error
 * name before the generic rules.
 */
const SPECIFIC: Readonly<Record<string, (ctx: AwsCallContext, e: unknown) => [ErrorCode, string]>> = {
  // ── S3
  PreconditionFailed: (c) => [
    'OBJECT_EXISTS',
    `${c.action} refused: an object already exists at ${where(c)} and the write was create-only`,
  ],
  NoSuchBucket: (c) => [
    'INTERNAL',
    `${c.action} failed: the bucket of ${where(c)} does not exist; check the bucket name in the configuration and the region (AWS_REGION)`,
  ],
  InvalidRequest: (c, e) => [
    'INTERNAL',
    `${c.action} on ${where(c)} was rejected as invalid: ${sdkMessage(e)}; when the request carries Object Lock settings, check that the bucket was created with Object Lock enabled`,
  ],
  'KMS.DisabledException': (c) => [
    'INTERNAL',
    `${c.action} on ${where(c)} failed: the bucket's KMS data key is disabled; enable it or fix the data key setting`,
  ],
  'KMS.NotFoundException': (c) => [
    'INTERNAL',
    `${c.action} on ${where(c)} failed: the KMS data key was not found; check the data key ARN (VERITRAIL_DATA_KEY_ARN) and its region`,
  ],
  // ── KMS
  KMSInvalidSignatureException: (c) => [
    'SIGNATURE_INVALID',
    `${c.action}: the signature does not verify under ${where(c)}`,
  ],
  NotFoundException: (c) => [
    'INTERNAL',
    `${c.action} failed: ${where(c)} was not found; check the ARN and that it is in this account and region (AWS_REGION)`,
  ],
  DisabledException: (c) => [
    'INTERNAL',
    `${c.action} failed: the KMS key ${where(c)} is disabled; enable it (kms:EnableKey) or point the configuration at an enabled key`,
  ],
  KMSInvalidStateException: (c, e) => [
    'INTERNAL',
    `${c.action} failed: the KMS key ${where(c)} is not usable in its current state (${sdkMessage(e)}); check that it is enabled and not pending deletion or import`,
  ],
  InvalidKeyUsageException: (c) => [
    'INTERNAL',
    `${c.action} failed: the KMS key ${where(c)} cannot be used for this operation; veritrail signs with an asymmetric ECC_NIST_P256 key whose usage is SIGN_VERIFY`,
  ],
  UnsupportedOperationException: (c) => [
    'INTERNAL',
    `${c.action} is not supported by ${where(c)}; veritrail signs with an asymmetric ECC_NIST_P256 SIGN_VERIFY key`,
  ],
  IncorrectKeyException: (c) => ['INTERNAL', `${c.action}: ${where(c)} is not the key this operation needs`],
  InvalidKeyIdException: (c) => [
    'INTERNAL',
    `${c.action} failed: "${c.resource}" is not a valid KMS key id or ARN${c.configuredBy ? `; fix ${c.configuredBy}` : ''}`,
  ],
  // ── Step Functions
  StateMachineDoesNotExist: (c) => [
    'INTERNAL',
    `${c.action} failed: the state machine ${where(c)} does not exist; check the ARN and the region (AWS_REGION)`,
  ],
  InvalidExecutionInput: (c, e) => [
    'EVENT_INVALID',
    `${c.action}: the execution input is invalid: ${sdkMessage(e)}`,
  ],
  InvalidName: (c, e) => ['USAGE', `${c.action}: the execution name is invalid: ${sdkMessage(e)}`],
  InvalidToken: (c) => ['EVENT_INVALID', `${c.action}: the task token is malformed`],
  InvalidOutput: (c, e) => ['EVENT_INVALID', `${c.action}: the task output is invalid: ${sdkMessage(e)}`],
  // ── SageMaker
  ResourceLimitExceeded: (c, e) => [
    'TRAINING_FAILED',
    `${c.action} on ${where(c)} hit a SageMaker quota (${sdkMessage(e)}); request a quota increase or use another instance type`,
  ],
  // ── DynamoDB (and others that share the name)
  ResourceNotFoundException: (c) => [
    'INTERNAL',
    `${c.action} failed: ${where(c)} does not exist; check the name and the region (AWS_REGION)`,
  ],
  ResourceNotFound: (c) => [
    'INTERNAL',
    `${c.action} failed: ${where(c)} was not found; check the name and the region (AWS_REGION)`,
  ],
};

/**
 * Translates anything an SDK call threw into a VeritrailError with the original kept as `cause`.
 * A VeritrailError passes through unchanged.
 */
export function translateAwsError(e: unknown, ctx: AwsCallContext): VeritrailError {
  if (e instanceof VeritrailError) return e;
  const name = awsErrorName(e) ?? 'Error';
  const status = awsHttpStatus(e);
  const requestId = shapeOf(e).$metadata?.requestId;
  const details: Record<string, unknown> = { action: ctx.action, resource: ctx.resource, awsError: name };
  if (status !== undefined) details.httpStatus = status;
  if (typeof requestId === 'string') details.requestId = requestId;
  const make = (code: ErrorCode, message: string) => new VeritrailError(code, message, { cause: e, details });

  const specific = SPECIFIC[name];
  if (specific) {
    const [code, message] = specific(ctx, e);
    return make(code, message);
  }
  if (NOT_FOUND.has(name) || (status === 404 && name === 'Unknown')) {
    return make('OBJECT_NOT_FOUND', `no object at ${where(ctx)}`);
  }
  if (CHECKSUM_MISMATCH.has(name)) {
    return make(
      'DIGEST_MISMATCH',
      `${ctx.action}: the bytes AWS received for ${where(ctx)} do not match the checksum sent with them; retry the upload from the original data`,
    );
  }
  if (ACCESS_DENIED.has(name) || status === 403) {
    return make(
      'ACCESS_DENIED',
      `access denied: ${ctx.action} on ${where(ctx)}. Check that the role running veritrail is allowed ${ctx.action} on this resource (IAM policy, key policy or bucket policy) and that its credentials from the standard AWS chain are valid (${name})`,
    );
  }
  if (name === 'CredentialsProviderError') {
    return make(
      'INTERNAL',
      `${ctx.action} on ${where(ctx)}: no AWS credentials were found in the standard chain (environment, shared config/SSO, web identity, container or instance role); configure one of them`,
    );
  }
  if (isTransientAwsError(e)) {
    const what = THROTTLING.has(name) ? 'was throttled' : 'failed transiently';
    return make(
      'TRANSIENT',
      `${ctx.action} on ${where(ctx)} ${what} after the SDK's retries (${name}: ${sdkMessage(e)}); retry later`,
    );
  }
  return make('INTERNAL', `${ctx.action} on ${where(ctx)} failed: ${name}: ${sdkMessage(e)}`);
}

/** Runs one SDK call and translates whatever it throws. */
export async function awsCall<T>(ctx: AwsCallContext, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (e) {
    throw translateAwsError(e, ctx);
  }
}
