import { describe, expect, it } from 'vitest';
import { parseSchedulePayload } from '../../src/core/events/index.js';
import {
  applyInputTransformer,
  localCron,
  nextFireTimes,
  s3ObjectCreatedPattern,
  sagemakerTrainingStateChangePattern,
  scheduleExpression,
  scheduleInputTransformer,
  toCdkEventPattern,
} from '../../src/core/rules.js';
import { compilePattern, matchesPattern } from '../helpers/event-pattern.js';
import { fixture, rejection, withField } from './events/helpers.js';

describe('the S3 landing rule', () => {
  const doc = fixture('s3-object-created.json');
  const pattern = s3ObjectCreatedPattern('amzn-s3-demo-bucket1', 'credit-scoring/');

  it('matches an upload under the pipeline prefix', () => {
    expect(matchesPattern(pattern, withField(doc, 'detail.object.key', 'credit-scoring/2024.csv'))).toBe(
      true,
    );
  });
  it('ignores uploads under another prefix, in another bucket, or other S3 events', () => {
    expect(matchesPattern(pattern, doc)).toBe(false); // documented key "example-key"
    const other = withField(
      withField(doc, 'detail.object.key', 'credit-scoring/a.csv'),
      'detail.bucket.name',
      'x-bkt',
    );
    expect(matchesPattern(pattern, other)).toBe(false);
    const deleted = withField(fixture('s3-object-deleted.json'), 'detail.object.key', 'credit-scoring/a.csv');
    expect(matchesPattern(pattern, deleted)).toBe(false);
  });
  it('with an empty prefix, matches the whole bucket (the documented example)', () => {
    expect(matchesPattern(s3ObjectCreatedPattern('amzn-s3-demo-bucket1', ''), doc)).toBe(true);
  });
  it('is the pattern the stacks deploy, in CDK shape', () => {
    expect(toCdkEventPattern(pattern)).toEqual({
      source: ['aws.s3'],
      detailType: ['Object Created'],
      detail: {
        bucket: { name: ['amzn-s3-demo-bucket1'] },
        object: { key: [{ prefix: 'credit-scoring/' }] },
      },
    });
  });
  it.each([
    ['Bad_Bucket', 'p/'],
    ['amzn-s3-demo-bucket1', '../p/'],
    ['amzn-s3-demo-bucket1', '/abs/'],
    ['amzn-s3-demo-bucket1', 'p*/'],
  ])('refuses bucket %j with prefix %j', (bucket, prefix) => {
    expect(rejection(() => s3ObjectCreatedPattern(bucket, prefix)).code).toBe('PIPELINE_INVALID');
  });
});

describe('the SageMaker training state rule', () => {
  const doc = fixture('sagemaker-training-job-state-change.json');
  const match = compilePattern(sagemakerTrainingStateChangePattern());
  const ours = withField(doc, 'detail.TrainingJobName', 'vt-r-abc');

  it.each(['Completed', 'Failed', 'Stopped'])('matches our job reaching %s', (status) => {
    expect(match(withField(ours, 'detail.TrainingJobStatus', status))).toBe(true);
  });
  it.each(['InProgress', 'Stopping'])('ignores our job while %s', (status) => {
    expect(match(withField(ours, 'detail.TrainingJobStatus', status))).toBe(false);
  });
  it('ignores jobs not named by us (the documented example)', () => {
    expect(match(doc)).toBe(false);
  });
});

describe('scheduleExpression: five-field cron to EventBridge cron()', () => {
  it.each([
    ['0 3 * * 1', 'cron(0 3 ? * 2 *)'], // 03:00 every Monday: cron Monday=1, EventBridge Monday=2
    ['0 3 * * *', 'cron(0 3 * * ? *)'],
    ['*/15 * * * *', 'cron(0/15 * * * ? *)'],
    ['0 */6 */2 */3 *', 'cron(0 0/6 1/2 1/3 ? *)'],
    ['30 2 1 * *', 'cron(30 2 1 * ? *)'],
    ['0 0 * * 0', 'cron(0 0 ? * 1 *)'], // Sunday is 0 in cron, 1 in EventBridge
    ['0 0 * * 7', 'cron(0 0 ? * 1 *)'], // 7 is Sunday too
    ['0 8 * * 1-5', 'cron(0 8 ? * 2-6 *)'],
    ['0 8 * * mon-fri', 'cron(0 8 ? * 2-6 *)'],
    ['0 8 * * 5-7', 'cron(0 8 ? * 1,6,7 *)'], // Fri-Sun wraps in EventBridge numbering
    ['0 8 * * */2', 'cron(0 8 ? * 1,3,5,7 *)'],
    ['0 8 * * 0-6', 'cron(0 8 ? * * *)'],
    ['15 10 * jan,jul *', 'cron(15 10 * JAN,JUL ? *)'],
    ['0/10 * * * *', 'cron(0/10 * * * ? *)'],
  ])('%s → %s', (cron, expected) => {
    expect(scheduleExpression(cron)).toBe(expected);
  });

  it.each([
    ['0 3 1 * 1', 'both day-of-month and day-of-week'],
    ['0 3 * *', '4 fields'],
    ['0 0 3 * * *', '6 fields'],
    ['60 * * * *', 'minute 60'],
    ['0 24 * * *', 'hour 24'],
    ['0 0 0 * *', 'day-of-month 0'],
    ['0 0 * 13 *', 'month 13'],
    ['0 0 * * 8', 'day-of-week 8'],
    ['0 0 ? * 1', '"?"'],
    ['0 0 L * *', '"L"'],
    ['0 0 * * 1#2', '"1#2"'],
    ['0 0 5-1 * *', 'backwards range'],
    ['0 0 * * funday', 'FUNDAY'],
  ])('refuses %j with PIPELINE_INVALID (%s)', (cron, reason) => {
    const err = rejection(() => scheduleExpression(cron));
    expect(err.code).toBe('PIPELINE_INVALID');
    expect(err.message).toContain(reason);
  });
});

describe('local schedules (croner, UTC)', () => {
  it('fires on the same instants the EventBridge expression describes', () => {
    const after = new Date('2024-01-01T00:00:00Z'); // a Monday
    expect(nextFireTimes('0 3 * * 1', after, 2).map((d) => d.toISOString())).toEqual([
      '2024-01-01T03:00:00.000Z',
      '2024-01-08T03:00:00.000Z',
    ]);
    expect(nextFireTimes('0 8 * * 5-7', after, 3).map((d) => d.toISOString())).toEqual([
      '2024-01-05T08:00:00.000Z',
      '2024-01-06T08:00:00.000Z',
      '2024-01-07T08:00:00.000Z',
    ]);
  });
  it('refuses what EventBridge refuses, so a local schedule always deploys', () => {
    expect(rejection(() => localCron('0 3 1 * 1')).code).toBe('PIPELINE_INVALID');
  });
  it('never starts a timer', () => {
    expect(localCron('* * * * *').isRunning()).toBe(false);
  });
});

describe('the schedule target input transformer', () => {
  it('turns the documented Scheduled Event into a valid schedule payload', () => {
    const event = fixture('scheduled-event.json');
    const payload = applyInputTransformer(scheduleInputTransformer('credit-scoring', true), event, {
      arn: 'arn:aws:events:us-east-2:123456789012:rule/my-schedule',
      name: 'my-schedule',
    });
    expect(parseSchedulePayload(payload)).toEqual({
      pipeline: 'credit-scoring',
      force: true,
      rule: 'arn:aws:events:us-east-2:123456789012:rule/my-schedule',
      time: '2019-03-01T01:23:45Z',
      eventId: 'cdc73f9d-aea9-11e3-9d5a-835b769c0d9c',
    });
  });

  it('renders the documented "Simple JSON" and "JSON with strings and variables" templates', () => {
    const ec2 = {
      time: '2015-11-11T21:29:54Z',
      detail: { 'instance-id': 'i-0123456789', state: 'RUNNING' },
    };
    const inputPathsMap = { timestamp: '$.time', instance: '$.detail.instance-id', state: '$.detail.state' };
    const rule = { arn: 'arn:aws:events:us-east-2:123456789012:rule/example', name: 'example' };
    expect(
      applyInputTransformer(
        { inputPathsMap, inputTemplate: '{"instance" : <instance>, "state": <state>}' },
        ec2,
        rule,
      ),
    ).toEqual({
      instance: 'i-0123456789',
      state: 'RUNNING',
    });
    expect(
      applyInputTransformer(
        {
          inputPathsMap,
          inputTemplate: '{"instance" : <instance>, "state": [ 9, <state>, true ], "Transformed" : "Yes"}',
        },
        ec2,
        rule,
      ),
    ).toEqual({ instance: 'i-0123456789', state: [9, 'RUNNING', true], Transformed: 'Yes' });
    expect(
      applyInputTransformer(
        {
          inputPathsMap,
          inputTemplate:
            '{"instance" : <instance>, "ruleArn" : <aws.events.rule-arn>, "ruleName" : <aws.events.rule-name>}',
        },
        ec2,
        rule,
      ),
    ).toEqual({ instance: 'i-0123456789', ruleArn: rule.arn, ruleName: 'example' });
  });

  it('fails clearly when a variable has no value', () => {
    const err = rejection(() =>
      applyInputTransformer(
        { inputPathsMap: { x: '$.nope' }, inputTemplate: '{"x": <x>}' },
        {},
        { arn: 'a', name: 'n' },
      ),
    );
    expect(err.code).toBe('EVENT_INVALID');
  });
});
