import { describe, expect, it } from 'vitest';
import type { EventPattern } from '../../../src/core/events/pattern.js';
import { compilePattern, matchesPattern } from '../../helpers/event-pattern.js';

/**
 * Examples typed in from the EventBridge User Guide: "Creating Amazon EventBridge event patterns",
 * "Content filtering in Amazon EventBridge event patterns", "Comparison operators for use in event
 * patterns", "Arrays in Amazon EventBridge event patterns", "Matching null values and empty strings".
 * Each documented pattern is checked against an event it must match and one it must not.
 */

const ec2Event = {
  version: '0',
  id: '6a7e8feb-b491-4cf7-a9f1-bf3703467718',
  'detail-type': 'EC2 Instance State-change Notification',
  source: 'aws.ec2',
  account: '111122223333',
  time: '2017-12-22T18:43:48Z',
  region: 'us-west-1',
  resources: ['arn:aws:ec2:us-west-1:123456789012:instance/i-1234567890abcdef0'],
  detail: { 'instance-id': 'i-1234567890abcdef0', state: 'terminated' },
};

function withDetail(detail: Record<string, unknown>, top: Record<string, unknown> = {}) {
  return { ...ec2Event, ...top, detail };
}

describe('creating event patterns: the EC2 instance-termination example', () => {
  const pattern: EventPattern = {
    source: ['aws.ec2'],
    'detail-type': ['EC2 Instance State-change Notification'],
    detail: { state: ['terminated'] },
  };
  it('matches the documented event', () => expect(matchesPattern(pattern, ec2Event)).toBe(true));
  it('does not match another state', () =>
    expect(matchesPattern(pattern, withDetail({ state: 'running' }))).toBe(false));
  it('does not match another source', () =>
    expect(matchesPattern(pattern, { ...ec2Event, source: 'aws.s3' })).toBe(false));
  it('does not match when detail is missing', () => {
    const { detail: _, ...noDetail } = ec2Event;
    expect(matchesPattern(pattern, noDetail)).toBe(false);
  });
  it('ORs the values of a leaf array', () => {
    const p: EventPattern = { detail: { state: ['running', 'terminated'] } };
    expect(matchesPattern(p, ec2Event)).toBe(true);
    expect(matchesPattern(p, withDetail({ state: 'pending' }))).toBe(false);
  });
});

describe('prefix matching', () => {
  it('"time" starting with 2017-10-02', () => {
    const p: EventPattern = { time: [{ prefix: '2017-10-02' }] };
    expect(matchesPattern(p, { time: '2017-10-02T18:43:48Z' })).toBe(true);
    expect(matchesPattern(p, { time: '2017-10-03T18:43:48Z' })).toBe(false);
  });
  it('Auto Scaling events from European regions', () => {
    const p: EventPattern = { source: ['aws.autoscaling'], region: [{ prefix: 'eu-' }] };
    expect(matchesPattern(p, { source: 'aws.autoscaling', region: 'eu-west-1' })).toBe(true);
    expect(matchesPattern(p, { source: 'aws.autoscaling', region: 'us-east-1' })).toBe(false);
  });
  it('prefix with equals-ignore-case ("EventB")', () => {
    const p: EventPattern = { detail: { service: [{ prefix: { 'equals-ignore-case': 'EventB' } }] } };
    for (const s of ['EventBridge', 'EVENTBRIDGE', 'eventbridge'])
      expect(matchesPattern(p, { detail: { service: s } })).toBe(true);
    expect(matchesPattern(p, { detail: { service: 'Lambda' } })).toBe(false);
  });
  it('only matches strings', () => {
    expect(matchesPattern({ n: [{ prefix: '1' }] }, { n: 12 })).toBe(false);
  });
});

describe('suffix matching', () => {
  it('"FileName" ending with .png', () => {
    const p: EventPattern = { FileName: [{ suffix: '.png' }] };
    expect(matchesPattern(p, { FileName: 'image.png' })).toBe(true);
    expect(matchesPattern(p, { FileName: 'image.PNG' })).toBe(false);
    expect(matchesPattern(p, { FileName: 'image.jpg' })).toBe(false);
  });
  it('suffix with equals-ignore-case', () => {
    const p: EventPattern = { detail: { FileName: [{ suffix: { 'equals-ignore-case': '.png' } }] } };
    expect(matchesPattern(p, { detail: { FileName: 'image.PNG' } })).toBe(true);
    expect(matchesPattern(p, { detail: { FileName: 'image.jpg' } })).toBe(false);
  });
});

describe('equals-ignore-case and empty values', () => {
  it('Name is "Alice" in any case', () => {
    const p: EventPattern = { Name: [{ 'equals-ignore-case': 'alice' }] };
    expect(matchesPattern(p, { Name: 'Alice' })).toBe(true);
    expect(matchesPattern(p, { Name: 'Alicia' })).toBe(false);
  });
  it('LastName is empty', () => {
    const p: EventPattern = { LastName: [''] };
    expect(matchesPattern(p, { LastName: '' })).toBe(true);
    expect(matchesPattern(p, { LastName: 'Smith' })).toBe(false);
    expect(matchesPattern(p, {})).toBe(false);
  });
});

describe('anything-but matching', () => {
  it('state is anything but "initializing"', () => {
    const p: EventPattern = { detail: { state: [{ 'anything-but': 'initializing' }] } };
    expect(matchesPattern(p, withDetail({ state: 'running' }))).toBe(true);
    expect(matchesPattern(p, withDetail({ state: 'initializing' }))).toBe(false);
  });
  it('x-limit is anything but 123', () => {
    const p: EventPattern = { detail: { 'x-limit': [{ 'anything-but': 123 }] } };
    expect(matchesPattern(p, withDetail({ 'x-limit': 124 }))).toBe(true);
    expect(matchesPattern(p, withDetail({ 'x-limit': 123 }))).toBe(false);
  });
  it('a list of strings', () => {
    const p: EventPattern = { detail: { state: [{ 'anything-but': ['stopped', 'overloaded'] }] } };
    expect(matchesPattern(p, withDetail({ state: 'running' }))).toBe(true);
    expect(matchesPattern(p, withDetail({ state: 'overloaded' }))).toBe(false);
  });
  it('a list of numbers', () => {
    const p: EventPattern = { detail: { 'x-limit': [{ 'anything-but': [100, 200, 300] }] } };
    expect(matchesPattern(p, withDetail({ 'x-limit': 150 }))).toBe(true);
    expect(matchesPattern(p, withDetail({ 'x-limit': 200 }))).toBe(false);
  });
  it('anything but the prefix "init"', () => {
    const p: EventPattern = { detail: { state: [{ 'anything-but': { prefix: 'init' } }] } };
    expect(matchesPattern(p, withDetail({ state: 'running' }))).toBe(true);
    expect(matchesPattern(p, withDetail({ state: 'initializing' }))).toBe(false);
  });
  it('FileName not ending with .png', () => {
    const p: EventPattern = { FileName: [{ 'anything-but': { suffix: '.png' } }] };
    expect(matchesPattern(p, { FileName: 'a.jpg' })).toBe(true);
    expect(matchesPattern(p, { FileName: 'a.png' })).toBe(false);
  });
  it('state is anything but "initializing" in any case', () => {
    const p: EventPattern = { state: [{ 'anything-but': { 'equals-ignore-case': 'initializing' } }] };
    expect(matchesPattern(p, { state: 'running' })).toBe(true);
    expect(matchesPattern(p, { state: 'INITIALIZING' })).toBe(false);
  });
  it('FilePath not including /lib/ (wildcard)', () => {
    const p: EventPattern = { FilePath: [{ 'anything-but': { wildcard: '*/lib/*' } }] };
    expect(matchesPattern(p, { FilePath: '/usr/bin/x' })).toBe(true);
    expect(matchesPattern(p, { FilePath: '/usr/lib/x' })).toBe(false);
  });
  it('every event except CloudTrail API calls', () => {
    const p: EventPattern = { 'detail-type': [{ 'anything-but': 'AWS API Call via CloudTrail' }] };
    expect(matchesPattern(p, ec2Event)).toBe(true);
    expect(matchesPattern(p, { 'detail-type': 'AWS API Call via CloudTrail' })).toBe(false);
  });
  it('everything except events from EC2 or S3', () => {
    const p: EventPattern = { source: [{ 'anything-but': ['aws.ec2', 'aws.s3'] }] };
    expect(matchesPattern(p, { source: 'aws.sagemaker' })).toBe(true);
    expect(matchesPattern(p, { source: 'aws.s3' })).toBe(false);
  });
  it('only our own events: source not starting with "aws."', () => {
    const p: EventPattern = { source: [{ 'anything-but': { prefix: 'aws.' } }] };
    expect(matchesPattern(p, { source: 'veritrail' })).toBe(true);
    expect(matchesPattern(p, { source: 'aws.ec2' })).toBe(false);
  });
  it('does not match a missing field', () => {
    expect(matchesPattern({ state: [{ 'anything-but': 'x' }] }, {})).toBe(false);
  });
});

describe('numeric matching', () => {
  const p: EventPattern = {
    detail: {
      'c-count': [{ numeric: ['>', 0, '<=', 5] }],
      'd-count': [{ numeric: ['<', 10] }],
      'x-limit': [{ numeric: ['=', 3.018e2] }],
    },
  };
  it('matches when every field is in range', () => {
    expect(matchesPattern(p, withDetail({ 'c-count': 5, 'd-count': 9, 'x-limit': 301.8 }))).toBe(true);
  });
  it.each([
    ['c-count at the open lower bound', { 'c-count': 0, 'd-count': 9, 'x-limit': 301.8 }],
    ['c-count above the closed upper bound', { 'c-count': 5.5, 'd-count': 9, 'x-limit': 301.8 }],
    ['d-count at the open upper bound', { 'c-count': 1, 'd-count': 10, 'x-limit': 301.8 }],
    ['x-limit not equal', { 'c-count': 1, 'd-count': 9, 'x-limit': 301 }],
    ['a number written as a string', { 'c-count': '1', 'd-count': 9, 'x-limit': 301.8 }],
  ])('does not match %s', (_, detail) => {
    expect(matchesPattern(p, withDetail(detail))).toBe(false);
  });
});

describe('IP address matching', () => {
  it('10.0.0.0/24', () => {
    const p: EventPattern = { detail: { sourceIPAddress: [{ cidr: '10.0.0.0/24' }] } };
    expect(matchesPattern(p, { detail: { sourceIPAddress: '10.0.0.24' } })).toBe(true);
    expect(matchesPattern(p, { detail: { sourceIPAddress: '10.0.1.1' } })).toBe(false);
  });
});

describe('exists matching', () => {
  const p: EventPattern = { detail: { 'c-count': [{ exists: false }] } };
  it('matches the documented event without detail.c-count', () => {
    const e = {
      'detail-type': ['EC2 Instance State-change Notification'],
      resources: ['arn:aws:ec2:us-east-1:123456789012:instance/i-02ebd4584a2ebd341'],
      detail: { state: ['initializing', 'running'] },
    };
    expect(matchesPattern(p, e)).toBe(true);
  });
  it('also matches the documented event whose c-count is an object: only leaves exist', () => {
    const e = {
      'detail-type': ['EC2 Instance State-change Notification'],
      resources: ['arn:aws:ec2:us-east-1:123456789012:instance/i-02ebd4584a2ebd341'],
      detail: { state: ['initializing', 'running'], 'c-count': { c1: 100 } },
    };
    expect(matchesPattern(p, e)).toBe(true);
  });
  it('does not match when c-count is a value', () => {
    expect(matchesPattern(p, { detail: { 'c-count': 3 } })).toBe(false);
  });
  it('exists: true selects events that have a description', () => {
    const q: EventPattern = { detail: { description: [{ exists: true }] } };
    expect(matchesPattern(q, { detail: { description: 'x' } })).toBe(true);
    expect(matchesPattern(q, { detail: {} })).toBe(false);
    expect(matchesPattern(q, { detail: { description: { nested: 1 } } })).toBe(false);
  });
});

describe('the complex example combining several filters', () => {
  const p: EventPattern = {
    time: [{ prefix: '2017-10-02' }],
    detail: {
      state: [{ 'anything-but': 'initializing' }],
      'c-count': [{ numeric: ['>', 0, '<=', 5] }],
      'd-count': [{ numeric: ['<', 10] }],
      'x-limit': [{ 'anything-but': [100, 200, 300] }],
    },
  };
  const detail = { state: 'running', 'c-count': 3, 'd-count': 2, 'x-limit': 150 };
  it('matches when every filter holds', () => {
    expect(matchesPattern(p, { time: '2017-10-02T10:00:00Z', detail })).toBe(true);
  });
  it('does not match when one filter fails', () => {
    expect(matchesPattern(p, { time: '2017-10-02T10:00:00Z', detail: { ...detail, 'x-limit': 300 } })).toBe(
      false,
    );
    expect(matchesPattern(p, { time: '2017-10-03T10:00:00Z', detail })).toBe(false);
  });
});

describe('$or matching', () => {
  const p: EventPattern = {
    detail: {
      $or: [
        { 'c-count': [{ numeric: ['>', 0, '<=', 5] }] },
        { 'd-count': [{ numeric: ['<', 10] }] },
        { 'x-limit': [{ numeric: ['=', 3.018e2] }] },
      ],
    },
  };
  it('matches when any alternative holds', () => {
    expect(matchesPattern(p, { detail: { 'c-count': 50, 'd-count': 5 } })).toBe(true);
    expect(matchesPattern(p, { detail: { 'x-limit': 301.8 } })).toBe(true);
  });
  it('does not match when none holds', () => {
    expect(matchesPattern(p, { detail: { 'c-count': 50, 'd-count': 50, 'x-limit': 1 } })).toBe(false);
  });
});

describe('wildcard matching', () => {
  it('"*.png" matches strings ending with .png', () => {
    const p: EventPattern = { detail: { object: { key: [{ wildcard: '*.png' }] } } };
    expect(matchesPattern(p, { detail: { object: { key: 'a/b/c.png' } } })).toBe(true);
    expect(matchesPattern(p, { detail: { object: { key: 'a/b/c.png.txt' } } })).toBe(false);
  });
  it('"*Title*" matches a string with Title in the middle', () => {
    const p: EventPattern = { t: [{ wildcard: '*Title*' }] };
    expect(matchesPattern(p, { t: 'The Title here' })).toBe(true);
    expect(matchesPattern(p, { t: 'the title here' })).toBe(false);
  });
  it('an ARN with a wildcard account and bus', () => {
    const p: EventPattern = { EventBusArn: [{ wildcard: 'arn:aws:events:us-east-1:*:event-bus/*' }] };
    expect(
      matchesPattern(p, { EventBusArn: 'arn:aws:events:us-east-1:123456789012:event-bus/default' }),
    ).toBe(true);
    expect(
      matchesPattern(p, { EventBusArn: 'arn:aws:events:us-west-2:123456789012:event-bus/default' }),
    ).toBe(false);
  });
  it('treats regular-expression characters literally and \\* as a star', () => {
    expect(matchesPattern({ k: [{ wildcard: 'a.b' }] }, { k: 'axb' })).toBe(false);
    expect(matchesPattern({ k: [{ wildcard: 'a\\*b' }] }, { k: 'a*b' })).toBe(true);
    expect(matchesPattern({ k: [{ wildcard: 'a\\*b' }] }, { k: 'axxb' })).toBe(false);
  });
});

describe('arrays in events', () => {
  const p: EventPattern = {
    resources: [
      'arn:aws:ec2:us-east-1:123456789012:instance/i-b188560f',
      'arn:aws:ec2:us-east-1:111122223333:instance/i-b188560f',
      'arn:aws:ec2:us-east-1:444455556666:instance/i-b188560f',
    ],
  };
  it('matches when the pattern and event arrays intersect', () => {
    const e = {
      resources: [
        'arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:eb56d16b-bbf0-401d-b893-d5978ed4a025:autoScalingGroupName/ASGTerminate',
        'arn:aws:ec2:us-east-1:123456789012:instance/i-b188560f',
      ],
    };
    expect(matchesPattern(p, e)).toBe(true);
  });
  it('does not match when they do not', () => {
    expect(matchesPattern(p, { resources: ['arn:aws:ec2:us-east-1:999999999999:instance/i-b188560f'] })).toBe(
      false,
    );
    expect(matchesPattern(p, { resources: [] })).toBe(false);
  });
  it('matches nested patterns against any object of an array', () => {
    const q: EventPattern = { detail: { items: { name: ['b'] } } };
    expect(matchesPattern(q, { detail: { items: [{ name: 'a' }, { name: 'b' }] } })).toBe(true);
    expect(matchesPattern(q, { detail: { items: [{ name: 'a' }] } })).toBe(false);
  });
});

describe('null values and empty strings', () => {
  const e = {
    version: '0',
    id: '3e3c153a-8339-4e30-8c35-687ebef853fe',
    'detail-type': 'EC2 Instance Launch Successful',
    source: 'aws.autoscaling',
    account: '123456789012',
    time: '2015-11-11T21:31:47Z',
    region: 'us-east-1',
    resources: [],
    detail: { eventVersion: '', responseElements: null },
  };
  it('[""] matches the empty eventVersion', () =>
    expect(matchesPattern({ detail: { eventVersion: [''] } }, e)).toBe(true));
  it('[null] matches the null responseElements', () =>
    expect(matchesPattern({ detail: { responseElements: [null] } }, e)).toBe(true));
  it('null and "" are not interchangeable', () => {
    expect(matchesPattern({ detail: { responseElements: [''] } }, e)).toBe(false);
    expect(matchesPattern({ detail: { eventVersion: [null] } }, e)).toBe(false);
  });
  it('a missing field matches neither', () => {
    expect(matchesPattern({ detail: { absent: [null] } }, e)).toBe(false);
    expect(matchesPattern({ detail: { absent: [''] } }, e)).toBe(false);
  });
});

describe('when the pattern is malformed', () => {
  it.each([
    ['an unknown operator', { a: [{ contains: 'x' }] }],
    ['consecutive wildcards', { a: [{ wildcard: 'a**b' }] }],
    ['a bad wildcard escape', { a: [{ wildcard: 'a\\b' }] }],
    ['a numeric range with two lower bounds', { a: [{ numeric: ['>', 0, '>', 5] }] }],
    ['a numeric operator', { a: [{ numeric: ['!=', 0] }] }],
    ['a mixed anything-but list', { a: [{ 'anything-but': ['x', 1] }] }],
    ['an empty leaf', { a: [] }],
    ['a scalar where a list belongs', { a: 'x' }],
    ['$or with one alternative', { $or: [{ a: ['x'] }] }],
    ['an IPv6 cidr', { a: [{ cidr: '2001:db8::/32' }] }],
    ['exists with a string', { a: [{ exists: 'yes' }] }],
  ])('throws PATTERN_INVALID for %s, whatever the event', (_, pattern) => {
    const bad = pattern as unknown as EventPattern;
    expect(() => compilePattern(bad)).toThrowError(expect.objectContaining({ code: 'PATTERN_INVALID' }));
    // Even when an earlier field already fails, the pattern is refused.
    expect(() => matchesPattern({ zz: ['never'], ...bad }, {})).toThrowError(
      expect.objectContaining({ code: 'PATTERN_INVALID' }),
    );
  });
});

describe('when the event is malformed', () => {
  it.each([null, 42, 'text', [], [1, 2], { detail: 'flat' }, { detail: [1, { state: 3 }] }])(
    'does not throw and does not match for %j',
    (event) => {
      expect(matchesPattern({ source: ['aws.ec2'], detail: { state: ['terminated'] } }, event)).toBe(false);
    },
  );
});
