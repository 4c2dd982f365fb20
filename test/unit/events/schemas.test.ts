import { describe, expect, it } from 'vitest';
import {
  datasetLocationOf,
  objectKeyProblem,
  parseControlPlaneInput,
  parseOperatorStart,
  parseS3ObjectCreatedEvent,
  parseScheduledEvent,
  parseSchedulePayload,
  parseTrainingJobStateChangeEvent,
  ruleOf,
  tagsOf,
  trainingJobOutcomeOf,
} from '../../../src/core/events/index.js';
import { fixture, rejection, withField } from './helpers.js';

describe('S3 "Object Created" via EventBridge', () => {
  const doc = fixture('s3-object-created.json');

  it('accepts the documented example and keeps its fields', () => {
    const e = parseS3ObjectCreatedEvent(doc);
    expect(e.detail.bucket.name).toBe('amzn-s3-demo-bucket1');
    expect(e.detail.object).toMatchObject({
      key: 'example-key',
      size: 5,
      etag: 'b1946ac92492d2347c6235b4d2611184',
      'version-id': 'IYV3p45BT0ac8hjHg1houSdS1a.Mro8e',
      sequencer: '617f08299329d189',
    });
    expect(e.detail.reason).toBe('PutObject');
    expect(e.detail.requester).toBe('123456789012');
  });

  it('keeps the key as delivered: EventBridge keys are not URL-encoded, so nothing is decoded', () => {
    const key = 'raw/health-check/2023-08-08T14:03:40.532432.zip';
    expect(parseS3ObjectCreatedEvent(withField(doc, 'detail.object.key', key)).detail.object.key).toBe(key);
    const plus = 'a+b%2Fc.csv';
    expect(parseS3ObjectCreatedEvent(withField(doc, 'detail.object.key', plus)).detail.object.key).toBe(plus);
  });

  it('accepts an unversioned bucket (no version-id)', () => {
    const e = parseS3ObjectCreatedEvent(withField(doc, 'detail.object.version-id', undefined));
    expect(e.detail.object['version-id']).toBeUndefined();
  });

  it('keeps unknown envelope fields (AWS adds fields without notice)', () => {
    const e = parseS3ObjectCreatedEvent({ ...doc, 'replay-name': 'r1' });
    expect(e['replay-name']).toBe('r1');
  });

  describe('when a field is missing or has the wrong type', () => {
    it.each([
      ['detail.object.key', undefined],
      ['detail.object.size', undefined],
      ['detail.object.size', '5'],
      ['detail.object.size', -1],
      ['detail.object.etag', ''],
      ['detail.object.sequencer', 'not-hex'],
      ['detail.bucket.name', 42],
      ['detail.requester', undefined],
      ['time', 'yesterday'],
      ['account', '1234'],
      ['region', 'Mars'],
      ['id', ''],
    ])('rejects %s = %j with EVENT_INVALID naming the field', (path, value) => {
      const err = rejection(() => parseS3ObjectCreatedEvent(withField(doc, path, value)));
      expect(err.code).toBe('EVENT_INVALID');
      expect(err.details?.fields).toEqual([path]);
      expect(err.message).toContain(path);
    });

    it('says "is missing" for an absent field', () => {
      const err = rejection(() => parseS3ObjectCreatedEvent(withField(doc, 'detail.object.size', undefined)));
      expect(err.message).toMatch(/detail\.object\.size: is missing/);
    });

    it('rejects a non-object input', () => {
      expect(rejection(() => parseS3ObjectCreatedEvent('hello')).code).toBe('EVENT_INVALID');
      expect(rejection(() => parseS3ObjectCreatedEvent(null)).code).toBe('EVENT_INVALID');
    });
  });

  it('refuses the documented "Object Deleted" example by its detail-type', () => {
    const err = rejection(() => parseS3ObjectCreatedEvent(fixture('s3-object-deleted.json')));
    expect(err.code).toBe('EVENT_INVALID');
    expect(err.details?.fields).toContain('detail-type');
  });

  describe('when the key carries a path trick', () => {
    it.each([
      ['../../etc/passwd', '..'],
      ['credit/../../secret.csv', '..'],
      ['/etc/passwd', 'absolute'],
      ['credit/a\u0000.csv', 'NUL'],
      ['credit\\..\\x.csv', 'backslash'],
      ['C:/Windows/x.csv', 'drive letter'],
      ['credit/./a.csv', '"."'],
      ['credit//a.csv', 'empty segment'],
      ['credit/', 'folder'],
      ['credit/\u001b[31mred.csv', 'control character'],
      ['', 'empty'],
      ['a'.repeat(1025), '1024 bytes'],
    ])('rejects %j with PATH_REJECTED and the reason (%s)', (key, reason) => {
      const err = rejection(() => parseS3ObjectCreatedEvent(withField(doc, 'detail.object.key', key)));
      expect(err.code).toBe('PATH_REJECTED');
      expect(err.details?.fields).toEqual(['detail.object.key']);
      expect(err.message).toContain(reason);
    });

    it('reports EVENT_INVALID when a path trick comes with other problems', () => {
      const bad = withField(withField(doc, 'detail.object.key', '../x'), 'detail.object.size', 'big');
      const err = rejection(() => parseS3ObjectCreatedEvent(bad));
      expect(err.code).toBe('EVENT_INVALID');
      expect(err.details?.fields).toEqual(
        expect.arrayContaining(['detail.object.key', 'detail.object.size']),
      );
    });

    it('accepts ordinary nested keys and names with dots', () => {
      expect(objectKeyProblem('credit-scoring/2024/01/data.v2.csv')).toBeUndefined();
      expect(objectKeyProblem('a..b/c...csv')).toBeUndefined();
    });
  });
});

describe('EventBridge "Scheduled Event"', () => {
  const doc = fixture('scheduled-event.json');

  it('accepts the documented example; the rule is resources[0]', () => {
    const e = parseScheduledEvent(doc);
    expect(ruleOf(e)).toBe('arn:aws:events:us-east-2:123456789012:rule/my-schedule');
    expect(e.time).toBe('2019-03-01T01:23:45Z');
  });

  it.each([
    ['resources', []],
    ['resources', ['arn:aws:s3:::bucket']],
    ['source', 'aws.s3'],
    ['detail-type', 'Object Created'],
    ['time', undefined],
    ['detail', 'x'],
  ])('rejects %s = %j with EVENT_INVALID naming it', (path, value) => {
    const err = rejection(() => parseScheduledEvent(withField(doc, path, value)));
    expect(err.code).toBe('EVENT_INVALID');
    expect(String(err.details?.fields)).toContain(path);
  });
});

describe('schedule payload (input transformer / local scheduler)', () => {
  const ok = {
    pipeline: 'credit-scoring',
    rule: 'arn:aws:events:us-east-2:123456789012:rule/my-schedule',
    time: '2019-03-01T01:23:45Z',
  };

  it('accepts a minimal payload and defaults force to false', () => {
    expect(parseSchedulePayload(ok)).toEqual({ ...ok, force: false });
  });

  it.each([
    ['pipeline', 'Credit Scoring'],
    ['force', 'yes'],
    ['time', '2019-03-01'],
    ['rule', ''],
  ])('rejects %s = %j', (path, value) => {
    const err = rejection(() => parseSchedulePayload({ ...ok, [path]: value }));
    expect(err.code).toBe('EVENT_INVALID');
    expect(err.details?.fields).toEqual([path]);
  });

  it('refuses unknown keys, so a typo never changes behaviour silently', () => {
    const err = rejection(() => parseSchedulePayload({ ...ok, focre: true }));
    expect(err.code).toBe('EVENT_INVALID');
    expect(err.message).toContain('focre');
  });
});

describe('operator start', () => {
  it('accepts an S3 dataset pinned by VersionId', () => {
    const input = parseOperatorStart({
      pipeline: 'credit-scoring',
      dataset: {
        uri: 's3://landing-bucket/credit-scoring/2024.csv',
        versionId: 'IYV3p45BT0ac8hjHg1houSdS1a.Mro8e',
      },
      requestId: 'req-1',
      actor: 'alice@laptop',
    });
    expect(input.force).toBe(false);
    expect(input.dataset.versionId).toBe('IYV3p45BT0ac8hjHg1houSdS1a.Mro8e');
  });

  it('accepts a local dataset with a digest', () => {
    const digest = `sha256:${'ab'.repeat(32)}`;
    const input = parseOperatorStart({
      pipeline: 'credit-scoring',
      dataset: { uri: 'file:///home/alice/data/credit.csv', digest },
      force: true,
    });
    expect(input.dataset.digest).toBe(digest);
    expect(input.force).toBe(true);
  });

  it.each([
    [{ pipeline: 'credit-scoring' }, 'dataset', 'EVENT_INVALID'],
    [{ pipeline: 'credit-scoring', dataset: { uri: 'http://x/y' } }, 'dataset.uri', 'EVENT_INVALID'],
    [
      { pipeline: 'credit-scoring', dataset: { uri: 's3://b/../etc/passwd' } },
      'dataset.uri',
      'EVENT_INVALID',
    ],
    [
      { pipeline: 'credit-scoring', dataset: { uri: 's3://bucket-1/../etc/passwd' } },
      'dataset.uri',
      'PATH_REJECTED',
    ],
    [
      { pipeline: 'credit-scoring', dataset: { uri: 'file://relative/x.csv' } },
      'dataset.uri',
      'PATH_REJECTED',
    ],
    [{ pipeline: 'credit-scoring', dataset: { uri: 'file:///a/../b' } }, 'dataset.uri', 'PATH_REJECTED'],
    [
      { pipeline: 'credit-scoring', dataset: { uri: 'file:///a/b', versionId: 'v1' } },
      'dataset.versionId',
      'EVENT_INVALID',
    ],
    [
      { pipeline: 'credit-scoring', dataset: { uri: 'file:///a/b', digest: 'md5:abc' } },
      'dataset.digest',
      'EVENT_INVALID',
    ],
    [
      { pipeline: 'credit-scoring', dataset: { uri: 's3://bucket-1/k' }, force: 'yes' },
      'force',
      'EVENT_INVALID',
    ],
    [
      { pipeline: 'credit-scoring', dataset: { uri: 's3://bucket-1/k' }, requestId: 'a b' },
      'requestId',
      'EVENT_INVALID',
    ],
    [
      { pipeline: 'credit-scoring', dataset: { uri: 's3://bucket-1/k' }, focre: true },
      '(top level)',
      'EVENT_INVALID',
    ],
  ])('rejects %j at %s with %s', (value, field, code) => {
    const err = rejection(() => parseOperatorStart(value));
    expect(err.code).toBe(code);
    expect(err.details?.fields).toContain(field);
  });

  it('splits dataset URIs into locations', () => {
    expect(datasetLocationOf('s3://bucket-1/a/b.csv')).toEqual({
      location: { scheme: 's3', bucket: 'bucket-1', key: 'a/b.csv' },
    });
    expect(datasetLocationOf('file:///tmp/my%20data')).toEqual({
      location: { scheme: 'file', path: '/tmp/my data' },
    });
  });
});

describe('SageMaker "Training Job State Change"', () => {
  const doc = fixture('sagemaker-training-job-state-change.json');

  it('accepts the documented example', () => {
    const e = parseTrainingJobStateChangeEvent(doc);
    expect(e.detail.TrainingJobName).toBe('89c96cc8-dded-4739-afcc-6f1dc936701d');
    expect(e.detail.TrainingJobStatus).toBe('Completed');
    expect(tagsOf(e)).toEqual({});
    expect(trainingJobOutcomeOf(e)).toEqual({
      jobName: '89c96cc8-dded-4739-afcc-6f1dc936701d',
      status: 'Completed',
    });
  });

  it('reports a failure reason and model artifacts', () => {
    const failed = withField(
      withField(doc, 'detail.TrainingJobStatus', 'Failed'),
      'detail.FailureReason',
      'AlgorithmError: out of memory',
    );
    expect(trainingJobOutcomeOf(parseTrainingJobStateChangeEvent(failed))).toMatchObject({
      status: 'Failed',
      failureReason: 'AlgorithmError: out of memory',
    });
    const done = withField(doc, 'detail.ModelArtifacts', {
      S3ModelArtifacts: 's3://artifacts/vt-1/output/model.tar.gz',
    });
    expect(trainingJobOutcomeOf(parseTrainingJobStateChangeEvent(done))?.modelArtifactsUri).toBe(
      's3://artifacts/vt-1/output/model.tar.gz',
    );
  });

  it('has no outcome while the job is in progress', () => {
    const running = parseTrainingJobStateChangeEvent(
      withField(doc, 'detail.TrainingJobStatus', 'InProgress'),
    );
    expect(trainingJobOutcomeOf(running)).toBeUndefined();
  });

  it('reads tags given as a Key/Value list too', () => {
    const e = parseTrainingJobStateChangeEvent(
      withField(doc, 'detail.Tags', [{ Key: 'run', Value: 'r-abc' }]),
    );
    expect(tagsOf(e)).toEqual({ run: 'r-abc' });
  });

  it.each([
    ['detail.TrainingJobName', undefined],
    ['detail.TrainingJobName', 'has spaces'],
    ['detail.TrainingJobStatus', 'Exploded'],
    ['detail.FailureReason', 7],
    ['detail.ModelArtifacts', { S3ModelArtifacts: 'model.tar.gz' }],
    ['source', 'aws.s3'],
  ])('rejects %s = %j with EVENT_INVALID naming the field', (path, value) => {
    const err = rejection(() => parseTrainingJobStateChangeEvent(withField(doc, path, value)));
    expect(err.code).toBe('EVENT_INVALID');
    expect(String(err.details?.fields)).toContain(path);
  });
});

describe('recognising any control-plane input', () => {
  it('routes each documented example to its schema', () => {
    expect(parseControlPlaneInput(fixture('s3-object-created.json')).kind).toBe('s3-object-created');
    expect(parseControlPlaneInput(fixture('scheduled-event.json')).kind).toBe('scheduled-event');
    expect(parseControlPlaneInput(fixture('sagemaker-training-job-state-change.json')).kind).toBe(
      'training-state-change',
    );
    expect(
      parseControlPlaneInput({
        pipeline: 'credit-scoring',
        dataset: { uri: 's3://bucket-1/k', versionId: 'v' },
      }).kind,
    ).toBe('operator-start');
    expect(
      parseControlPlaneInput({
        pipeline: 'credit-scoring',
        rule: 'local-schedule/x',
        time: '2024-01-01T00:00:00Z',
      }).kind,
    ).toBe('schedule-payload');
  });

  it.each([
    ['an Object Deleted event', fixture('s3-object-deleted.json')],
    ['an unrelated event', { source: 'aws.ec2', 'detail-type': 'EC2 Instance State-change Notification' }],
    ['a string', 'start please'],
    ['an empty object', {}],
  ])('rejects %s with EVENT_INVALID, never another exception', (_, value) => {
    expect(rejection(() => parseControlPlaneInput(value)).code).toBe('EVENT_INVALID');
  });
});
