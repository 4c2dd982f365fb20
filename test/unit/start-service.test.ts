import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { codeDigestOf } from '../../src/app/start/retrain.js';
import { type StartDeps, type StartPipeline, StartService } from '../../src/app/start/service.js';
import { type ObjectAuditLog, openAuditLog } from '../../src/audit/log.js';
import { putBytesCas, putJsonCas, readObject } from '../../src/cas.js';
import {
  buildGateStatement,
  buildStatement,
  RETRAIN_SKIP_PREDICATE_TYPE,
  resource,
  serializeBundle,
  signStatement,
  verifyBundle,
} from '../../src/core/attest/index.js';
import { type Digest, digestOf } from '../../src/core/digest.js';
import { VeritrailError } from '../../src/core/errors.js';
import type { ExecState } from '../../src/core/exec-state.js';
import { DEFAULT_POLICY_TEXT } from '../../src/core/gate/default-policy.js';
import { canonicalDigest } from '../../src/core/jcs.js';
import { parsePipelineDefinition, trainerCodeBundle } from '../../src/core/pipeline.js';
import { applyInputTransformer, scheduleInputTransformer } from '../../src/core/rules.js';
import { assertTransition, RunExistsError, type RunStatus } from '../../src/core/run.js';
import type { StartOutcome } from '../../src/core/start.js';
import { openFileSigner } from '../../src/local/file-signer.js';
import { FsDatasetSource } from '../../src/local/fs-dataset-source.js';
import { FsObjectStore } from '../../src/local/fs-object-store.js';
import type {
  AuditEntry,
  DatasetFile,
  DatasetSource,
  LandingIndex,
  NewRun,
  PinnedDataset,
  RunRecord,
  RunStore,
  Signer,
} from '../../src/ports.js';
import type { Runtime } from '../../src/runtime.js';
import { checkCode } from '../../src/steps/check-code.js';
import { hashListedBatch } from '../../src/steps/hash-batch.js';
import { hashDataset } from '../../src/steps/hash-dataset.js';
import { listDataset } from '../../src/steps/list-dataset.js';
import { hashPath } from '../../src/verify/hash-path.js';
import { exportMapRun } from '../helpers/map-results.js';
import { fixture, withField } from './events/helpers.js';

const EXAMPLE = join(import.meta.dirname, '..', '..', 'examples', 'credit-scoring', 'pipeline.json');
const BUCKET = 'veritrail-landing-test';

/** An in-memory run store with the port's conditional create and legal transitions. */
class MemRunStore implements RunStore {
  readonly items = new Map<string, RunRecord>();

  async create(run: NewRun): Promise<RunRecord> {
    // Yield first, as a network store would: concurrent creates really race.
    await Promise.resolve();
    const existing = this.items.get(run.runId);
    if (existing !== undefined) throw new RunExistsError(structuredClone(existing));
    const rec: RunRecord = { ...run, status: 'PENDING', updatedAt: run.createdAt, steps: [], facts: {} };
    this.items.set(run.runId, rec);
    return structuredClone(rec);
  }
  async get(runId: string): Promise<RunRecord | undefined> {
    const r = this.items.get(runId);
    return r === undefined ? undefined : structuredClone(r);
  }
  async transition(
    runId: string,
    to: RunStatus,
    patch?: { facts?: Record<string, unknown> },
  ): Promise<RunRecord> {
    const r = this.items.get(runId);
    if (r === undefined) throw new VeritrailError('RUN_NOT_FOUND', runId);
    assertTransition(runId, r.status, to);
    r.status = to;
    r.facts = { ...r.facts, ...patch?.facts };
    return structuredClone(r);
  }
  async recordStep(): Promise<void> {}
  async list(options: { pipeline?: string } = {}): Promise<RunRecord[]> {
    return [...this.items.values()].filter((r) => !options.pipeline || r.pipeline === options.pipeline);
  }
}

interface Harness {
  dir: string;
  runs: MemRunStore;
  objects: FsObjectStore;
  audit: ObjectAuditLog;
  signer: Signer;
  launched: ExecState[];
  service: StartService;
  pipeline: StartPipeline;
  latest: PinnedDataset | undefined;
}

function awsPipeline(mutate: (d: Record<string, unknown>) => void = () => {}): StartPipeline {
  const raw = JSON.parse(readFileSync(EXAMPLE, 'utf8')) as Record<string, unknown>;
  mutate(raw);
  const def = parsePipelineDefinition(raw);
  return { def, digest: canonicalDigest(def) };
}

async function harness(dir: string, options: Partial<StartDeps> = {}): Promise<Harness> {
  const objects = new FsObjectStore(join(dir, 'objects'));
  const signer = await openFileSigner(join(dir, 'keys', 'signing.key'));
  const audit = openAuditLog({ store: objects, bucket: 'audit' });
  const runs = new MemRunStore();
  const launched: ExecState[] = [];
  const started = new Set<string>();
  const h: Harness = {
    dir,
    runs,
    objects,
    audit,
    signer,
    launched,
    pipeline: awsPipeline(),
    latest: undefined,
    service: undefined as unknown as StartService,
  };
  const landing: LandingIndex = { latest: async () => h.latest };
  h.service = new StartService({
    runs,
    objects,
    datasets: new FsDatasetSource(),
    audit,
    signer,
    actor: 'test@host',
    now: () => new Date('2024-05-06T03:00:05Z'),
    pipelines: [h.pipeline],
    landingBucket: BUCKET,
    landing,
    // Like Step Functions: one execution per name, later starts report "already started".
    launch: async (input, name) => {
      if (started.has(name)) return { alreadyStarted: true };
      started.add(name);
      launched.push(input);
      return { alreadyStarted: false };
    },
    ...options,
  });
  return h;
}

async function entries(audit: ObjectAuditLog): Promise<AuditEntry[]> {
  const out: AuditEntry[] = [];
  for await (const e of audit.entries()) out.push(e);
  return out;
}

/** The documented S3 example, moved into the test's landing bucket under the pipeline's prefix. */
function s3Event(key = 'credit-scoring/applications.csv', versionId = 'IYV3p45BT0ac8hjHg1houSdS1a.Mro8e') {
  let e = fixture('s3-object-created.json');
  e = withField(e, 'detail.bucket.name', BUCKET);
  e = withField(e, 'detail.object.key', key);
  return withField(e, 'detail.object.version-id', versionId);
}

let dir: string;
let h: Harness;
/** The digest CheckCode records for the example's training code, as the deployment bundles it. */
let codeDigest: Digest;
beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'veritrail-start-'));
  // On AWS the start function hashes the training code the stack copied into its bundle
  // (stacks/Pipeline.ts trainingCodeBundleFiles): lay it out the same way.
  const def = awsPipeline().def;
  for (const { from, to } of trainerCodeBundle(def)) {
    cpSync(join(dirname(EXAMPLE), from), join(dir, 'bundle', to), { recursive: true });
  }
  process.env.VERITRAIL_CODE_DIR = join(dir, 'bundle', 'code');
  codeDigest = (await hashPath(join(dir, 'bundle', 'code', def.name, def.trainer.code))).digest;
  h = await harness(dir);
});
afterEach(() => {
  delete process.env.VERITRAIL_CODE_DIR;
  rmSync(dir, { recursive: true, force: true });
});

describe('when the same S3 upload is delivered 100 times concurrently', () => {
  it('starts exactly one run and launches one execution', async () => {
    const event = s3Event();
    const outcomes = await Promise.all(
      Array.from({ length: 100 }, () => h.service.handle(structuredClone(event))),
    );
    const started = outcomes.filter((o) => o.status === 'started');
    expect(started).toHaveLength(1);
    expect(outcomes.filter((o) => o.status === 'duplicate')).toHaveLength(99);
    expect(h.runs.items.size).toBe(1);
    expect(h.launched).toHaveLength(1);
    const runIds = new Set(outcomes.map((o) => ('runId' in o ? o.runId : '')));
    expect(runIds.size).toBe(1);
    const [run] = [...h.runs.items.values()];
    expect(run?.dataset).toEqual({
      uri: `s3://${BUCKET}/credit-scoring/applications.csv`,
      versionId: 'IYV3p45BT0ac8hjHg1houSdS1a.Mro8e',
    });
    expect(run?.trigger).toBe('s3');
    // The identical redeliveries add one duplicate entry, not 99.
    const log = await entries(h.audit);
    expect(log.filter((e) => e.type === 'run.requested')).toHaveLength(1);
    expect(log.filter((e) => e.type === 'trigger.duplicate')).toHaveLength(1);
  });

  it('pins the execution input to the event version and a valid execution name', async () => {
    const o = await h.service.handle(s3Event());
    expect(o.status).toBe('started');
    if (o.status !== 'started') return;
    expect(o.executionName).toMatch(/^credit-scoring-s3-r-[a-z2-7]{26}$/);
    expect(h.launched[0]?.dataset.versionId).toBe('IYV3p45BT0ac8hjHg1houSdS1a.Mro8e');
    expect(h.launched[0]?.pipeline).toEqual({ name: 'credit-scoring', digest: h.pipeline.digest });
    // The definition is stored content-addressed for RegisterRun to read back.
    expect(await h.objects.head('artifacts', `sha256/${h.pipeline.digest.slice(7)}`)).toBeDefined();
  });
});

describe('when deliveries arrive out of order or late', () => {
  it('gives each object version its own run, whatever the order', async () => {
    const v2 = await h.service.handle(s3Event('credit-scoring/a.csv', 'v2'));
    const v1 = await h.service.handle(s3Event('credit-scoring/a.csv', 'v1'));
    expect(v1.status).toBe('started');
    expect(v2.status).toBe('started');
    const versions = [...h.runs.items.values()].map((r) => r.dataset.versionId).sort();
    expect(versions).toEqual(['v1', 'v2']);
  });

  it('treats a replay with a new event id as the same trigger', async () => {
    await h.service.handle(s3Event());
    const replay = withField(s3Event(), 'id', 'a-replayed-event-id');
    const o = await h.service.handle(replay);
    expect(o.status).toBe('duplicate');
    expect(h.launched).toHaveLength(1);
  });

  it('starts nothing when a late copy arrives after the run has ended', async () => {
    const first = await h.service.handle(s3Event());
    if (first.status !== 'started') throw new Error('not started');
    await h.runs.transition(first.runId, 'RUNNING');
    await h.runs.transition(first.runId, 'SUCCEEDED');
    const late = await h.service.handle(s3Event());
    expect(late).toMatchObject({ status: 'duplicate', runStatus: 'SUCCEEDED', relaunched: false });
    expect(h.launched).toHaveLength(1);
  });

  it('answers a delivery that lost the race to record the run from the run the refusal carries', async () => {
    const first = await h.service.handle(s3Event());
    if (first.status !== 'started') throw new Error('not started');
    await h.runs.transition(first.runId, 'RUNNING');
    // This delivery read before the first one recorded the run: it finds out from the refusal.
    const read = h.runs.get.bind(h.runs);
    let reads = 0;
    h.runs.get = async (runId) => (++reads === 1 ? undefined : read(runId));
    const late = await h.service.handle(s3Event());
    expect(late).toMatchObject({ status: 'duplicate', runId: first.runId, runStatus: 'RUNNING' });
    expect(reads).toBe(1);
    expect(h.launched).toHaveLength(1);
  });

  it('launches a run left PENDING by a crash when the event is redelivered', async () => {
    let fail = true;
    const crashy = await harness(join(dir, 'crash'), {
      launch: async () => {
        if (fail) throw new VeritrailError('TRANSIENT', 'Step Functions throttled');
        return { alreadyStarted: false };
      },
    });
    await expect(crashy.service.handle(s3Event())).rejects.toMatchObject({ code: 'TRANSIENT' });
    expect([...crashy.runs.items.values()][0]?.status).toBe('PENDING');
    fail = false;
    expect(await crashy.service.handle(s3Event())).toMatchObject({ status: 'duplicate', relaunched: true });
  });
});

describe('when an event is malformed or cannot be routed', () => {
  const bad: [string, unknown, string][] = [
    ['not an object', 'hello', 'EVENT_INVALID'],
    ['null', null, 'EVENT_INVALID'],
    [
      'an unknown source',
      { source: 'aws.ec2', 'detail-type': 'EC2 Instance State-change Notification' },
      'EVENT_INVALID',
    ],
    [
      'S3 event without detail',
      withField(fixture('s3-object-created.json'), 'detail', undefined),
      'EVENT_INVALID',
    ],
    ['a key that climbs out of its folder', s3Event('credit-scoring/../../etc/passwd'), 'PATH_REJECTED'],
    ['a key no pipeline lands under', s3Event('fraud/x.csv'), 'EVENT_INVALID'],
    ['another bucket', withField(s3Event(), 'detail.bucket.name', 'someone-elses-bucket'), 'EVENT_INVALID'],
    [
      'an operator start with a typo',
      { pipeline: 'credit-scoring', dataset: { uri: 's3://b/k' }, focre: true },
      'EVENT_INVALID',
    ],
    [
      'an operator start for an unknown pipeline',
      { pipeline: 'fraud-model', dataset: { uri: 's3://bkt/k', versionId: 'v' } },
      'EVENT_INVALID',
    ],
    ['a schedule payload without time', { pipeline: 'credit-scoring', rule: 'r' }, 'EVENT_INVALID'],
  ];
  it.each(bad)('rejects %s, records why, and starts nothing', async (_name, raw, code) => {
    const o = await h.service.handle(raw);
    expect(o.status).toBe('rejected');
    if (o.status === 'rejected') expect(o.error.code).toBe(code);
    expect(h.runs.items.size).toBe(0);
    expect(h.launched).toHaveLength(0);
    const log = await entries(h.audit);
    expect(log).toHaveLength(1);
    expect(log[0]).toMatchObject({ type: 'trigger.rejected', outcome: 'refused', step: 'Start' });
    expect(log[0]?.detail?.error).toMatchObject({ code });
  });

  it('records the same malformed event delivered twice once', async () => {
    await h.service.handle({ source: 'aws.s3', 'detail-type': 'Object Created' });
    await h.service.handle({ source: 'aws.s3', 'detail-type': 'Object Created' });
    expect(await entries(h.audit)).toHaveLength(1);
  });

  it('ignores a SageMaker state change (the Train step handles it) without starting anything', async () => {
    const o = await h.service.handle(fixture('sagemaker-training-job-state-change.json'));
    expect(o.status).toBe('ignored');
    expect(h.runs.items.size).toBe(0);
  });
});

describe('when an operator starts a local dataset', () => {
  it('pins it by content digest, and a double-click starts one run', async () => {
    const file = join(dir, 'data.csv');
    writeFileSync(file, 'a,b\n1,2\n');
    const start = { pipeline: 'credit-scoring', dataset: { uri: pathToFileURL(file).href } };
    const [a, b] = await Promise.all([h.service.handle(start), h.service.handle(start)]);
    expect([a?.status, b?.status].sort()).toEqual(['duplicate', 'started']);
    const [run] = [...h.runs.items.values()];
    expect(run?.dataset.digest).toBe(digestOf('a,b\n1,2\n'));
    expect(run?.trigger).toBe('operator');
  });
});

// ───────────────────────────── scheduled retraining ─────────────────────────────

function schedulePayload(force = false, time = '2024-05-06T03:00:00Z'): unknown {
  const rule = 'arn:aws:events:eu-west-1:123456789012:rule/veritrail-credit-scoring-retrain';
  const event = withField(withField(fixture('scheduled-event.json'), 'time', time), 'resources', [rule]);
  return applyInputTransformer(scheduleInputTransformer('credit-scoring', force), event, {
    arn: rule,
    name: 'r',
  });
}

/** A previous SUCCEEDED run with the evidence a skip names: model digest and a signed provenance bundle. */
async function succeededRun(
  x: Harness,
  dataset: PinnedDataset,
  rawDigest: Digest,
  options: { decision?: 'allow' | 'deny'; policyDigest?: Digest | null } = {},
): Promise<RunRecord> {
  const statement = buildStatement(
    [resource('credit-scoring/model.tar.gz', digestOf('model'))],
    'https://slsa.dev/provenance/v1',
    {
      buildDefinition: {},
    },
  );
  const signed = await signStatement(statement, x.signer);
  const bytes = new TextEncoder().encode(serializeBundle(signed.bundle));
  const stored = await putBytesCas(x.objects, bytes, digestOf(bytes));
  // The signed gate decision of that run: what "SUCCEEDED" must agree with (signed truth).
  const gate = await signStatement(
    buildGateStatement({
      model: { name: 'credit-scoring/model.tar.gz', digest: digestOf('model') },
      runId: 'r-previousrunaaaaaaaaaaaaaaaa',
      decision: options.decision ?? 'allow',
      reasons: [],
      policy: { digest: digestOf('decision') },
      fairnessStatement: digestOf('fairness'),
      decidedOn: '2024-05-01T00:09:00Z',
    }),
    x.signer,
  );
  const gateBytes = new TextEncoder().encode(serializeBundle(gate.bundle));
  const gateStored = await putBytesCas(x.objects, gateBytes, digestOf(gateBytes));
  const policyDigest =
    options.policyDigest === undefined ? digestOf(DEFAULT_POLICY_TEXT) : options.policyDigest;
  const run: RunRecord = {
    runId: 'r-previousrunaaaaaaaaaaaaaaaa',
    pipeline: 'credit-scoring',
    pipelineDigest: x.pipeline.digest,
    status: 'SUCCEEDED',
    trigger: 's3',
    idempotencyKey: digestOf('k'),
    dataset: { uri: dataset.uri, ...(dataset.versionId ? { versionId: dataset.versionId } : {}) },
    createdAt: '2024-05-01T00:00:00Z',
    updatedAt: '2024-05-01T00:10:00Z',
    steps: [],
    facts: {
      rawDigest,
      codeDigest,
      modelDigest: digestOf('model'),
      bundles: { provenance: stored.key, gate: gateStored.key },
      ...(policyDigest ? { policyDigest } : {}),
      finishedAt: '2024-05-01T00:10:00Z',
    },
  };
  x.runs.items.set(run.runId, run);
  return run;
}

describe('when a schedule fires and nothing changed since the last successful run', () => {
  const latest = { uri: `s3://${BUCKET}/credit-scoring/applications.csv`, versionId: 'v7' };

  it('trains when the last run recorded no gate policy digest (its identity cannot be shown unchanged)', async () => {
    h.latest = latest;
    await succeededRun(h, latest, digestOf('raw'), { policyDigest: null });
    const o = await h.service.handle(schedulePayload());
    expect(o.status).toBe('started');
  });

  it('refuses with STATE_TAMPERED when the run store says SUCCEEDED but the signed gate decision was deny', async () => {
    h.latest = latest;
    await succeededRun(h, latest, digestOf('raw'), { decision: 'deny' });
    const o = await h.service.handle(schedulePayload()).catch((e: unknown) => e);
    const code = (o as { error?: { code?: string } }).error?.code ?? (o as { code?: string }).code;
    expect(code).toBe('STATE_TAMPERED');
  });

  it('records a signed "no change since run X" statement and an audit entry instead of training', async () => {
    h.latest = latest;
    const prev = await succeededRun(h, latest, digestOf('raw'));
    const o = await h.service.handle(schedulePayload());
    expect(o.status).toBe('skipped');
    if (o.status !== 'skipped') return;
    expect(o.sinceRunId).toBe(prev.runId);
    expect(h.launched).toHaveLength(0);
    expect(h.runs.items.size).toBe(1);

    const bundle = JSON.parse(
      readFileSync(join(dir, 'objects', 'artifacts', o.bundleKey), 'utf8'),
    ) as unknown;
    const verified = verifyBundle(bundle, await h.signer.publicKeyPem(), {
      predicateType: RETRAIN_SKIP_PREDICATE_TYPE,
    });
    const predicate = verified.statement.predicate as {
      previousRunId: string;
      runId: string;
      unchanged: { name: string }[];
    };
    expect(predicate.previousRunId).toBe(prev.runId);
    expect(predicate.runId).toBe(o.runId);
    expect(predicate.unchanged.map((u) => u.name)).toEqual([
      'raw-data',
      'training-code',
      'pipeline-definition',
      'gate-policy',
    ]);
    expect(verified.statement.subject[0]?.digest.sha256).toBe(digestOf('model').slice(7));

    const skips = (await entries(h.audit)).filter((e) => e.type === 'retrain.skipped');
    expect(skips).toHaveLength(1);
    expect(skips[0]?.detail).toMatchObject({ sinceRunId: prev.runId, bundleKey: o.bundleKey });
  });

  it('answers a redelivered firing from its first decision', async () => {
    h.latest = latest;
    await succeededRun(h, latest, digestOf('raw'));
    const first = await h.service.handle(schedulePayload());
    const again = await Promise.all([
      h.service.handle(schedulePayload()),
      h.service.handle(schedulePayload()),
    ]);
    expect(first.status).toBe('skipped');
    expect(again.map((o) => o.status)).toEqual(['duplicate', 'duplicate']);
    expect((await entries(h.audit)).filter((e) => e.type === 'retrain.skipped')).toHaveLength(1);
  });

  it('trains anyway when the schedule says force', async () => {
    h.latest = latest;
    await succeededRun(h, latest, digestOf('raw'));
    const o = await h.service.handle(schedulePayload(true));
    expect(o.status).toBe('started');
    expect(h.launched[0]?.trigger.type).toBe('schedule');
    expect(h.launched[0]?.dataset).toEqual(latest);
  });

  it('trains when the definition changed', async () => {
    h.latest = latest;
    const prev = await succeededRun(h, latest, digestOf('raw'));
    // succeededRun stores this very object: the earlier run was made with another definition.
    prev.pipelineDigest = digestOf('older definition');
    expect((await h.service.handle(schedulePayload())).status).toBe('started');
  });

  it('trains when the deployed training code changed (the copy bundled into the function)', async () => {
    h.latest = latest;
    await succeededRun(h, latest, digestOf('raw'));
    const def = h.pipeline.def;
    writeFileSync(join(dir, 'bundle', 'code', def.name, def.trainer.code, 'extra.mjs'), 'export {};\n');
    expect((await h.service.handle(schedulePayload())).status).toBe('started');
  });

  it('trains when no run has succeeded yet, and refuses when there is no data at all', async () => {
    h.latest = undefined;
    const none = await h.service.handle(schedulePayload());
    expect(none).toMatchObject({ status: 'rejected', error: { code: 'DATASET_MISSING' } });
    h.latest = latest;
    expect((await h.service.handle(schedulePayload(false, '2024-05-13T03:00:00Z'))).status).toBe('started');
  });

  it('treats two firings in the same minute as one, and the next minute as new', async () => {
    h.latest = latest;
    const a = await h.service.handle(schedulePayload(false, '2024-05-06T03:00:00Z'));
    const b = await h.service.handle(schedulePayload(false, '2024-05-06T03:00:59Z'));
    const c = await h.service.handle(schedulePayload(false, '2024-05-06T03:01:00Z'));
    expect([a.status, b.status, c.status]).toEqual(['started', 'duplicate', 'started']);
  });
});

describe('when a schedule finds a new version of the dataset (the start function has 60 s)', () => {
  const previous = { uri: `s3://${BUCKET}/credit-scoring/applications.csv`, versionId: 'v7' };
  const next = { uri: previous.uri, versionId: 'v8' };
  const bytes = Buffer.from('age,income,approved\n41,52000,1\n');

  /** One S3 object version of `size` bytes; counts every byte anyone reads. */
  function oneObject(size: number): DatasetSource & { read: number } {
    const source = {
      read: 0,
      list: async (uri: string, o?: { versionId?: string }): Promise<DatasetFile[]> => [
        { uri, path: 'applications.csv', size, ...(o?.versionId ? { versionId: o.versionId } : {}) },
      ],
      open: async (): Promise<Readable> => {
        source.read += bytes.length;
        return Readable.from([bytes]);
      },
    };
    return source;
  }

  it('starts the run without reading a version larger than the budget, and says why', async () => {
    const warnings: string[] = [];
    const datasets = oneObject(50 * 1024 ** 3);
    const x = await harness(dir, {
      datasets,
      retrainHashBudgetBytes: 512 * 1024 ** 2,
      warn: (m) => warnings.push(m),
    });
    x.latest = next;
    await succeededRun(x, previous, digestOf(bytes));
    const o = await x.service.handle(schedulePayload());
    expect(o.status).toBe('started');
    expect(datasets.read).toBe(0);
    expect(x.launched[0]?.dataset).toEqual(next);
    expect(warnings.join('\n')).toMatch(/new version of 53687091200 bytes, more than the 536870912/);
  });

  it("hashes a version within the budget, and skips when its bytes are the last run's", async () => {
    const datasets = oneObject(bytes.length);
    const x = await harness(dir, { datasets, retrainHashBudgetBytes: 512 * 1024 ** 2 });
    x.latest = next;
    await succeededRun(x, previous, digestOf(bytes));
    const o = await x.service.handle(schedulePayload());
    expect(o.status).toBe('skipped');
    expect(datasets.read).toBe(bytes.length);
  });

  it('reads no data at all when the training code changed (the run trains whatever the data is)', async () => {
    const datasets = oneObject(bytes.length);
    const x = await harness(dir, { datasets });
    x.latest = next;
    await succeededRun(x, previous, digestOf(bytes));
    const def = x.pipeline.def;
    writeFileSync(join(dir, 'bundle', 'code', def.name, def.trainer.code, 'extra.mjs'), 'export {};\n');
    expect((await x.service.handle(schedulePayload())).status).toBe('started');
    expect(datasets.read).toBe(0);
  });
});

// ─────────────── the digests the start compares are the ones the steps record ───────────────

/** The dataset digest of `uri` as a run records it: ListDataset, HashBatch (2 files a child), HashDataset. */
async function hashedBySteps(x: Harness, uri: string): Promise<Digest> {
  const state: ExecState = {
    runId: 'r-digests',
    pipeline: { name: 'credit-scoring', digest: x.pipeline.digest },
    dataset: { uri },
    trigger: { type: 'landing', idempotencyKey: 'k' },
  };
  const rt = { objects: x.objects, datasets: new FsDatasetSource() };
  const listed = await listDataset(rt, state);
  if (!('listing' in listed)) throw new Error(`ListDataset refused: ${listed.error.message}`);
  const items = JSON.parse(
    new TextDecoder().decode(await readObject(x.objects, 'artifacts', listed.listing.key)),
  ) as DatasetFile[];
  const children = [];
  for (let i = 0; i < items.length; i += 2) {
    const input = { BatchInput: { runId: state.runId }, Items: items.slice(i, i + 2) };
    children.push({ input, output: await hashListedBatch(rt, input) });
  }
  // The HashBatches Map's output, as its ResultWriter exports the children's results.
  const batches = await exportMapRun(x.objects, state.runId, children);
  const hashed = await hashDataset(rt, { ...state, results: { hash: { listing: listed.listing, batches } } });
  return hashed.output.digest;
}

/** The training-code digest CheckCode records for a pipeline (on AWS: the bundled copy). */
async function checkedCode(x: Harness, p: StartPipeline, datasets: DatasetSource): Promise<Digest> {
  const stored = await putJsonCas(x.objects, p.def);
  const rt = { objects: x.objects, datasets, mode: p.base ? 'local' : 'aws' } as unknown as Runtime;
  const state: ExecState = {
    runId: 'r-digests',
    pipeline: { name: p.def.name, digest: stored.digest, ...(p.base ? { base: p.base } : {}) },
    dataset: { uri: 's3://landing/credit-scoring/a.csv', versionId: 'v1' },
    trigger: { type: 's3', idempotencyKey: 'k' },
  };
  return (await checkCode(rt, state)).output.digest;
}

describe('when the start compares digests with a run, they are the ones that run’s steps recorded', () => {
  /** Three files in two folders (a manifest digest) and a single file (its own sha256). */
  function datasets(): { folder: string; file: string } {
    const folder = join(dir, 'data', 'applications');
    mkdirSync(join(folder, 'eu'), { recursive: true });
    writeFileSync(join(folder, 'eu', 'a.csv'), 'age,income,approved\n41,52000,1\n');
    writeFileSync(join(folder, 'eu', 'b.csv'), 'age,income,approved\n29,31000,0\n');
    writeFileSync(join(folder, 'us.csv'), 'age,income,approved\n55,88000,1\n');
    const file = join(dir, 'data', 'one.csv');
    writeFileSync(file, 'age,income,approved\n33,47000,1\n');
    return { folder: pathToFileURL(folder).href, file: pathToFileURL(file).href };
  }

  it('skips a schedule over data and code that HashDataset and CheckCode digested the same', async () => {
    const { folder, file } = datasets();
    const code = await checkedCode(h, h.pipeline, new FsDatasetSource());
    const times = ['2024-05-06T03:00:00Z', '2024-05-06T04:00:00Z'];
    for (const [i, uri] of [folder, file].entries()) {
      h.latest = { uri };
      const prev = await succeededRun(h, h.latest, await hashedBySteps(h, uri));
      prev.facts.codeDigest = code;
      const o = await h.service.handle(schedulePayload(false, times[i]));
      expect(o, uri).toMatchObject({ status: 'skipped', sinceRunId: prev.runId });
    }
    expect(h.launched).toHaveLength(0);
  });

  it('pins an operator’s local dataset to the digest HashDataset records', async () => {
    const { folder, file } = datasets();
    for (const uri of [folder, file]) {
      const o = await h.service.handle({ pipeline: 'credit-scoring', dataset: { uri } });
      if (o.status !== 'started') throw new Error(`not started: ${JSON.stringify(o)}`);
      expect(h.runs.items.get(o.runId)?.dataset.digest, uri).toBe(await hashedBySteps(h, uri));
    }
  });

  it('hashes the training code as CheckCode does, locally and as bundled on AWS, large files too', async () => {
    const folder = join(dir, 'pipeline');
    cpSync(dirname(EXAMPLE), folder, { recursive: true });
    const def = h.pipeline.def;
    // Above CheckCode's 2 MiB scan limit, a file is streamed rather than read whole.
    const large = new Uint8Array(3 * 1024 * 1024).map((_, i) => i % 251);
    writeFileSync(join(folder, def.trainer.code, 'weights.bin'), large);
    writeFileSync(join(dir, 'bundle', 'code', def.name, def.trainer.code, 'weights.bin'), large);
    const fs = new FsDatasetSource();
    const local = { ...h.pipeline, base: pathToFileURL(join(folder, '/')).href };
    expect(await codeDigestOf(local, fs)).toBe(await checkedCode(h, local, fs));
    expect(await codeDigestOf(h.pipeline, fs)).toBe(await checkedCode(h, h.pipeline, fs));
    expect(await codeDigestOf(local, fs)).toBe(await codeDigestOf(h.pipeline, fs));
  });
});

describe('outcome shapes', () => {
  it('never reports started for an input that was rejected', async () => {
    const outcomes: StartOutcome[] = [];
    for (const raw of [undefined, 42, [], {}]) outcomes.push(await h.service.handle(raw));
    expect(outcomes.every((o) => o.status === 'rejected')).toBe(true);
  });
});
