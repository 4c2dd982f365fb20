/**
 * Step Functions: starting executions and completing task tokens.
 *
 * Executions get a deterministic name from the caller (derived from the trigger's content
 * identity), so a trigger delivered twice (EventBridge is at-least-once, invariant 4) starts one
 * execution: Step Functions refuses a second execution with the same name for 90 days with
 * `ExecutionAlreadyExists`, which here means "already started".
 */
import {
  DescribeExecutionCommand,
  SendTaskFailureCommand,
  SendTaskHeartbeatCommand,
  SendTaskSuccessCommand,
  type SFNClient,
  StartExecutionCommand,
} from '@aws-sdk/client-sfn';
import { VeritrailError } from '../core/errors.js';
import { awsErrorName, translateAwsError } from './errors.js';

/** API limits (Step Functions API reference: StartExecution, SendTaskFailure, SendTaskSuccess). */
export const SFN_LIMITS = {
  executionName: 80,
  /** `error` of SendTaskFailure, in characters. */
  error: 256,
  /** `cause` of SendTaskFailure, in characters. */
  cause: 32_768,
  /** Execution input and task output, in UTF-8 bytes. */
  payloadBytes: 262_144,
} as const;

/**
 * Characters Step Functions does not allow in an execution name: whitespace, brackets and
 * wildcards, `" # % \ ^ | ~ \` $ & , ; : /` and control characters.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are exactly what is refused.
const NAME_FORBIDDEN = /[\s<>{}[\]?*"#%\\^|~`$&,;:/\u0000-\u001f\u007f-\u009f]/;

export type StartResult = { executionArn: string; alreadyStarted: boolean };

/** Status of an execution (DescribeExecution); `MISSING` when Step Functions knows no such execution. */
export type ExecutionStatus =
  | 'RUNNING'
  | 'SUCCEEDED'
  | 'FAILED'
  | 'TIMED_OUT'
  | 'ABORTED'
  | 'PENDING_REDRIVE'
  | 'MISSING';

export type TaskResult =
  | { delivered: true }
  | { delivered: false; reason: 'TaskDoesNotExist' | 'TaskTimedOut' };

/** Cuts a string to at most `max` UTF-16 code units without splitting a surrogate pair. */
export function truncate(s: string, max: number): string {
  if (s.length <= max) return s;
  let cut = s.slice(0, max);
  const last = cut.charCodeAt(cut.length - 1);
  if (last >= 0xd800 && last <= 0xdbff) cut = cut.slice(0, -1);
  return cut;
}

function checkExecutionName(name: string): void {
  if (name.length === 0 || name.length > SFN_LIMITS.executionName || NAME_FORBIDDEN.test(name)) {
    throw new VeritrailError(
      'USAGE',
      `execution name "${name}" is invalid: use 1-${SFN_LIMITS.executionName} characters without whitespace, brackets, wildcards or any of " # % \\ ^ | ~ \` $ & , ; : /`,
      { details: { name } },
    );
  }
}

/** The ARN an execution named `name` of this state machine has (it is a pure function of the two). */
export function executionArnOf(stateMachineArn: string, name: string): string {
  const parts = stateMachineArn.split(':');
  if (parts.length !== 7 || parts[5] !== 'stateMachine') {
    throw new VeritrailError('USAGE', `"${stateMachineArn}" is not a state machine ARN`);
  }
  parts[5] = 'execution';
  return `${parts.join(':')}:${name}`;
}

function checkPayload(what: string, json: string): void {
  const bytes = Buffer.byteLength(json);
  if (bytes > SFN_LIMITS.payloadBytes) {
    throw new VeritrailError(
      'EVENT_INVALID',
      `${what} is ${bytes} bytes; Step Functions accepts at most ${SFN_LIMITS.payloadBytes}. Store large data in the artifacts bucket and pass its key`,
    );
  }
}

export class StepFunctions {
  constructor(private readonly sfn: SFNClient) {}

  /** Starts an execution, or reports that one with this name already exists. */
  async startExecution(stateMachineArn: string, name: string, input: unknown): Promise<StartResult> {
    checkExecutionName(name);
    const json = JSON.stringify(input);
    checkPayload('the execution input', json);
    try {
      const out = await this.sfn.send(new StartExecutionCommand({ stateMachineArn, name, input: json }));
      return {
        executionArn: out.executionArn ?? executionArnOf(stateMachineArn, name),
        alreadyStarted: false,
      };
    } catch (e) {
      if (awsErrorName(e) === 'ExecutionAlreadyExists') {
        return { executionArn: executionArnOf(stateMachineArn, name), alreadyStarted: true };
      }
      throw translateAwsError(e, {
        action: 'states:StartExecution',
        resource: stateMachineArn,
        configuredBy: 'VERITRAIL_STATE_MACHINE_ARN',
      });
    }
  }

  /**
   * Completes a waiting task. A token that was already used or has timed out is reported, not
   * thrown: the SageMaker state-change event is delivered at least once, and a second delivery
   * must not fail the callback.
   */
  async sendTaskSuccess(taskToken: string, output: unknown): Promise<TaskResult> {
    const json = JSON.stringify(output);
    checkPayload('the task output', json);
    return this.complete('states:SendTaskSuccess', () =>
      this.sfn.send(new SendTaskSuccessCommand({ taskToken, output: json })),
    );
  }

  /** Fails a waiting task; `error` and `cause` are cut to the API limits. */
  async sendTaskFailure(taskToken: string, error: string, cause: string): Promise<TaskResult> {
    return this.complete('states:SendTaskFailure', () =>
      this.sfn.send(
        new SendTaskFailureCommand({
          taskToken,
          error: truncate(error, SFN_LIMITS.error),
          cause: truncate(cause, SFN_LIMITS.cause),
        }),
      ),
    );
  }

  /** Tells a waiting task that its work is still going (resets HeartbeatSeconds). */
  async sendTaskHeartbeat(taskToken: string): Promise<TaskResult> {
    return this.complete('states:SendTaskHeartbeat', () =>
      this.sfn.send(new SendTaskHeartbeatCommand({ taskToken })),
    );
  }

  /** The status of an execution, and when it stopped if it has. */
  async describeExecution(executionArn: string): Promise<{ status: ExecutionStatus; stopDate?: Date }> {
    try {
      const out = await this.sfn.send(new DescribeExecutionCommand({ executionArn }));
      return {
        status: (out.status ?? 'RUNNING') as ExecutionStatus,
        ...(out.stopDate ? { stopDate: out.stopDate } : {}),
      };
    } catch (e) {
      if (awsErrorName(e) === 'ExecutionDoesNotExist') return { status: 'MISSING' };
      throw translateAwsError(e, { action: 'states:DescribeExecution', resource: executionArn });
    }
  }

  private async complete(action: string, call: () => Promise<unknown>): Promise<TaskResult> {
    try {
      await call();
      return { delivered: true };
    } catch (e) {
      const name = awsErrorName(e);
      if (name === 'TaskDoesNotExist' || name === 'TaskTimedOut') return { delivered: false, reason: name };
      // Never put the token itself in a message: it is a bearer credential for the task.
      throw translateAwsError(e, { action, resource: 'task token' });
    }
  }
}
