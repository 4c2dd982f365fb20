import { Duration } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Cron, type StackContext, use } from 'sst/constructs';
import {
  s3ObjectCreatedPattern,
  sagemakerTrainingStateChangePattern,
  scheduleExpression,
  scheduleInputTransformer,
} from '../src/core/rules.js';
import { removeUnusedSstHandler } from './common.js';
import { suppressTriggerFindings } from './compliance.js';
import { Pipeline } from './Pipeline.js';
import { Storage } from './Storage.js';
import { deployedPipelines } from './units.js';

/** EventBridge retries a failed delivery this often, for at most this long, then dead-letters it. */
export const TARGET_RETRY_ATTEMPTS = 10;
export const TARGET_MAX_EVENT_AGE = Duration.hours(6);

/**
 * Lambda's own retries of an asynchronous invocation that failed (the function threw), and how
 * long an event may wait, before it goes to the function's on-failure queue. EventBridge's retry
 * policy above covers delivery only; this covers the function failing after delivery.
 */
export const ASYNC_RETRY_ATTEMPTS = 2;
export const ASYNC_MAX_EVENT_AGE = Duration.hours(6);

/** How often the reconciler runs: a lost SageMaker event or a lost execution is closed within minutes. */
export const RECONCILE_EVERY = Duration.minutes(5);

/** A Lambda destination that is an SQS queue, granted separately (below) to the function's role. */
function queueDestination(queue: sqs.IQueue): lambda.IDestination {
  return { bind: () => ({ destination: queue.queueArn }) };
}

/** A syntactically valid stand-in: the shared pattern validates names, the real one is a deploy-time token. */
const BUCKET_PLACEHOLDER = 'veritrail-landing-bucket-placeholder';

/**
 * Rule patterns come from src/core/rules.ts, the one definition the embedded router evaluates too.
 * The landing bucket's name is only known at deploy time, so the pattern is built with a placeholder
 * and the token put in its place.
 */
function landingPattern(bucketName: string, prefix: string): Record<string, unknown> {
  const json = JSON.stringify(s3ObjectCreatedPattern(BUCKET_PLACEHOLDER, prefix));
  return JSON.parse(
    json.replaceAll(JSON.stringify(BUCKET_PLACEHOLDER), JSON.stringify(bucketName)),
  ) as Record<string, unknown>;
}

function eventBridgeCron(expression: string): `cron(${string})` {
  if (!expression.startsWith('cron(')) throw new TypeError(`not a cron() expression: ${expression}`);
  return expression as `cron(${string})`;
}

/**
 * What starts work: S3 Object Created under each pipeline's landing prefix and each pipeline's
 * schedule → the start function; SageMaker Training Job State Change → the callback function; a
 * 5-minute schedule → the reconciler. Every target retries and dead-letters into an encrypted,
 * TLS-only SQS queue, and each of these functions sends an invocation that keeps failing to the
 * same queue (Lambda asynchronous invocation config).
 */
export function Triggers({ stack }: StackContext) {
  const { functions } = use(Pipeline);
  const { landing } = use(Storage);
  const pipelines = deployedPipelines();

  const deadLetters = (id: string) =>
    new sqs.Queue(stack, id, {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
  const startDeadLetters = deadLetters('StartDeadLetters');
  const callbackDeadLetters = deadLetters('TrainingCallbackDeadLetters');
  const reconcileDeadLetters = deadLetters('ReconcileDeadLetters');
  const startTarget = {
    deadLetterQueue: startDeadLetters,
    retryAttempts: TARGET_RETRY_ATTEMPTS,
    maxEventAge: TARGET_MAX_EVENT_AGE,
  };

  for (const { definition, landingPrefix } of pipelines) {
    const rule = new events.Rule(stack, `Landing-${definition.name}`, {
      description: `veritrail: datasets landing under ${landingPrefix} start pipeline ${definition.name}`,
      // Replaced below by the shared pattern; CDK requires a pattern or a schedule at construction.
      eventPattern: { source: ['aws.s3'] },
    });
    (rule.node.defaultChild as events.CfnRule).eventPattern = landingPattern(
      landing.bucketName,
      landingPrefix,
    );
    rule.addTarget(new targets.LambdaFunction(functions.start, startTarget));

    if (definition.schedule) {
      const cron = new Cron(stack, `Schedule-${definition.name}`, {
        schedule: eventBridgeCron(scheduleExpression(definition.schedule.cron)),
        job: { function: functions.start, cdk: { target: startTarget } },
      });
      // The Scheduled Event becomes the schedule payload (rule ARN + time = idempotency key).
      const transformer = scheduleInputTransformer(definition.name, definition.schedule.force);
      (cron.cdk.rule.node.defaultChild as events.CfnRule).addPropertyOverride('Targets.0.InputTransformer', {
        InputPathsMap: transformer.inputPathsMap,
        InputTemplate: transformer.inputTemplate,
      });
    }
  }

  const trainingState = new events.Rule(stack, 'TrainingStateChange', {
    description: 'veritrail: SageMaker training jobs (vt-*) reaching a terminal status resume their run',
    eventPattern: { source: ['aws.sagemaker'] },
  });
  (trainingState.node.defaultChild as events.CfnRule).eventPattern = sagemakerTrainingStateChangePattern();
  trainingState.addTarget(
    new targets.LambdaFunction(functions['training-callback'], {
      deadLetterQueue: callbackDeadLetters,
      retryAttempts: TARGET_RETRY_ATTEMPTS,
      maxEventAge: TARGET_MAX_EVENT_AGE,
    }),
  );

  // The reconciler: every 5 minutes, unsettled runs are checked against Step Functions and SageMaker.
  const reconcile = new events.Rule(stack, 'Reconcile', {
    description:
      'veritrail: close runs whose execution ended, finish Train steps whose SageMaker event was lost',
    schedule: events.Schedule.rate(RECONCILE_EVERY),
  });
  reconcile.addTarget(
    new targets.LambdaFunction(functions.reconcile, {
      deadLetterQueue: reconcileDeadLetters,
      retryAttempts: TARGET_RETRY_ATTEMPTS,
      maxEventAge: TARGET_MAX_EVENT_AGE,
    }),
  );

  // Every asynchronously invoked function: Lambda retries a failed invocation, then puts the event
  // (with the error) on the function's queue, the same one EventBridge dead-letters into. Nothing
  // that triggered work is dropped silently.
  const onFailure = [
    ['start', startDeadLetters],
    ['training-callback', callbackDeadLetters],
    ['reconcile', reconcileDeadLetters],
  ] as const;
  const onFailurePolicies: iam.Policy[] = [];
  for (const [name, queue] of onFailure) {
    const fn = functions[name];
    new lambda.EventInvokeConfig(stack, `AsyncInvoke-${name}`, {
      function: fn,
      retryAttempts: ASYNC_RETRY_ATTEMPTS,
      maxEventAge: ASYNC_MAX_EVENT_AGE,
      onFailure: queueDestination(queue),
    });
    if (!fn.role) throw new TypeError(`function ${name} has no role`);
    const policy = new iam.Policy(stack, `OnFailure-${name}`, {
      roles: [fn.role],
      statements: [
        new iam.PolicyStatement({
          sid: 'OnFailureQueue',
          actions: ['sqs:SendMessage'],
          resources: [queue.queueArn],
        }),
      ],
    });
    onFailurePolicies.push(policy);
  }
  suppressTriggerFindings({
    queues: [startDeadLetters, callbackDeadLetters, reconcileDeadLetters],
    onFailurePolicies,
  });

  stack.addOutputs({
    StartDeadLetterQueueUrl: startDeadLetters.queueUrl,
    TrainingCallbackDeadLetterQueueUrl: callbackDeadLetters.queueUrl,
    ReconcileDeadLetterQueueUrl: reconcileDeadLetters.queueUrl,
  });
  removeUnusedSstHandler(stack);
  return { startDeadLetters, callbackDeadLetters, reconcileDeadLetters };
}
