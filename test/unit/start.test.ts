import { describe, expect, it } from 'vitest';
import type { Digest } from '../../src/core/digest.js';
import {
  parseOperatorStart,
  parseS3ObjectCreatedEvent,
  parseScheduledEvent,
  parseSchedulePayload,
} from '../../src/core/events/index.js';
import { parsePipelineDefinition } from '../../src/core/pipeline.js';
import {
  decideRetrain,
  EXECUTION_NAME_PATTERN,
  executionNameOf,
  idempotencyKeyOf,
  planStart,
  RUN_ID_PATTERN,
  resolvePipelineForKey,
  runIdOf,
  scheduledMinuteOf,
  triggerFromOperatorStart,
  triggerFromS3Event,
  triggerFromScheduledEvent,
  triggerFromSchedulePayload,
  triggerIdentity,
} from '../../src/core/start.js';
import { fixture, rejection, withField } from './events/helpers.js';

const d = (c: string): Digest => `sha256:${c.repeat(64)}`;

function pipeline(name: string, prefix?: string) {
  return parsePipelineDefinition({
    apiVersion: 'veritrail.dev/v1',
    name,
    dataset: {
      label: { column: 'y', positive: '1' },
      protected: [{ column: 'sex', privileged: 'm' }],
      features: ['x'],
    },
    trainer: { code: 'train', command: ['python', 'train.py'] },
    ...(prefix !== undefined ? { landing: { prefix } } : {}),
  });
}

describe('S3 triggers', () => {
  const doc = fixture('s3-object-created.json');
  const event = parseS3ObjectCreatedEvent(doc);

  it('are identified by pipeline, bucket, key and VersionId', () => {
    expect(triggerIdentity(triggerFromS3Event(event, 'credit-scoring'))).toEqual({
      v: 1,
      kind: 's3',
      pipeline: 'credit-scoring',
      bucket: 'amzn-s3-demo-bucket1',
      key: 'example-key',
      versionId: 'IYV3p45BT0ac8hjHg1houSdS1a.Mro8e',
    });
  });

  it('give a redelivered event (new id, later time) the same key, run id and execution name', () => {
    const again = parseS3ObjectCreatedEvent({
      ...withField(doc, 'id', 'another-delivery'),
      time: '2021-11-12T00:05:00Z',
    });
    expect(planStart(triggerFromS3Event(again, 'credit-scoring'))).toEqual(
      planStart(triggerFromS3Event(event, 'credit-scoring')),
    );
  });

  it('give a new version of the same key a new key', () => {
    const v2 = parseS3ObjectCreatedEvent(withField(doc, 'detail.object.version-id', 'other-version'));
    expect(idempotencyKeyOf(triggerFromS3Event(v2, 'p'))).not.toBe(
      idempotencyKeyOf(triggerFromS3Event(event, 'p')),
    );
  });

  it('use ETag + sequencer in an unversioned bucket, so a re-upload is new and a redelivery is not', () => {
    const unversioned = withField(doc, 'detail.object.version-id', undefined);
    const t = triggerFromS3Event(parseS3ObjectCreatedEvent(unversioned), 'p');
    expect(triggerIdentity(t)).toMatchObject({
      etag: 'b1946ac92492d2347c6235b4d2611184',
      sequencer: '617f08299329d189',
    });
    const reupload = parseS3ObjectCreatedEvent(
      withField(unversioned, 'detail.object.sequencer', '617f08299329d190'),
    );
    expect(idempotencyKeyOf(triggerFromS3Event(reupload, 'p'))).not.toBe(idempotencyKeyOf(t));
  });

  it('differ per pipeline', () => {
    expect(idempotencyKeyOf(triggerFromS3Event(event, 'a-pipe'))).not.toBe(
      idempotencyKeyOf(triggerFromS3Event(event, 'b-pipe')),
    );
  });
});

describe('local file triggers', () => {
  it('are the same trigger for the same content under any name', () => {
    const a = planStart({ kind: 'local', pipeline: 'credit-scoring', path: 'in/a.csv', digest: d('a') });
    const b = planStart({
      kind: 'local',
      pipeline: 'credit-scoring',
      path: 'in/renamed.csv',
      digest: d('a'),
    });
    const c = planStart({ kind: 'local', pipeline: 'credit-scoring', path: 'in/a.csv', digest: d('b') });
    expect(b).toEqual(a);
    expect(c.idempotencyKey).not.toBe(a.idempotencyKey);
  });
});

describe('schedule triggers', () => {
  const scheduled = parseScheduledEvent(fixture('scheduled-event.json'));

  it('are identified by pipeline, rule and scheduled minute', () => {
    expect(triggerIdentity(triggerFromScheduledEvent(scheduled, 'credit-scoring'))).toEqual({
      v: 1,
      kind: 'schedule',
      pipeline: 'credit-scoring',
      rule: 'arn:aws:events:us-east-2:123456789012:rule/my-schedule',
      scheduledTime: '2019-03-01T01:23:00.000Z',
    });
  });

  it('agree between the raw event and the transformed payload, whatever force says', () => {
    const payload = parseSchedulePayload({
      pipeline: 'credit-scoring',
      force: true,
      rule: 'arn:aws:events:us-east-2:123456789012:rule/my-schedule',
      time: '2019-03-01T01:23:45Z',
    });
    expect(idempotencyKeyOf(triggerFromSchedulePayload(payload))).toBe(
      idempotencyKeyOf(triggerFromScheduledEvent(scheduled, 'credit-scoring')),
    );
  });

  it('give the next firing a new key', () => {
    const next = parseScheduledEvent({ ...fixture('scheduled-event.json'), time: '2019-03-02T01:23:45Z' });
    expect(idempotencyKeyOf(triggerFromScheduledEvent(next, 'p'))).not.toBe(
      idempotencyKeyOf(triggerFromScheduledEvent(scheduled, 'p')),
    );
  });

  it('floor times to the UTC minute, across offsets', () => {
    expect(scheduledMinuteOf('2024-01-01T03:00:59.999Z')).toBe('2024-01-01T03:00:00.000Z');
    expect(scheduledMinuteOf('2024-01-01T05:00:10+02:00')).toBe('2024-01-01T03:00:00.000Z');
    expect(rejection(() => scheduledMinuteOf('soon')).code).toBe('EVENT_INVALID');
  });
});

describe('operator triggers', () => {
  const base = {
    pipeline: 'credit-scoring',
    dataset: { uri: 's3://landing-bucket/credit-scoring/a.csv', versionId: 'v1' },
    requestId: 'req-1',
  };

  it('make a double-click (same request) one trigger, whoever and whenever', () => {
    const a = triggerFromOperatorStart(parseOperatorStart({ ...base, actor: 'alice' }));
    const b = triggerFromOperatorStart(parseOperatorStart({ ...base, actor: 'bob' }));
    expect(idempotencyKeyOf(a)).toBe(idempotencyKeyOf(b));
  });

  it('make a new requestId, a forced request or another version a new trigger', () => {
    const key = (v: unknown) => idempotencyKeyOf(triggerFromOperatorStart(parseOperatorStart(v)));
    const k = key(base);
    expect(key({ ...base, requestId: 'req-2' })).not.toBe(k);
    expect(key({ ...base, force: true })).not.toBe(k);
    expect(key({ ...base, dataset: { ...base.dataset, versionId: 'v2' } })).not.toBe(k);
  });

  it('identify a hashed dataset by its digest, wherever it lies', () => {
    const a = { pipeline: 'p-1', dataset: { uri: 'file:///a/x.csv', digest: d('c') } };
    const b = { pipeline: 'p-1', dataset: { uri: 'file:///b/y.csv', digest: d('c') } };
    const key = (v: unknown) => idempotencyKeyOf(triggerFromOperatorStart(parseOperatorStart(v)));
    expect(key(a)).toBe(key(b));
  });

  it('refuse an unpinned dataset: the start function must pin it first', () => {
    const s3 = triggerFromOperatorStart(
      parseOperatorStart({ pipeline: 'p-1', dataset: { uri: 's3://bkt/k.csv' } }),
    );
    expect(rejection(() => idempotencyKeyOf(s3)).code).toBe('EVENT_INVALID');
    const file = triggerFromOperatorStart(
      parseOperatorStart({ pipeline: 'p-1', dataset: { uri: 'file:///a.csv' } }),
    );
    expect(rejection(() => idempotencyKeyOf(file)).code).toBe('EVENT_INVALID');
  });
});

describe('run ids and execution names', () => {
  it('derive a run id deterministically from the key', () => {
    const k = d('e');
    expect(runIdOf(k)).toBe(runIdOf(k));
    expect(runIdOf(k)).toMatch(RUN_ID_PATTERN);
    expect(runIdOf(d('f'))).not.toBe(runIdOf(k));
  });

  it('name executions <pipeline>-<kind>-<runId>', () => {
    const plan = planStart({ kind: 'local', pipeline: 'credit-scoring', path: 'a', digest: d('a') });
    expect(plan.executionName).toBe(`credit-scoring-local-${plan.runId}`);
    expect(plan.executionName).toMatch(EXECUTION_NAME_PATTERN);
  });

  it('keep names valid for odd or long pipeline names', () => {
    const name = executionNameOf('ünïcode pipeline/with:colons'.repeat(5), 'operator', 'r-abc');
    expect(name).toMatch(EXECUTION_NAME_PATTERN);
    expect(name.endsWith('-operator-r-abc')).toBe(true);
    expect(executionNameOf('', 's3', 'r-x')).toMatch(EXECUTION_NAME_PATTERN);
  });
});

describe('resolving the pipeline of a landed key', () => {
  const credit = pipeline('credit-scoring');
  const fraud = pipeline('fraud-model', 'shared/');
  const fraudEu = pipeline('fraud-eu', 'shared/eu/');

  it('picks the pipeline whose prefix holds the key, longest prefix first', () => {
    expect(resolvePipelineForKey('credit-scoring/2024.csv', [credit, fraud, fraudEu])?.name).toBe(
      'credit-scoring',
    );
    expect(resolvePipelineForKey('shared/us/a.csv', [credit, fraud, fraudEu])?.name).toBe('fraud-model');
    expect(resolvePipelineForKey('shared/eu/a.csv', [credit, fraud, fraudEu])?.name).toBe('fraud-eu');
  });

  it('returns undefined for a key no pipeline claims (or the bare prefix)', () => {
    expect(resolvePipelineForKey('other/a.csv', [credit])).toBeUndefined();
    expect(resolvePipelineForKey('credit-scoring/', [credit])).toBeUndefined();
  });

  it('refuses two pipelines landing under the same prefix', () => {
    const twin = pipeline('credit-twin', 'credit-scoring/');
    expect(rejection(() => resolvePipelineForKey('credit-scoring/a.csv', [credit, twin])).code).toBe(
      'PIPELINE_INVALID',
    );
  });
});

describe('deciding whether to retrain', () => {
  const inputs = { data: d('1'), code: d('2'), definition: d('3') };
  const last = { runId: 'r-last', inputs };

  it('skips when data, code and definition are unchanged, naming the run', () => {
    expect(decideRetrain({ latestInputs: { ...inputs }, lastSuccessfulRun: last, force: false })).toEqual({
      action: 'skip',
      sinceRunId: 'r-last',
      reason: expect.stringContaining('no change since run r-last'),
    });
  });

  it.each(['data', 'code', 'definition'] as const)('trains when the %s digest changed', (field) => {
    const decision = decideRetrain({
      latestInputs: { ...inputs, [field]: d('9') },
      lastSuccessfulRun: last,
      force: false,
    });
    expect(decision).toEqual({ action: 'train', reason: 'inputs-changed', changed: [field] });
  });

  it('trains when forced, even with nothing changed', () => {
    expect(decideRetrain({ latestInputs: inputs, lastSuccessfulRun: last, force: true })).toEqual({
      action: 'train',
      reason: 'forced',
      changed: [],
    });
  });

  it('trains when nothing succeeded before', () => {
    expect(decideRetrain({ latestInputs: inputs, force: false })).toMatchObject({
      action: 'train',
      reason: 'no-successful-run',
    });
  });
});
