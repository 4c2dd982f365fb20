import { Duration } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Cron, type StackContext, use } from 'sst/constructs';
import {
  s3ObjectCreatedPattern,
  sagemakerTrainingStateChangePattern,
  scheduleExpression,
  scheduleInputTransformer,
} from '../src/core/rules.js';
import { removeUnusedSstHandler } from './common.js';
import { Pipeline } from './Pipeline.js';
import { Storage } from './Storage.js';
import { loadPipelines } from './settings.js';

/** EventBridge retries a failed delivery this often, for at most this long, then dead-letters it. */
export const TARGET_RETRY_ATTEMPTS = 10;
export const TARGET_MAX_EVENT_AGE = Duration.hours(6);

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
 * schedule → the start function; SageMaker Training Job State Change → the callback function.
 * Every target retries and dead-letters into an encrypted, TLS-only SQS queue.
 */
export function Triggers({ stack }: StackContext) {
  const { functions } = use(Pipeline);
  const { landing } = use(Storage);
  const pipelines = loadPipelines();

  const deadLetters = (id: string) =>
    new sqs.Queue(stack, id, {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
  const startDeadLetters = deadLetters('StartDeadLetters');
  const callbackDeadLetters = deadLetters('TrainingCallbackDeadLetters');
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

  stack.addOutputs({
    StartDeadLetterQueueUrl: startDeadLetters.queueUrl,
    TrainingCallbackDeadLetterQueueUrl: callbackDeadLetters.queueUrl,
  });
  removeUnusedSstHandler(stack);
  return { startDeadLetters, callbackDeadLetters };
}
