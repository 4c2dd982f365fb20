/**
 * AWS X-Ray tracing through the Powertools for AWS Lambda (TypeScript) Tracer, in a Lambda
 * execution environment only.
 *
 * The Tracer is loaded on the first invocation on Lambda (`startTracing`, called by the shared
 * middleware stack in src/aws/handler.ts), never at import: loading it loads aws-xray-sdk-core,
 * which creates its cls-hooked namespace at import and so turns on an async hook for every
 * promise of the process. Measured with Node 22 (2,000,000 awaits): 0.27 s without it, 5.8 to
 * 6.1 s with it, plus 0.35 s to import it. The CLI, the embedded runtime and the tests import this module
 * and never load the Tracer, so they run and print exactly as before.
 *
 * On Lambda the Tracer comes from the Powertools Lambda layer, not from the bundle
 * (stacks/bundling.ts): the dynamic import below resolves there, through NODE_PATH.
 */
import type { Tracer } from '@aws-lambda-powertools/tracer';

/** The `service` annotation of every trace, the Logger's and Metrics' service name too. */
export const SERVICE_NAME = 'veritrail';

/**
 * True in a Lambda execution environment (AWS_LAMBDA_FUNCTION_NAME, and AWS_EXECUTION_ENV
 * `AWS_Lambda_<runtime>`: Lambda Developer Guide, "Defined runtime environment variables") unless
 * POWERTOOLS_TRACE_ENABLED is `false`. The Tracer applies the same switch itself (and turns off
 * under SAM local); this check decides whether to load it at all.
 */
export function tracingWanted(env: Record<string, string | undefined>): boolean {
  return (
    Boolean(env.AWS_LAMBDA_FUNCTION_NAME) &&
    (env.AWS_EXECUTION_ENV ?? '').startsWith('AWS_Lambda_') &&
    (env.POWERTOOLS_TRACE_ENABLED ?? '').toLowerCase() !== 'false'
  );
}

let loading: Promise<Tracer | undefined> | undefined;
let started: Tracer | undefined;

/**
 * The process's Tracer, loaded and created on first call when `tracingWanted`; undefined
 * otherwise. One per execution environment, as Powertools intends (it keeps the cold start flag).
 */
export function startTracing(
  env: Record<string, string | undefined> = process.env,
): Promise<Tracer | undefined> {
  if (!tracingWanted(env)) return Promise.resolve(undefined);
  loading ??= import('@aws-lambda-powertools/tracer').then(({ Tracer: PowertoolsTracer }) => {
    started = new PowertoolsTracer({ serviceName: SERVICE_NAME });
    return started;
  });
  return loading;
}

/** The Tracer `startTracing` created, when it traces; undefined everywhere else. */
export function activeTracer(): Tracer | undefined {
  return started?.isTracingEnabled() ? started : undefined;
}
