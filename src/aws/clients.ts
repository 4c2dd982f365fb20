/**
 * SDK v3 client construction. Every AWS adapter takes its client as a constructor argument; this
 * is the one place clients are created (at the Lambda cold start or CLI start-up), so tests can
 * inject mocks and nothing deep inside an adapter picks its own configuration.
 *
 * Configuration comes ONLY from the standard SDK chain (docs/design.md "Ports"; invariant 7):
 * - credentials: the default provider chain (env, shared config/SSO, web identity, ECS/IMDS role);
 * - region: AWS_REGION (or the shared config profile);
 * - endpoint: AWS_ENDPOINT_URL and the service-specific AWS_ENDPOINT_URL_<SERVICE>
 *   (AWS_ENDPOINT_URL_S3, _KMS, _DYNAMODB, _SAGEMAKER, _SFN, _EVENTBRIDGE). SDK v3 reads these
 *   itself since the "configured endpoints" feature (aws-sdk-js-v3 PR #5324, Oct 2023; shown on
 *   3.428.0); a regression in @smithy/middleware-endpoint 4.1.14 (3.844.0, issue #7203) dropped it
 *   for a while. The installed SDK resolves it in @smithy/core getEndpointUrlConfig, and
 *   test/unit/aws/clients.test.ts asserts that it does, so an upgrade that breaks it fails a test.
 * We never pass credentials, regions or endpoints in code.
 *
 * Retries: throttling and 5xx are retried by the SDK retry strategy with exponential backoff and
 * jitter. veritrail defaults to the `adaptive` mode (client-side rate limiting on throttling, which
 * suits bursts of Distributed Map workers) with 5 attempts; AWS_RETRY_MODE and AWS_MAX_ATTEMPTS,
 * when set, win, as the SDK chain defines.
 *
 * Tracing: on Lambda, once the shared middleware stack has started the Powertools Tracer
 * (src/aws/tracing.ts), every client built here is passed through `captureAWSv3Client`, so each
 * call is an X-Ray subsegment of the invocation's trace. Anywhere else (CLI, embedded runtime,
 * tests) there is no Tracer and a client is returned as built.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { KMSClient } from '@aws-sdk/client-kms';
import { S3Client } from '@aws-sdk/client-s3';
import { SageMakerClient } from '@aws-sdk/client-sagemaker';
import { SFNClient } from '@aws-sdk/client-sfn';
import { VeritrailError } from '../core/errors.js';
import { activeTracer } from './tracing.js';

export const DEFAULT_MAX_ATTEMPTS = 5;
export const DEFAULT_RETRY_MODE = 'adaptive';

type RetryMode = 'standard' | 'adaptive';

export interface AwsClientOptions {
  /** Total attempts per call, first one included. Default: AWS_MAX_ATTEMPTS, else 5. */
  maxAttempts?: number;
  /** Default: AWS_RETRY_MODE, else `adaptive`. */
  retryMode?: RetryMode;
}

/** The only settings veritrail passes to an SDK client: retry behaviour. Nothing else. */
export interface RetryConfig {
  maxAttempts?: number;
  retryMode?: RetryMode;
}

/**
 * The retry settings for a client. A setting the environment already gives (AWS_MAX_ATTEMPTS,
 * AWS_RETRY_MODE) is left out, so the SDK reads it through its own chain.
 */
export function retryConfig(
  env: Record<string, string | undefined>,
  options: AwsClientOptions = {},
): RetryConfig {
  const config: RetryConfig = {};
  if (options.maxAttempts !== undefined) {
    if (!Number.isInteger(options.maxAttempts) || options.maxAttempts < 1) {
      throw new VeritrailError('USAGE', `maxAttempts must be a positive integer, got ${options.maxAttempts}`);
    }
    config.maxAttempts = options.maxAttempts;
  } else if (!env.AWS_MAX_ATTEMPTS) {
    config.maxAttempts = DEFAULT_MAX_ATTEMPTS;
  }
  if (options.retryMode !== undefined) config.retryMode = options.retryMode;
  else if (!env.AWS_RETRY_MODE) config.retryMode = DEFAULT_RETRY_MODE;
  return config;
}

/**
 * The client, instrumented for X-Ray when the Tracer traces (on Lambda only): the same object,
 * with the X-Ray SDK's middleware added to its stack.
 */
function traced<C extends { middlewareStack: unknown }>(client: C): C {
  const tracer = activeTracer();
  return tracer ? tracer.captureAWSv3Client(client) : client;
}

export interface AwsClients {
  s3: S3Client;
  kms: KMSClient;
  dynamodb: DynamoDBClient;
  sagemaker: SageMakerClient;
  sfn: SFNClient;
  eventbridge: EventBridgeClient;
}

/**
 * Builds one client per service from the standard SDK chain plus veritrail's retry defaults. For
 * the CLI and tests; a Lambda builds only its own clients through `ClientCache`, so its bundle
 * carries only those @aws-sdk/client-* packages.
 */
export function createAwsClients(
  env: Record<string, string | undefined> = process.env,
  options: AwsClientOptions = {},
): AwsClients {
  const retry = retryConfig(env, options);
  return {
    s3: traced(new S3Client({ ...retry })),
    kms: traced(new KMSClient({ ...retry })),
    dynamodb: traced(new DynamoDBClient({ ...retry })),
    sagemaker: traced(new SageMakerClient({ ...retry })),
    sfn: traced(new SFNClient({ ...retry })),
    eventbridge: traced(new EventBridgeClient({ ...retry })),
  };
}

/**
 * One client per service, built on first use with the retry settings above. The caller passes the
 * constructor, so only the modules that ask for a service import its client package. Clients given
 * up front (mocks in tests) are used as they are.
 */
export class ClientCache {
  private readonly built: Partial<AwsClients>;
  private readonly retry: RetryConfig;

  constructor(
    env: Record<string, string | undefined>,
    options: AwsClientOptions = {},
    given: Partial<AwsClients> = {},
  ) {
    this.retry = retryConfig(env, options);
    this.built = { ...given };
  }

  get<K extends keyof AwsClients>(name: K, make: (retry: RetryConfig) => AwsClients[K]): AwsClients[K] {
    const existing = this.built[name];
    if (existing) return existing as AwsClients[K];
    const client = traced(make({ ...this.retry }));
    this.built[name] = client;
    return client;
  }
}
