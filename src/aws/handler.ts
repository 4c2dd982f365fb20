/**
 * How a Lambda in functions/ is wired: one middy handler per function, with two shared middlewares.
 *
 * - `ports`: the composition root. Each function passes `composeAws(entry, { …builders })` from
 *   src/aws/runtime.ts naming exactly the ports it uses; on the first invocation of a cold start
 *   they are built from the environment and kept. An invocation whose context already carries a
 *   `runtime` (the local runner passes the embedded one, tests pass fakes) uses that instead and
 *   builds nothing. There is no global runtime.
 * - `taskErrors`: a state-machine task's failures reach Step Functions as `Veritrail.<CODE>` errors
 *   (StepFailure), which the ASL's Retry (`Veritrail.TRANSIENT`) and Catch match on.
 *
 * Usage: `stepHandler(step, work, compose?)` for a pipeline step, `plainHandler(fn, compose?)` for
 * any other state-machine task, `eventHandler(fn, compose)` for a function EventBridge invokes.
 * `compose` names the ports (builders from src/aws/runtime.ts) and any AWS-only extras:
 *
 * ```ts
 * import { AWS_STEP_PORTS, awsSigner, awsStepFunctions, composeAws } from '../src/aws/runtime.js';
 * export const handler = eventHandler(work, composeAws('functions/x.ts',
 *   { ...AWS_STEP_PORTS, signer: awsSigner }, (ctx) => ({ stepFunctions: awsStepFunctions(ctx) })));
 * ```
 *
 * - `observability`: on AWS only (an invocation that brought no runtime of its own), Powertools
 *   for AWS Lambda: the Tracer (on Lambda: the handler as an X-Ray subsegment `## <handler>`
 *   annotated with `runId`, `pipeline` and `step` where the event or the handler names them; every
 *   SDK client built in src/aws/clients.ts records its calls under it); the Logger with the
 *   invocation's Lambda context, the run id, pipeline and execution of the event as keys and its
 *   correlation id (the run id, else the EventBridge event id); Metrics (CloudWatch EMF, namespace
 *   `veritrail`): `Invocations` and `InvocationDuration` per function,
 *   `RunsStarted`/`RunsSucceeded`/`RunsRejected`/`RunsFailed` from the outcome a function returns.
 *   The embedded runtime passes its runtime and keeps printing progress as before; the Tracer is
 *   never even loaded outside Lambda (src/aws/tracing.ts says why).
 *
 * Without a composition argument a handler gets `AWS_STEP_PORTS` (objects, runs, audit: what
 * runStep itself needs); using any other port then fails with an INTERNAL error naming it. A
 * bundle's size follows from what it composes: test/infra/bundles.test.ts keeps each ≤ 1 MiB.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import type { Tracer } from '@aws-lambda-powertools/tracer';
import middy, { type MiddlewareObj, type Request } from '@middy/core';
import { toErrorInfo } from '../core/errors.js';
import type { ExecState } from '../core/exec-state.js';
import type { StepName } from '../core/states.js';
import type { Runtime } from '../runtime.js';
import { runStep, StepFailure, type StepOutcome } from '../steps/step.js';
import { AWS_STEP_PORTS, composeAws } from './runtime.js';
import { SERVICE_NAME, startTracing } from './tracing.js';

export type StepWork<T> = (rt: Runtime, state: ExecState) => Promise<StepOutcome<T>>;

/** Builds a function's runtime from its environment (once per cold start). */
export type Compose<R extends Runtime = Runtime> = (env: Record<string, string | undefined>) => R;

/**
 * The Lambda context, plus the runtime the `ports` middleware puts there (or the caller passed).
 * @public Exported for declaration emit: each functions/<name>.ts `handler`'s inferred type names it.
 */
export interface PortsContext<R extends Runtime = Runtime> {
  runtime?: R;
  [key: string]: unknown;
}

type Handler<T, R extends Runtime> = middy.MiddyfiedHandler<unknown, T, Error, PortsContext<R>>;

/**
 * Middleware: puts the function's runtime in `context.runtime`, composed once per cold start from
 * `process.env`, unless the invocation brought its own. A composition that fails (a missing
 * environment variable) is retried on the next invocation rather than cached.
 */
function ports<R extends Runtime>(
  compose: Compose<R>,
): MiddlewareObj<unknown, unknown, Error, PortsContext<R>> {
  let built: R | undefined;
  return {
    before: (request) => {
      if (request.context.runtime) return;
      built ??= compose(process.env);
      request.context.runtime = built;
    },
  };
}

/** Middleware: any error of a state-machine task leaves as a StepFailure (`Veritrail.<CODE>`). */
function taskErrors(): MiddlewareObj<unknown, unknown, Error, PortsContext> {
  return {
    onError: (request) => {
      const e = request.error;
      if (e && !(e instanceof StepFailure)) request.error = new StepFailure(toErrorInfo(e), e);
    },
  };
}

/** One Logger and one Metrics per function instance (Powertools keeps them across invocations). */
export const logger = new Logger({ serviceName: SERVICE_NAME });
const metrics = new Metrics({ namespace: 'veritrail', serviceName: SERVICE_NAME });

/** The keys a log line of an invocation carries, read from whatever shape its event has. */
export function invocationKeys(event: unknown): {
  runId?: string;
  pipeline?: string;
  execution?: string;
  correlationId?: string;
} {
  const obj = (v: unknown): Record<string, unknown> =>
    v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
  const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
  const e = obj(event);
  // A task gets the execution state, or (RegisterRun) `{ input, executionArn }`; an EventBridge
  // event has `id` and `detail`; an operator start has the pipeline by name.
  const candidates = [e, obj(e.input), obj(e.detail)];
  const first = (pick: (c: Record<string, unknown>) => string | undefined) => {
    for (const c of candidates) {
      const v = pick(c);
      if (v) return v;
    }
    return undefined;
  };
  const runId = first((c) => str(c.runId));
  const pipeline = first((c) => str(obj(c.pipeline).name) ?? str(c.pipeline));
  const execution = first((c) => str(c.executionArn) ?? str(obj(obj(c.results).registerRun).executionArn));
  const correlationId = runId ?? str(e.id);
  return {
    ...(runId ? { runId } : {}),
    ...(pipeline ? { pipeline } : {}),
    ...(execution ? { execution } : {}),
    ...(correlationId ? { correlationId } : {}),
  };
}

/** The run outcome a function's result reports, as the metric that counts it. */
export function runOutcomeMetric(
  result: unknown,
): 'RunsStarted' | 'RunsSucceeded' | 'RunsRejected' | 'RunsFailed' | undefined {
  if (result === null || typeof result !== 'object') return undefined;
  const r = result as { status?: unknown; recorded?: unknown; runId?: unknown };
  switch (r.status) {
    case 'started':
      return 'RunsStarted';
    case 'SUCCEEDED':
      return 'RunsSucceeded';
    case 'REJECTED':
    case 'rejected':
      return 'RunsRejected';
    case 'FAILED':
      // RecordFailure reports `recorded: false` when the run had already ended (nothing new).
      return r.recorded === false ? undefined : 'RunsFailed';
    default:
      return undefined;
  }
}

const OBSERVED = 'veritrailObserved';

/** Runs a middleware only for invocations on AWS: the embedded runtime passes its own runtime. */
function onAwsOnly(
  mw: MiddlewareObj<unknown, unknown, Error, PortsContext>,
): MiddlewareObj<unknown, unknown, Error, PortsContext> {
  const observed = (request: Request<unknown, unknown, Error, PortsContext>) =>
    (request.internal as Record<string, unknown>)[OBSERVED] === true;
  return {
    before: (request) => {
      if (request.context.runtime) return;
      (request.internal as Record<string, unknown>)[OBSERVED] = true;
      return mw.before?.(request);
    },
    after: (request) => (observed(request) ? mw.after?.(request) : undefined),
    onError: (request) => (observed(request) ? mw.onError?.(request) : undefined),
  };
}

/** Middleware: keys and correlation id on every log line, duration and outcome metrics. */
function runTelemetry(): MiddlewareObj<unknown, unknown, Error, PortsContext> {
  const started = new WeakMap<object, number>();
  const finish = (request: Request<unknown, unknown, Error, PortsContext>) => {
    const t0 = started.get(request);
    if (t0 !== undefined)
      metrics.addMetric('InvocationDuration', MetricUnit.Milliseconds, performance.now() - t0);
  };
  return {
    before: (request) => {
      const { correlationId, runId, pipeline, execution } = invocationKeys(request.event);
      logger.appendKeys({ run_id: runId, pipeline, execution });
      if (correlationId) logger.setCorrelationId(correlationId);
      metrics.addDimension('function', String(request.context.functionName ?? 'unknown'));
      metrics.addMetric('Invocations', MetricUnit.Count, 1);
      started.set(request, performance.now());
    },
    after: (request) => {
      finish(request);
      const outcome = runOutcomeMetric(request.response);
      if (outcome) metrics.addMetric(outcome, MetricUnit.Count, 1);
    },
    onError: (request) => {
      finish(request);
      metrics.addMetric('InvocationErrors', MetricUnit.Count, 1);
      logger.error('invocation failed', { error: request.error ? toErrorInfo(request.error) : undefined });
    },
  };
}

type AnyMiddleware = MiddlewareObj<unknown, unknown, Error, PortsContext>;
const TRACING = 'veritrailTracing';
/** The process's Tracer and its `captureLambdaHandler` middleware, once loaded. */
interface Traced {
  tracer: Tracer;
  capture: AnyMiddleware;
}

/**
 * Middleware: on Lambda, Powertools' `captureLambdaHandler` (the `## <handler>` subsegment, the
 * ColdStart and Service annotations, an error as metadata), then the run's annotations on it.
 * The response is not recorded (`captureResponse: false`): a task returns the whole execution
 * state, which Step Functions keeps already and which may not fit a 64 KB segment document.
 * Tracer and middleware are loaded on the first invocation that traces (src/aws/tracing.ts).
 */
function runTracing(step: StepName | undefined): AnyMiddleware {
  let loading: Promise<Traced | undefined> | undefined;
  const load = async (): Promise<Traced | undefined> => {
    const tracer = await startTracing();
    if (!tracer) return undefined;
    const { captureLambdaHandler } = await import('@aws-lambda-powertools/tracer/middleware');
    return { tracer, capture: captureLambdaHandler(tracer, { captureResponse: false }) as AnyMiddleware };
  };
  const tracedIn = (request: Request<unknown, unknown, Error, PortsContext>) =>
    (request.internal as Record<string, unknown>)[TRACING] as Traced | undefined;
  return {
    before: async (request) => {
      loading ??= load();
      const traced = await loading;
      if (!traced) return;
      (request.internal as Record<string, unknown>)[TRACING] = traced;
      await traced.capture.before?.(request);
      const { runId, pipeline } = invocationKeys(request.event);
      if (runId) traced.tracer.putAnnotation('runId', runId);
      if (pipeline) traced.tracer.putAnnotation('pipeline', pipeline);
      if (step) traced.tracer.putAnnotation('step', step);
    },
    after: (request) => tracedIn(request)?.capture.after?.(request),
    onError: (request) => tracedIn(request)?.capture.onError?.(request),
  };
}

/**
 * The shared Powertools stack, in order: the trace's handler subsegment first (it spans the
 * rest, the composition of the ports and their SDK clients included), context and keys into the
 * Logger, metrics flushed last. `step` names the pipeline step of a `stepHandler` (a trace annotation).
 */
function observability(step?: StepName): MiddlewareObj<unknown, unknown, Error, PortsContext>[] {
  return [
    onAwsOnly(runTracing(step)),
    onAwsOnly(
      logMetrics(metrics, { captureColdStartMetric: true }) as MiddlewareObj<
        unknown,
        unknown,
        Error,
        PortsContext
      >,
    ),
    onAwsOnly(
      injectLambdaContext(logger, { resetKeys: true }) as MiddlewareObj<
        unknown,
        unknown,
        Error,
        PortsContext
      >,
    ),
    onAwsOnly(runTelemetry()),
  ];
}

function runtimeIn<R extends Runtime>(context: PortsContext<R>): R {
  // `ports` runs first and always sets it.
  return context.runtime as R;
}

const defaultCompose = (entry: string): Compose => composeAws(entry, AWS_STEP_PORTS);

/**
 * A Lambda handler for one state of the state machine: the composed ports, the step's work, and
 * invariant 1 (audit before success) from runStep.
 */
export function stepHandler<T>(
  step: StepName,
  work: StepWork<T>,
  compose: Compose = defaultCompose(step),
): Handler<T, Runtime> {
  return middy<unknown, T, Error, PortsContext>()
    .use(observability(step))
    .use(ports(compose))
    .use(taskErrors())
    .handler(async (event, context) => {
      const rt = runtimeIn(context);
      return runStep(rt, step, event, (state) => work(rt, state));
    });
}

/** A state-machine task that is not a pipeline step with its own record (Finish, RecordFailure, Train's launch). */
export function plainHandler<T, R extends Runtime = Runtime>(
  fn: (rt: R, event: unknown) => Promise<T>,
  compose: Compose<R> = defaultCompose('a plain handler') as Compose<R>,
): Handler<T, R> {
  return middy<unknown, T, Error, PortsContext<R>>()
    .use(observability() as MiddlewareObj<unknown, unknown, Error, PortsContext<R>>[])
    .use(ports(compose))
    .use(taskErrors() as MiddlewareObj<unknown, unknown, Error, PortsContext<R>>)
    .handler(async (event, context) => fn(runtimeIn(context), event));
}

/**
 * A function invoked by EventBridge or directly, not by the state machine (start, the training
 * callback): the composed ports, errors left as they are (EventBridge retries on any error).
 */
export function eventHandler<T, R extends Runtime>(
  fn: (rt: R, event: unknown) => Promise<T>,
  compose: Compose<R>,
): Handler<T, R> {
  return middy<unknown, T, Error, PortsContext<R>>()
    .use(observability() as MiddlewareObj<unknown, unknown, Error, PortsContext<R>>[])
    .use(ports(compose))
    .handler(async (event, context) => fn(runtimeIn(context), event));
}
