/**
 * The deployed state machine on aws-local-stepfunctions: the template's DefinitionString with its
 * DefinitionSubstitutions filled (the function ARNs, the artifacts bucket's name), every Task (the
 * tasks of a Map's ItemProcessor too) invoking the hosted function its ARN names. Lambda errors
 * reach Retry/Catch as the Lambda service integration gives them: Error = errorType, Cause = the
 * JSON of {errorMessage, errorType, trace}. `lambda:invoke.waitForTaskToken` invokes
 * Parameters.FunctionName with the Payload, then waits for SendTaskSuccess/SendTaskFailure with the
 * execution's task token, which reaches the harness through a proxy hook (the Step Functions API:
 * StartExecution, DescribeExecution, SendTask*).
 *
 * The Distributed Map (HashBatches) runs as the local runner runs it (src/local/distributed-map.ts):
 * ItemReader, ItemBatcher and ResultWriter emulated, the children as iterations of the library's
 * Map. The state machine role's own calls are sent through the IAM proxy signed as that role, so
 * its grants are checked as AWS would check them: the ItemReader's `s3:getObject` (`s3Reader`: the
 * listing, the data key through S3), the ResultWriter's `s3:putObject` of every result file and
 * manifest (`s3Writer`: map-results/, kms:GenerateDataKey through S3), and every Task's Lambda
 * invocation, the Map's children's included (`lambdaInvoker`: a real Lambda Invoke of the function
 * ARN, `lambda:InvokeFunction` decided against the role's policy, then answered by
 * `lambdaInvokeHook`, which runs the hosted function), and the Map's child executions
 * (`MapChildExecutions`: a StartExecution of the state machine's own ARN before each child runs, a
 * DescribeExecution of the child once it has ended, and when a child fails, which fails the Map, a
 * StopExecution of each sibling still running; each decided against the role's policy, then
 * answered by its `hook`).
 *
 * Differences from Step Functions: one task token per execution (the pipeline has one callback
 * state); retry intervals shortened to 50 ms; the Task and execution timeouts are not enforced. The
 * Distributed Map's children still run as iterations of the library's Map in this process: the
 * StartExecution only records them (as `children`), it does not run them.
 */
import { randomUUID } from 'node:crypto';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import {
  DescribeExecutionCommand,
  SFNClient,
  StartExecutionCommand,
  StopExecutionCommand,
} from '@aws-sdk/client-sfn';
import { StateMachine } from 'aws-local-stepfunctions';
import {
  type ChildExecution,
  type ChildExecutions,
  emulateDistributedMaps,
  type ReadObject,
  type WriteObject,
} from '../../../src/local/distributed-map.js';
import type { ApiRequest, HookResponse } from '../iam/types.js';
import type { InvokeResult, LambdaError, LambdaFleet } from './lambda-host.js';

/** A client of the IAM proxy signing as one role. */
export interface RoleEndpoint {
  endpoint: string;
  region: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
}

/** The ItemReader's `s3:getObject`, sent to `endpoint` (the IAM proxy) with the given role's key. */
export function s3Reader(options: RoleEndpoint): ReadObject {
  const s3 = new S3Client({ ...options, forcePathStyle: true });
  return async (bucket, key, versionId) => {
    const out = await s3.send(
      new GetObjectCommand({ Bucket: bucket, Key: key, ...(versionId ? { VersionId: versionId } : {}) }),
    );
    if (!out.Body) throw new Error(`s3://${bucket}/${key} returned no body`);
    return out.Body.transformToByteArray();
  };
}

/**
 * The ResultWriter's `s3:putObject`, sent to the IAM proxy with the given role's key: no encryption
 * header, so the bucket's default SSE-KMS applies, as when Step Functions writes the results.
 */
export function s3Writer(options: RoleEndpoint): WriteObject {
  const s3 = new S3Client({ ...options, forcePathStyle: true });
  return async (bucket, key, body) => {
    await s3.send(
      new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentType: 'application/json' }),
    );
  };
}

/** A Task's Lambda invocation: the function's result, or its error as the runtime reported it. */
export type Invoke = (functionArn: string, payload: unknown) => Promise<InvokeResult>;

/**
 * Invokes a function as the state machine's role would: a Lambda Invoke (RequestResponse) of the
 * function ARN sent to the IAM proxy, which decides `lambda:InvokeFunction` against the role's
 * policy (a denial throws AccessDeniedException and is recorded) and hands the call to
 * `lambdaInvokeHook`.
 */
export function lambdaInvoker(options: RoleEndpoint): Invoke {
  const lambda = new LambdaClient({ ...options, maxAttempts: 1 });
  return async (functionArn, payload) => {
    const out = await lambda.send(
      new InvokeCommand({
        FunctionName: functionArn,
        Payload: new TextEncoder().encode(JSON.stringify(payload ?? null)),
      }),
    );
    const text = out.Payload ? new TextDecoder().decode(out.Payload) : '';
    const body: unknown = text === '' ? null : JSON.parse(text);
    return out.FunctionError ? { ok: false, error: body as LambdaError } : { ok: true, result: body };
  };
}

/**
 * The proxy hook behind `lambdaInvoker`: answers the Invoke calls `principal` (the state machine
 * role's label) signed, once the proxy has allowed them, by running the hosted function, in
 * Lambda's answer format (a function error: 200 with X-Amz-Function-Error and the error as payload).
 */
export function lambdaInvokeHook(
  principal: string,
  fleet: LambdaFleet,
): (req: ApiRequest) => Promise<HookResponse | undefined> {
  return async (req) => {
    if (req.service !== 'lambda' || req.operation !== 'Invoke' || req.principal !== principal)
      return undefined;
    const name = String(req.input?.FunctionName);
    const payload: unknown = req.body.length === 0 ? {} : JSON.parse(req.body.toString('utf8'));
    const r = await fleet.byArn(name).invoke(payload);
    const headers = { 'content-type': 'application/json', 'x-amz-executed-version': '$LATEST' };
    return r.ok
      ? { status: 200, headers, body: JSON.stringify(r.result ?? null) }
      : {
          status: 200,
          headers: { ...headers, 'x-amz-function-error': 'Unhandled' },
          body: JSON.stringify(r.error),
        };
  };
}

/** A child execution of the Distributed Map, as `MapChildExecutions` knows it. */
export interface ChildRecord {
  executionArn: string;
  name: string;
  /** The Map, its label and the execution running it. */
  map: string;
  label: string;
  parent: string;
  input: string;
  startDate: Date;
  stopDate?: Date;
  status: 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'ABORTED';
  output?: string;
  error?: string;
  cause?: string;
}

const jsonAnswer = (body: unknown): HookResponse => ({
  status: 200,
  headers: { 'content-type': 'application/x-amz-json-1.0' },
  body: JSON.stringify(body),
});
const statesFault = (type: string, message: string): HookResponse => ({
  status: 400,
  headers: { 'content-type': 'application/x-amz-json-1.0', 'x-amzn-errortype': type },
  body: JSON.stringify({ __type: `com.amazonaws.states#${type}`, message }),
});

/**
 * The calls Step Functions makes as the state machine's role around each child execution of a
 * Distributed Map (Step Functions Developer Guide, "IAM policies for using Distributed Map
 * states": `states:StartExecution` on the state machine, `states:DescribeExecution` and
 * `states:StopExecution` on its executions), sent to the IAM proxy signed with the role's key, so a
 * missing grant is a recorded denial that also fails the child, hence the Map:
 *
 * - `start`: StartExecution of the state machine's own (unqualified) ARN, the child's input as
 *   input, a new name; answered by `hook` with the child's ARN,
 *   `…:execution:<state machine>/<Map label>:<name>`, as Step Functions names a Map Run's children.
 * - `succeeded` / `failed`: DescribeExecution of the child, answered from what the emulation reported.
 * - `failed` then StopExecution of every child of the same Map and parent execution still running:
 *   the Map fails with the child's error, and Step Functions stops the Map Run's running children.
 *
 * `hook` answers only these calls, and only when `principal` (the role's label) signed them; the
 * children are recorded in `children`, apart from the executions of `LocalStepFunctions`.
 */
export class MapChildExecutions implements ChildExecutions {
  readonly children = new Map<string, ChildRecord>();
  private readonly sfn: SFNClient;
  /** The children being started, by name: what `hook` needs beyond the StartExecution input. */
  private readonly starting = new Map<string, ChildExecution>();

  constructor(
    readonly stateMachineArn: string,
    private readonly principal: string,
    role: RoleEndpoint,
  ) {
    this.sfn = new SFNClient({ ...role, maxAttempts: 1 });
  }

  async start(child: ChildExecution): Promise<string> {
    const name = randomUUID();
    this.starting.set(name, child);
    try {
      const out = await this.sfn.send(
        new StartExecutionCommand({
          stateMachineArn: this.stateMachineArn,
          name,
          input: JSON.stringify(child.input ?? null),
        }),
      );
      if (!out.executionArn) throw new Error('StartExecution returned no executionArn');
      return out.executionArn;
    } finally {
      this.starting.delete(name);
    }
  }

  async succeeded(executionArn: string, output: unknown): Promise<void> {
    this.settle(executionArn, { status: 'SUCCEEDED', output: JSON.stringify(output ?? null) });
    await this.sfn.send(new DescribeExecutionCommand({ executionArn }));
  }

  async failed(executionArn: string, error: { Error: string; Cause: string }): Promise<void> {
    const failed = this.settle(executionArn, { status: 'FAILED', error: error.Error, cause: error.Cause });
    await this.sfn.send(new DescribeExecutionCommand({ executionArn }));
    const running = [...this.children.values()].filter(
      (c) =>
        c.status === 'RUNNING' &&
        c.executionArn !== executionArn &&
        c.parent === failed?.parent &&
        c.map === failed?.map,
    );
    for (const sibling of running) {
      await this.sfn.send(
        new StopExecutionCommand({
          executionArn: sibling.executionArn,
          error: 'States.MapRunFailed',
          cause: `a child execution of Map ${sibling.map} failed: ${executionArn}`,
        }),
      );
    }
  }

  private settle(executionArn: string, end: Partial<ChildRecord>): ChildRecord | undefined {
    const rec = this.children.get(executionArn);
    if (rec && rec.status === 'RUNNING') Object.assign(rec, end, { stopDate: new Date() });
    return rec;
  }

  hook = (req: ApiRequest): HookResponse | undefined => {
    if (req.service !== 'states' || req.principal !== this.principal) return undefined;
    const input = req.input ?? {};
    const seconds = (d: Date) => d.getTime() / 1000;
    switch (req.operation) {
      case 'StartExecution': {
        const name = String(input.name);
        const child = this.starting.get(name);
        if (input.stateMachineArn !== this.stateMachineArn || !child) return undefined;
        const [, machine] = /:stateMachine:([^:]+)$/.exec(this.stateMachineArn) ?? [];
        const executionArn = `${this.stateMachineArn.replace(/:stateMachine:[^:]+$/, ':execution:')}${machine}/${child.label}:${name}`;
        const rec: ChildRecord = {
          executionArn,
          name,
          map: child.map,
          label: child.label,
          parent: child.parent,
          input: String(input.input ?? '{}'),
          startDate: new Date(),
          status: 'RUNNING',
        };
        this.children.set(executionArn, rec);
        return jsonAnswer({ executionArn, startDate: seconds(rec.startDate) });
      }
      case 'DescribeExecution':
      case 'StopExecution': {
        const rec = this.children.get(String(input.executionArn));
        if (!rec) return undefined;
        if (req.operation === 'StopExecution') {
          if (rec.status !== 'RUNNING')
            return statesFault('ValidationException', `Execution Is Not Running: '${rec.executionArn}'`);
          Object.assign(rec, {
            status: 'ABORTED',
            stopDate: new Date(),
            ...(typeof input.error === 'string' ? { error: input.error } : {}),
            ...(typeof input.cause === 'string' ? { cause: input.cause } : {}),
          });
          return jsonAnswer({ stopDate: seconds(rec.stopDate as Date) });
        }
        return jsonAnswer({
          executionArn: rec.executionArn,
          stateMachineArn: this.stateMachineArn,
          name: rec.name,
          status: rec.status,
          startDate: seconds(rec.startDate),
          ...(rec.stopDate ? { stopDate: seconds(rec.stopDate) } : {}),
          input: rec.input,
          ...(rec.output !== undefined ? { output: rec.output } : {}),
          ...(rec.error !== undefined ? { error: rec.error, cause: rec.cause } : {}),
        });
      }
      default:
        return undefined;
    }
  };
}

export interface ExecutionRecord {
  executionArn: string;
  name: string;
  input: string;
  startDate: Date;
  stopDate?: Date;
  status: 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'TIMED_OUT' | 'ABORTED';
  output?: string;
  error?: string;
  cause?: string;
  taskToken: string;
  /** States entered, in order, for reports. */
  states: string[];
  done: Promise<ExecutionRecord>;
}

type Waiter = { resolve: (output: unknown) => void; reject: (e: Error) => void };

/** An error as Step Functions' Lambda integration raises it (see the file comment). */
export class LambdaTaskError extends Error {
  constructor(errorType: string, cause: string) {
    super(cause);
    this.name = errorType;
  }
}

export function throwIfFailed(r: InvokeResult): unknown {
  if (r.ok) return r.result;
  const { errorType, errorMessage, trace } = r.error;
  throw new LambdaTaskError(
    errorType,
    JSON.stringify({ errorMessage, errorType, ...(trace ? { trace } : {}) }),
  );
}

type Machine = {
  States: Record<string, { Type: string; Resource?: string; ItemProcessor?: Machine; Branches?: Machine[] }>;
};

/** The states of a machine and of the machines nested in its Maps and Parallels. */
function allStates(machine: Machine): [string, Machine['States'][string]][] {
  return Object.entries(machine.States).flatMap(([name, state]) => [
    [name, state] as [string, Machine['States'][string]],
    ...(state.ItemProcessor ? allStates(state.ItemProcessor) : []),
    ...(state.Branches ?? []).flatMap(allStates),
  ]);
}

export class LocalStepFunctions {
  readonly executions = new Map<string, ExecutionRecord>();
  private readonly waiting = new Map<string, Waiter>();
  private readonly machine: StateMachine;
  /** The definition as it runs: the Distributed Maps rewritten for aws-local-stepfunctions. */
  private readonly definition: Record<string, unknown>;
  /** The handlers of the states the rewrite inserted (the ItemReaders and ResultWriters). */
  private readonly emulated: Record<string, (input: unknown) => Promise<unknown>>;
  /** Tokens for which a waitForTaskToken state is (or was) waiting. */
  readonly taskTokens = new Set<string>();

  /** Each Task's Lambda invocation: through the IAM proxy as the role when given, else straight. */
  private readonly invoke: Invoke;

  constructor(
    readonly stateMachineArn: string,
    deployed: Record<string, unknown>,
    fleet: LambdaFleet,
    role: { read: ReadObject; write: WriteObject; invoke?: Invoke; children?: ChildExecutions },
    private readonly onTrainInvoked: (token: string) => void = () => {},
  ) {
    this.invoke = role.invoke ?? ((arn, payload) => fleet.byArn(arn).invoke(payload));
    const { definition, handlers } = emulateDistributedMaps(deployed, role.read, {
      write: role.write,
      ...(role.children ? { children: role.children } : {}),
    });
    this.definition = definition;
    this.emulated = handlers;
    this.machine = new StateMachine(definition as never, {
      validationOptions: { checkPaths: true, checkArn: true },
    });
  }

  /** Fills `${Name}` from the resolved DefinitionSubstitutions, as Step Functions does at deploy. */
  static definitionFrom(
    definitionString: string,
    substitutions: Record<string, string>,
  ): Record<string, unknown> {
    let text = definitionString;
    for (const [k, v] of Object.entries(substitutions)) text = text.replaceAll(`\${${k}}`, v);
    const left = /\$\{[A-Za-z0-9_]+\}/.exec(text);
    if (left) throw new Error(`definition substitution ${left[0]} has no value in the template`);
    return JSON.parse(text) as Record<string, unknown>;
  }

  private handlers(record: ExecutionRecord): Record<string, (input: unknown) => Promise<unknown>> {
    const out: Record<string, (input: unknown) => Promise<unknown>> = { ...this.emulated };
    for (const [name, state] of allStates(this.definition as Machine)) {
      if (state.Type !== 'Task' || !state.Resource || out[name]) continue;
      const resource = state.Resource;
      if (resource === 'arn:aws:states:::lambda:invoke.waitForTaskToken') {
        out[name] = async (input) => {
          const { FunctionName, Payload } = input as { FunctionName: string; Payload: unknown };
          const waited = new Promise<unknown>((resolve, reject) =>
            this.waiting.set(record.taskToken, { resolve, reject }),
          );
          this.taskTokens.add(record.taskToken);
          // The integration only fails on the invoke itself; the function's result is not the state's.
          throwIfFailed(await this.invoke(FunctionName, Payload));
          this.onTrainInvoked(record.taskToken);
          return waited;
        };
      } else if (resource.startsWith('arn:aws:states:::lambda:invoke')) {
        out[name] = async (input) => {
          const { FunctionName, Payload } = input as { FunctionName: string; Payload: unknown };
          const result = throwIfFailed(await this.invoke(FunctionName, Payload));
          return { Payload: result, StatusCode: 200, ExecutedVersion: '$LATEST' };
        };
      } else if (resource.startsWith('arn:aws:lambda:')) {
        out[name] = async (input) => throwIfFailed(await this.invoke(resource, input));
      } else {
        throw new Error(`state ${name}: the harness cannot run resource ${resource}`);
      }
    }
    return out;
  }

  start(name: string, inputText: string): ExecutionRecord {
    const machineName = this.stateMachineArn.split(':').pop() ?? '';
    const executionArn = `${this.stateMachineArn.replace(':stateMachine:', ':execution:').replace(/:[^:]+$/, `:${machineName}`)}:${name}`;
    const record: ExecutionRecord = {
      executionArn,
      name,
      input: inputText,
      startDate: new Date(),
      status: 'RUNNING',
      taskToken: `AQ${randomUUID().replaceAll('-', '')}${randomUUID().replaceAll('-', '')}`,
      states: [],
      done: Promise.resolve(undefined as never),
    };
    this.executions.set(executionArn, record);
    const input = JSON.parse(inputText) as unknown;
    const handlers = this.handlers(record);
    const states = allStates(this.definition as Machine).map(([name]) => name);
    const execution = this.machine.run(input as never, {
      overrides: {
        taskResourceLocalHandlers: handlers as never,
        retryIntervalOverrides: Object.fromEntries([...states, ...Object.keys(handlers)].map((s) => [s, 50])),
      },
      context: {
        Execution: {
          Id: executionArn,
          Name: name,
          Input: input,
          StartTime: record.startDate.toISOString(),
          RoleArn: '',
        },
        StateMachine: { Id: this.stateMachineArn, Name: machineName },
        Task: { Token: record.taskToken },
      } as never,
    });
    void (async () => {
      for await (const ev of execution.eventLogs as unknown as AsyncIterable<{
        type: string;
        state?: { name: string };
      }>) {
        if (ev.type === 'StateEntered' && ev.state) record.states.push(ev.state.name);
      }
    })().catch(() => {});
    record.done = execution.result.then(
      (output: unknown) => {
        record.status = 'SUCCEEDED';
        record.output = JSON.stringify(output);
        record.stopDate = new Date();
        return record;
      },
      (e: unknown) => {
        const err = e as Error & { cause?: unknown };
        record.status = 'FAILED';
        record.error = err.name;
        record.cause = typeof err.cause === 'string' ? err.cause : err.message;
        record.stopDate = new Date();
        return record;
      },
    );
    return record;
  }

  byName(name: string): ExecutionRecord | undefined {
    return [...this.executions.values()].find((e) => e.name === name);
  }

  /** The Step Functions API, answered for the state machine of the templates. */
  hook = (req: ApiRequest): HookResponse | undefined => {
    if (req.service !== 'states') return undefined;
    const input = req.input ?? {};
    const ok = jsonAnswer;
    const fail = statesFault;
    const seconds = (d: Date) => d.getTime() / 1000;
    switch (req.operation) {
      case 'StartExecution': {
        if (input.stateMachineArn !== this.stateMachineArn)
          return fail(
            'StateMachineDoesNotExist',
            `State Machine Does Not Exist: '${String(input.stateMachineArn)}'`,
          );
        const name = typeof input.name === 'string' ? input.name : randomUUID();
        const text = typeof input.input === 'string' ? input.input : '{}';
        const existing = this.byName(name);
        if (existing) {
          if (existing.status === 'RUNNING' && existing.input === text)
            return ok({ executionArn: existing.executionArn, startDate: seconds(existing.startDate) });
          return fail('ExecutionAlreadyExists', `Execution Already Exists: '${existing.executionArn}'`);
        }
        const rec = this.start(name, text);
        return ok({ executionArn: rec.executionArn, startDate: seconds(rec.startDate) });
      }
      case 'DescribeExecution': {
        const rec = this.executions.get(String(input.executionArn));
        if (!rec)
          return fail('ExecutionDoesNotExist', `Execution Does Not Exist: '${String(input.executionArn)}'`);
        return ok({
          executionArn: rec.executionArn,
          stateMachineArn: this.stateMachineArn,
          name: rec.name,
          status: rec.status,
          startDate: seconds(rec.startDate),
          ...(rec.stopDate ? { stopDate: seconds(rec.stopDate) } : {}),
          input: rec.input,
          ...(rec.output !== undefined ? { output: rec.output } : {}),
          ...(rec.error !== undefined ? { error: rec.error, cause: rec.cause } : {}),
        });
      }
      case 'SendTaskSuccess':
      case 'SendTaskFailure':
      case 'SendTaskHeartbeat': {
        const token = String(input.taskToken);
        const waiter = this.waiting.get(token);
        if (!waiter) {
          return this.taskTokens.has(token)
            ? fail('TaskTimedOut', 'Task Timed Out: the task of this token is closed')
            : fail('TaskDoesNotExist', 'Task Does Not Exist');
        }
        if (req.operation === 'SendTaskHeartbeat') return ok({});
        this.waiting.delete(token);
        if (req.operation === 'SendTaskSuccess') waiter.resolve(JSON.parse(String(input.output)));
        else {
          const e = new Error(typeof input.cause === 'string' ? input.cause : '');
          e.name = typeof input.error === 'string' ? input.error : '';
          waiter.reject(e);
        }
        return ok({});
      }
      default:
        return fail('UnsupportedOperation', `the harness does not emulate states:${req.operation}`);
    }
  };
}
