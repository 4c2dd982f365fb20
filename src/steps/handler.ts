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
 * Without a composition argument a handler gets `AWS_STEP_PORTS` (objects, runs, audit: what
 * runStep itself needs); using any other port then fails with an INTERNAL error naming it. A
 * bundle's size follows from what it composes: test/infra/bundles.test.ts keeps each ≤ 1 MiB.
 */
import middy, { type MiddlewareObj } from '@middy/core';
import { AWS_STEP_PORTS, composeAws } from '../aws/runtime.js';
import { toErrorInfo } from '../core/errors.js';
import type { Runtime } from '../runtime.js';
import type { ExecState } from './state.js';
import { runStep, StepFailure, type StepName, type StepOutcome } from './step.js';

export type StepWork<T> = (rt: Runtime, state: ExecState) => Promise<StepOutcome<T>>;

/** Builds a function's runtime from its environment (once per cold start). */
export type Compose<R extends Runtime = Runtime> = (env: Record<string, string | undefined>) => R;

/** The Lambda context, plus the runtime the `ports` middleware puts there (or the caller passed). */
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
export function ports<R extends Runtime>(
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
export function taskErrors(): MiddlewareObj<unknown, unknown, Error, PortsContext> {
  return {
    onError: (request) => {
      const e = request.error;
      if (e && !(e instanceof StepFailure)) request.error = new StepFailure(toErrorInfo(e), e);
    },
  };
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
    .use(ports(compose))
    .handler(async (event, context) => fn(runtimeIn(context), event));
}
