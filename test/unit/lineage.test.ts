import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule, { type FormatsPlugin } from 'ajv-formats';
import { describe, expect, it } from 'vitest';
import { EventBridgeLineageSink } from '../../src/aws/lineage.js';
import { digestOf } from '../../src/core/digest.js';
import {
  buildRunEvent,
  datasetNameOf,
  lineageRunId,
  OPENLINEAGE_SCHEMA_URL,
  type RunEvent,
  runEndEvent,
} from '../../src/core/lineage.js';

// ajv-formats is CommonJS: under NodeNext its default import is module.exports, which carries `.default`.
const addFormats = ((addFormatsModule as unknown as { default?: FormatsPlugin }).default ??
  addFormatsModule) as FormatsPlugin;

const SCHEMAS = join(import.meta.dirname, '..', '..', 'schemas', 'openlineage');
const load = (name: string) =>
  JSON.parse(readFileSync(join(SCHEMAS, name), 'utf8')) as Record<string, unknown>;

/** The published OpenLineage 2-0-2 schema plus the facet schemas our events name. */
function validator() {
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  addFormats(ajv);
  for (const f of [
    'OpenLineage.json',
    'DatasetVersionDatasetFacet.json',
    'ErrorMessageRunFacet.json',
    'NominalTimeRunFacet.json',
    'JobTypeJobFacet.json',
    'VeritrailDigestDatasetFacet.json',
  ]) {
    ajv.addSchema(load(f));
  }
  const runEvent = ajv.getSchema('https://openlineage.io/spec/2-0-2/OpenLineage.json');
  const facet = (id: string, name: string) => {
    const v = ajv.getSchema(id);
    if (!v) throw new Error(`schema ${id} not loaded`);
    return (value: unknown) => v({ [name]: value });
  };
  if (!runEvent) throw new Error('OpenLineage schema not loaded');
  return {
    runEvent,
    version: facet('https://openlineage.io/spec/facets/1-0-1/DatasetVersionDatasetFacet.json', 'version'),
    digest: facet(
      'https://veritrail.dev/spec/openlineage/1-0-0/VeritrailDigestDatasetFacet.json',
      'veritrail_digest',
    ),
    errorMessage: facet('https://openlineage.io/spec/facets/1-0-1/ErrorMessageRunFacet.json', 'errorMessage'),
    nominalTime: facet('https://openlineage.io/spec/facets/1-0-1/NominalTimeRunFacet.json', 'nominalTime'),
    jobType: facet('https://openlineage.io/spec/facets/2-0-4/JobTypeJobFacet.json', 'jobType'),
  };
}

const v = validator();

function expectValid(event: RunEvent): void {
  const ok = v.runEvent(event);
  expect(v.runEvent.errors ?? []).toEqual([]);
  expect(ok).toBe(true);
  // Each facet against its own published schema, too (the RunEvent schema only checks BaseFacet).
  expect(v.jobType(event.job.facets?.jobType)).toBe(true);
  for (const d of [...event.inputs, ...event.outputs]) {
    if (d.facets?.version) expect(v.version(d.facets.version)).toBe(true);
    if (d.facets?.veritrail_digest) expect(v.digest(d.facets.veritrail_digest)).toBe(true);
  }
  if (event.run.facets?.errorMessage) expect(v.errorMessage(event.run.facets.errorMessage)).toBe(true);
  if (event.run.facets?.nominalTime) expect(v.nominalTime(event.run.facets.nominalTime)).toBe(true);
}

const raw = digestOf('raw bytes');
const run = {
  runId: 'r-abcdefghijklmnopqrstuvwxyz',
  pipeline: 'credit-scoring',
  pipelineDigest: digestOf('definition'),
  status: 'SUCCEEDED',
  trigger: 'landing',
  idempotencyKey: digestOf('key'),
  dataset: { uri: 'file:///srv/landing/credit-scoring/applications.csv' },
  facts: {
    rawDigest: raw,
    codeDigest: digestOf('code'),
    processedDigest: digestOf('processed'),
    modelDigest: digestOf('model'),
  },
};

describe('OpenLineage run ids', () => {
  it('are RFC 9562 UUIDs (version 8, variant 10), the same for the same run and different otherwise', () => {
    const id = lineageRunId(run.runId);
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(lineageRunId(run.runId)).toBe(id);
    expect(lineageRunId('r-bbcdefghijklmnopqrstuvwxyz')).not.toBe(id);
  });
});

describe('dataset names', () => {
  it('follow the OpenLineage naming conventions for S3 and local files', () => {
    expect(datasetNameOf('s3://landing-bucket/credit-scoring/a.csv')).toEqual({
      namespace: 's3://landing-bucket',
      name: 'credit-scoring/a.csv',
    });
    expect(datasetNameOf('file:///srv/data/a%20b.csv')).toEqual({
      namespace: 'file',
      name: '/srv/data/a b.csv',
    });
  });
});

describe('a START event', () => {
  const event = buildRunEvent({
    eventType: 'START',
    eventTime: new Date('2024-05-06T03:00:05.123Z'),
    runId: run.runId,
    pipeline: 'credit-scoring',
    namespace: 'veritrail.local',
    inputs: [{ ...datasetNameOf(run.dataset.uri), uri: run.dataset.uri, digest: raw }],
    trigger: { type: 'schedule', idempotencyKey: run.idempotencyKey },
    nominalTime: '2024-05-06T03:00:00.000Z',
  });

  it('validates against the published RunEvent schema', () => expectValid(event));

  it('carries the input digest as a version and a digest facet', () => {
    expect(event.schemaURL).toBe(OPENLINEAGE_SCHEMA_URL);
    const facets = event.inputs[0]?.facets;
    expect(facets?.version?.datasetVersion).toBe(raw);
    expect(facets?.veritrail_digest?.digest).toEqual({ sha256: raw.slice(7) });
  });
});

describe('the end event of a run', () => {
  it('is COMPLETE for a SUCCEEDED run, with digests of raw data, code, processed data and model', () => {
    const event = runEndEvent({ run, namespace: 'veritrail.local', eventTime: '2024-05-06T03:01:00Z' });
    expectValid(event);
    expect(event.eventType).toBe('COMPLETE');
    expect(event.run.runId).toBe(lineageRunId(run.runId));
    const digests = (ds: RunEvent['inputs']) => ds.map((d) => d.facets?.version?.datasetVersion);
    expect(digests(event.inputs)).toEqual([raw, run.facts.codeDigest]);
    expect(digests(event.outputs)).toEqual([run.facts.processedDigest, run.facts.modelDigest]);
    expect(event.outputs.map((d) => d.name)).toEqual(['credit-scoring/processed', 'credit-scoring/model']);
  });

  it('is COMPLETE for a REJECTED run: the gate refusing is a result', () => {
    expect(
      runEndEvent({ run: { ...run, status: 'REJECTED' }, namespace: 'n', eventTime: new Date() }).eventType,
    ).toBe('COMPLETE');
  });

  it('is FAIL with the error for a FAILED run, and lists only what exists', () => {
    const failed = {
      ...run,
      status: 'FAILED',
      facts: { rawDigest: raw },
      error: { code: 'DATASET_SCHEMA', message: 'column income is missing' },
    };
    const event = runEndEvent({
      run: failed,
      namespace: 'veritrail.local',
      eventTime: '2024-05-06T03:01:00Z',
    });
    expectValid(event);
    expect(event.eventType).toBe('FAIL');
    expect(event.run.facets?.errorMessage?.message).toBe('DATASET_SCHEMA: column income is missing');
    expect(event.outputs).toEqual([]);
  });

  it('names an S3 input by VersionId before it is hashed', () => {
    const s3 = {
      ...run,
      dataset: { uri: 's3://landing/credit-scoring/a.csv', versionId: 'v1' },
      facts: {},
      status: 'FAILED',
    };
    const event = runEndEvent({ run: s3, namespace: 'veritrail.aws/x', eventTime: '2024-05-06T03:01:00Z' });
    expectValid(event);
    expect(event.inputs[0]?.facets?.version?.datasetVersion).toBe('v1');
    expect(event.inputs[0]?.facets?.veritrail_digest).toBeUndefined();
  });
});

describe('the schema check itself', () => {
  it('refuses an event without producer, or with a run id that is not a UUID', () => {
    const good = runEndEvent({ run, namespace: 'n', eventTime: '2024-05-06T03:01:00Z' });
    const { producer: _producer, ...noProducer } = good;
    expect(v.runEvent(noProducer)).toBe(false);
    expect(v.runEvent({ ...good, run: { runId: run.runId } })).toBe(false);
    expect(v.digest({ _producer: 'https://x', _schemaURL: 'https://x', digest: { sha256: 'nothex' } })).toBe(
      false,
    );
  });
});

describe('lineage on EventBridge', () => {
  it('puts each RunEvent as the detail of an "OpenLineage RunEvent"', async () => {
    const published: unknown[] = [];
    const sink = new EventBridgeLineageSink({ publish: async (events) => void published.push(...events) });
    const event = runEndEvent({ run, namespace: 'n', eventTime: '2024-05-06T03:01:00Z' });
    await sink.emit(event);
    expect(published).toEqual([
      { detailType: 'OpenLineage RunEvent', detail: event, time: new Date('2024-05-06T03:01:00Z') },
    ]);
  });
});
