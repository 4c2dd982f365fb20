/**
 * Two business units side by side in one emulated AWS account (docs/units.md "On AWS"): unit credit
 * (stage e2e-credit, pipeline credit-scoring) and unit medical (stage e2e-medical, pipeline
 * medical-diagnosis), each synthesized with VERITRAIL_UNIT from one pipelines folder and one units
 * file, as `sst deploy` of each unit would, with their real bundles, provisioned on the same
 * moto_server, every call replayed against the policies of both stages (test/aws-e2e/README.md).
 *
 * Each unit runs an S3-upload-started pipeline to SUCCEEDED; each unit's bundles verify with its own
 * attestation key and not with the other's; then a function role of one unit, with its own
 * credentials through the IAM proxy, tries to read the other's dataset, sign with its key, append to
 * its log and write its table: each is denied, and the same call on its own unit's resource is not.
 *
 * Runs when moto_server is on PATH; skips with one line otherwise (`.ci/run` requires it in CI).
 */
import { createHash, createPublicKey } from 'node:crypto';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DynamoDBClient, PutItemCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { GetPublicKeyCommand, KMSClient, SignCommand } from '@aws-sdk/client-kms';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import {
  DescribeModelPackageCommand,
  DescribeModelPackageGroupCommand,
  SageMakerClient,
  UpdateModelPackageCommand,
} from '@aws-sdk/client-sagemaker';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DynamoRunStore } from '../../src/aws/dynamo-run-store.js';
import type { RunRecord } from '../../src/ports.js';
import { verifySingleBundle } from '../../src/verify/bundle.js';
import {
  ACCOUNT,
  type EmulatedAccount,
  type EmulatedStage,
  REGION,
  startEmulatedAccount,
} from './harness/emulated-aws.js';
import { s3ObjectCreatedEvent } from './harness/events.js';
import { onPath } from './harness/moto.js';
import type { ExecutionRecord } from './harness/state-machine.js';
import { REPO_ROOT } from './harness/templates.js';
import { OPERATOR_KEY } from './harness/world.js';
import { formatDenials } from './iam/report.js';
import type { RecordedCall } from './iam/types.js';

const motoServer = onPath('moto_server');
if (!motoServer) {
  console.info(
    '[aws-e2e units] skipped: moto_server is not on PATH (pip install "moto[server]"); CI (.ci/run) requires it',
  );
}

const UNITS = {
  credit: { stage: 'e2e-credit', pipeline: 'credit-scoring', retention: 2555 },
  medical: { stage: 'e2e-medical', pipeline: 'medical-diagnosis', retention: 3650 },
} as const;
type Unit = keyof typeof UNITS;
const BOTH = ['credit', 'medical'] as const;
const PROCESSING_IMAGE = `123456789012.dkr.ecr.us-east-1.amazonaws.com/veritrail-node@sha256:${'b'.repeat(64)}`;
const otherOf = (u: Unit): Unit => (u === 'credit' ? 'medical' : 'credit');

const DATASET = readFileSync(join(REPO_ROOT, 'examples', 'credit-scoring', 'applications.csv'));

/**
 * One pipelines folder for both units, as the platform team keeps it, and the units file: each
 * pipeline is the example's definition (trainer and data schema) under its own name and unit.
 */
function unitsFixture(): { dir: string; pipelines: string; unitsFile: string } {
  const dir = mkdtempSync(join(tmpdir(), 'vt-e2e-units-'));
  const pipelines = join(dir, 'pipelines');
  const example = join(REPO_ROOT, 'examples', 'credit-scoring');
  const base = JSON.parse(readFileSync(join(example, 'pipeline.json'), 'utf8')) as Record<string, unknown>;
  for (const unit of BOTH) {
    const { pipeline } = UNITS[unit];
    mkdirSync(join(pipelines, pipeline), { recursive: true });
    writeFileSync(
      join(pipelines, pipeline, 'pipeline.json'),
      `${JSON.stringify({ ...base, name: pipeline, unit }, null, 2)}\n`,
    );
    cpSync(join(example, 'trainer'), join(pipelines, pipeline, 'trainer'), { recursive: true });
  }
  const unitsFile = join(dir, 'units.json');
  writeFileSync(
    unitsFile,
    JSON.stringify({
      apiVersion: 'veritrail.dev/v1',
      units: [
        {
          name: 'credit',
          auditRetentionDays: UNITS.credit.retention,
          approvers: [`arn:aws:iam::${ACCOUNT}:role/credit-model-risk`],
        },
        {
          name: 'medical',
          auditRetentionDays: UNITS.medical.retention,
          approvers: ['clinical-safety@example.com'],
        },
      ],
    }),
  );
  return { dir, pipelines, unitsFile };
}

/** A client of `service` signing with the given role's key, through the IAM proxy. */
function clientsAs(aws: EmulatedAccount, credentials: { accessKeyId: string; secretAccessKey: string }) {
  const config = { endpoint: aws.proxy.endpoint, region: REGION, credentials, maxAttempts: 1 };
  return {
    s3: new S3Client({ ...config, forcePathStyle: true }),
    kms: new KMSClient(config),
    dynamodb: new DynamoDBClient(config),
  };
}

async function pemOf(aws: EmulatedAccount, keyArn: string): Promise<string> {
  const pub = await aws.admin.kms.send(new GetPublicKeyCommand({ KeyId: keyArn }));
  return createPublicKey({ key: Buffer.from(pub.PublicKey ?? new Uint8Array()), format: 'der', type: 'spki' })
    .export({ type: 'spki', format: 'pem' })
    .toString();
}

/** The error name of a refused call, or "allowed" when it went through. */
async function outcome(call: () => Promise<unknown>): Promise<string> {
  try {
    await call();
    return 'allowed';
  } catch (e) {
    return (e as { name?: string }).name ?? String(e);
  }
}

describe.skipIf(!motoServer)('emulated AWS: two business units side by side, one stage each', () => {
  let aws: EmulatedAccount;
  let fixture: ReturnType<typeof unitsFixture>;
  const stageOf = (u: Unit): EmulatedStage => aws.stage(UNITS[u].stage);
  const runsOf = (u: Unit) => new DynamoRunStore(aws.admin.dynamodb, stageOf(u).names.table);
  const finished: Partial<Record<Unit, RunRecord>> = {};
  /** Denials the scenarios provoke on purpose (the forced cross-unit attempts). */
  const expected = new Set<RecordedCall>();
  let seen = 0;

  beforeAll(async () => {
    fixture = unitsFixture();
    aws = await startEmulatedAccount({
      motoServer: motoServer as string,
      stages: BOTH.map((unit) => ({
        stage: UNITS[unit].stage,
        pipelinesDir: fixture.pipelines,
        env: {
          VERITRAIL_UNIT: unit,
          VERITRAIL_UNITS_FILE: fixture.unitsFile,
          // medical preprocesses and evaluates every dataset with SageMaker Processing jobs (a 1-byte
          // threshold): the processing role, the Preprocess and Evaluate grants and the job programs,
          // run by the emulator.
          ...(unit === 'medical'
            ? {
                VERITRAIL_PROCESSING_IMAGE: PROCESSING_IMAGE,
                VERITRAIL_PROCESSING_THRESHOLD_BYTES: '1',
                // Many shards, one transform request each: the count job joins their predictions.
                VERITRAIL_TRANSFORM_SHARD_BYTES: '16384',
              }
            : {}),
        },
        // medical's Preprocess re-hashes its job's output 256 KiB per invocation: the checkpoint is
        // written and read back through IAM, and the retrier carries the re-hash across invocations.
        ...(unit === 'medical'
          ? {
              functionEnv: (logicalId: string): Record<string, string> =>
                /^Preprocess/i.test(logicalId)
                  ? { VERITRAIL_PROCESSING_VERIFY_BYTES: String(256 * 1024) }
                  : {},
            }
          : {}),
      })),
      log: (l) => console.info(`[aws-e2e units] ${l}`),
    });
  }, 1_800_000);

  afterAll(async () => {
    await aws?.close();
    if (fixture) rmSync(fixture.dir, { recursive: true, force: true });
  });

  afterEach((ctx) => {
    // Every call a scenario did not force on purpose was allowed: the units' own work is never denied.
    const denied = aws.proxy
      .denials()
      .slice(seen)
      .filter((d) => !expected.has(d));
    seen = aws.proxy.denials().length;
    if (denied.length > 0)
      throw new Error(
        `the IAM replay denied ${denied.length} call(s) during "${ctx.task.name}":\n${formatDenials(denied)}`,
      );
  });

  it('every function of both units loads its bundle, each unit its own copy', () => {
    for (const u of BOTH) {
      const s = stageOf(u);
      expect(s.fleet.functions.length, u).toBeGreaterThanOrEqual(13);
      expect(s.loadFailures.map((f) => `${u} fn:${f.handler}: ${f.error.split('\n')[0]}`)).toEqual([]);
      expect(s.fn('start').environment.VERITRAIL_AUDIT_RETENTION_DAYS, u).toBe(String(UNITS[u].retention));
    }
    const names = (u: Unit) => Object.values(stageOf(u).names);
    expect(names('credit').filter((n) => names('medical').includes(n))).toEqual([]);
  });

  it('an upload runs each unit’s pipeline to SUCCEEDED in its own stage only', async () => {
    const operator = new S3Client({
      endpoint: aws.proxy.endpoint,
      region: REGION,
      forcePathStyle: true,
      credentials: OPERATOR_KEY,
    });
    const runOne = async (u: Unit) => {
      const s = stageOf(u);
      const key = `${UNITS[u].pipeline}/applications.csv`;
      const put = await operator.send(
        new PutObjectCommand({ Bucket: s.names.landing, Key: key, Body: DATASET }),
      );
      const event = s3ObjectCreatedEvent({
        account: ACCOUNT,
        region: REGION,
        bucket: s.names.landing,
        key,
        size: DATASET.length,
        etag: put.ETag ?? createHash('md5').update(DATASET).digest('hex'),
        ...(put.VersionId ? { versionId: put.VersionId } : {}),
      });
      // The account's default bus: the event reaches both stages' rules; only its unit's match.
      expect(stageOf(otherOf(u)).bus.matching(event), `${otherOf(u)} rules matched ${u}'s upload`).toEqual(
        [],
      );
      const deliveries = await s.bus.put(event);
      const last = deliveries.find((d) => d.rule.startsWith('Landing'))?.attempts.at(-1);
      if (!last?.ok)
        throw new Error(`${u}: start failed: ${JSON.stringify(last)}\n${s.fn('start').logs().slice(-3000)}`);
      const started = last.result as { status: string; runId?: string; executionName?: string };
      expect(started.status, `${u}: ${JSON.stringify(started)}`).toBe('started');
      const execution = s.sfn.byName(String(started.executionName)) as ExecutionRecord;
      const done = await Promise.race([
        execution.done,
        new Promise<undefined>((r) => setTimeout(() => r(undefined), 240_000)),
      ]);
      const run = await runsOf(u).get(String(started.runId));
      const explain = `${u}: execution ${done?.status ?? 'RUNNING'} ${done?.error ?? ''} ${done?.cause ?? ''}\nstates: ${execution.states.join(' → ')}\nrun: ${run?.status} ${JSON.stringify(run?.error ?? '')}`;
      expect(done?.status, explain).toBe('SUCCEEDED');
      expect(run?.status, explain).toBe('SUCCEEDED');
      // The run exists in its unit's table only.
      expect(
        await runsOf(otherOf(u)).get(String(started.runId)),
        `${u}'s run in ${otherOf(u)}'s table`,
      ).toBeUndefined();
      finished[u] = run;
    };
    await Promise.all(BOTH.map(runOne));
    // medical's Preprocess and Evaluate ran as processing jobs of its own image, programs and role
    // (Evaluate's shard job, then its count job after the Batch Transform); credit's did not.
    const jobs = [...aws.sagemaker.processingJobs.values()];
    const id = finished.medical?.runId;
    expect(jobs.map((j) => [j.name, j.status, j.log.slice(-500)])).toEqual([
      [`veritrail-pre-${id}`, 'Completed', expect.any(String)],
      [`veritrail-evs-${id}`, 'Completed', expect.stringMatching(/test rows cut into ([2-9]|\d{2,}) shards/)],
      [
        `veritrail-evc-${id}`,
        'Completed',
        expect.stringMatching(/test rows counted over ([2-9]|\d{2,}) shards/),
      ],
    ]);
    for (const job of jobs) {
      const request = job.request as {
        RoleArn: string;
        AppSpecification: { ImageUri: string; ContainerEntrypoint: string[] };
        NetworkConfig: { EnableNetworkIsolation: boolean };
      };
      expect(request.AppSpecification.ImageUri).toBe(PROCESSING_IMAGE);
      expect(request.NetworkConfig.EnableNetworkIsolation).toBe(true);
      expect(request.RoleArn).toMatch(/SageMakerprocessing/);
      expect(request.AppSpecification.ContainerEntrypoint.at(-1)).toMatch(
        job.name.startsWith('veritrail-pre-') ? /\/processing\.mjs$/ : /\/evaluation\.mjs$/,
      );
    }
    // medical's Preprocess re-hashed its job's output 256 KiB per invocation: several invocations
    // each stopped at their budget and left a checkpoint the next one read back through IAM.
    const medical = stageOf('medical');
    const listedEntries = await aws.admin.s3.send(
      new ListObjectsV2Command({ Bucket: medical.names.audit, Prefix: 'log/entries/' }),
    );
    const stops = [];
    for (const o of listedEntries.Contents ?? []) {
      const got = await aws.admin.s3.send(new GetObjectCommand({ Bucket: medical.names.audit, Key: o.Key }));
      const entry = JSON.parse((await got.Body?.transformToString()) ?? '{}') as {
        step?: string;
        detail?: unknown;
      };
      if (
        entry.step === 'Preprocess' &&
        /re-hashed \S+ up to byte \d+/.test(JSON.stringify(entry.detail ?? {}))
      )
        stops.push(entry);
    }
    expect(stops.length, 'Preprocess invocations that stopped at their re-hash budget').toBeGreaterThan(1);
    // The count job counted what the Lambda path counts: the same processed data, the same trainer
    // code and seed give both units the same model, so the same fairness figures.
    expect(finished.medical?.facts.fairness).toEqual(finished.credit?.facts.fairness);
    // Processed digests agree: the same dataset and split rules give the same processed data
    // whether the Lambda or the job transformed it.
    expect(finished.medical?.facts.processedDigest).toBe(finished.credit?.facts.processedDigest);
  }, 420_000);

  it('each unit’s evidence verifies with its own attestation key, and not with the other unit’s', async () => {
    for (const u of BOTH) {
      const run = finished[u];
      expect(run, `no finished run of ${u}`).toBeDefined();
      const s = stageOf(u);
      const own = await pemOf(aws, s.names.attestationKeyArn);
      const theirs = await pemOf(aws, stageOf(otherOf(u)).names.attestationKeyArn);
      const bundles = (run?.facts.bundles ?? {}) as Record<string, string>;
      expect(Object.keys(bundles), u).toEqual(
        expect.arrayContaining(['fairness', 'gate', 'modelSignature', 'provenance']),
      );
      for (const [name, key] of Object.entries(bundles)) {
        const got = await aws.admin.s3.send(new GetObjectCommand({ Bucket: s.names.artifacts, Key: key }));
        const bundle = (await got.Body?.transformToString()) ?? '';
        const mine = await verifySingleBundle(bundle, own);
        expect(
          mine.ok,
          `${u} ${name} with ${u}'s key: ${JSON.stringify(mine.checks.filter((c) => !c.ok))}`,
        ).toBe(true);
        const other = await verifySingleBundle(bundle, theirs);
        expect(other.ok, `${u} ${name} verified with ${otherOf(u)}'s key`).toBe(false);
      }
      // The unit's audit log holds its own run and nothing of the other unit's.
      const listed = await aws.admin.s3.send(
        new ListObjectsV2Command({ Bucket: s.names.audit, Prefix: 'log/entries/' }),
      );
      expect(listed.KeyCount ?? 0, `${u}'s audit log`).toBeGreaterThan(5);
      const entries = await Promise.all(
        (listed.Contents ?? []).map(async (o) => {
          const got = await aws.admin.s3.send(new GetObjectCommand({ Bucket: s.names.audit, Key: o.Key }));
          return JSON.parse((await got.Body?.transformToString()) ?? '{}') as {
            pipeline?: string;
            runId?: string;
          };
        }),
      );
      // Run entries name the unit's pipeline; the log's own entries (signing key recorded, `-`) none.
      const pipelines = new Set(entries.map((e) => e.pipeline));
      expect(pipelines.has(UNITS[u].pipeline), u).toBe(true);
      expect(
        [...pipelines].filter((p) => p !== UNITS[u].pipeline && p !== '-'),
        u,
      ).toEqual([]);
      expect(
        entries.map((e) => e.runId),
        u,
      ).not.toContain(finished[otherOf(u)]?.runId);
    }
  }, 120_000);

  it('a run’s role of one unit is denied the other unit’s dataset, signing key, audit log and table', async () => {
    for (const u of BOTH) {
      const them = otherOf(u);
      const mine = stageOf(u);
      const theirs = stageOf(them);
      // preprocess's role holds every grant tried here on its own unit: landing read, kms:Sign with the
      // attestation key, audit append, run item writes.
      const as = clientsAs(aws, aws.credentialsOf(mine.fn('preprocess').roleArn));
      const dataset = (s: EmulatedStage, unit: Unit) =>
        as.s3.send(
          new GetObjectCommand({ Bucket: s.names.landing, Key: `${UNITS[unit].pipeline}/applications.csv` }),
        );
      const sign = (s: EmulatedStage) =>
        as.kms.send(
          new SignCommand({
            KeyId: s.names.attestationKeyArn,
            Message: createHash('sha256').update('forged statement').digest(),
            MessageType: 'DIGEST',
            SigningAlgorithm: 'ECDSA_SHA_256',
          }),
        );
      const append = (s: EmulatedStage) =>
        as.s3.send(
          new PutObjectCommand({
            Bucket: s.names.audit,
            Key: 'log/entries/999/999/999/999/999',
            Body: '{"forged":true}',
          }),
        );
      const putItem = (s: EmulatedStage) =>
        as.dynamodb.send(
          new PutItemCommand({
            TableName: s.names.table,
            Item: { pk: { S: 'RUN#forged' }, sk: { S: 'RUN' }, status: { S: 'SUCCEEDED' } },
          }),
        );
      const updateItem = (s: EmulatedStage) =>
        as.dynamodb.send(
          new UpdateItemCommand({
            TableName: s.names.table,
            Key: { pk: { S: 'RUN#forged' }, sk: { S: 'RUN' } },
            UpdateExpression: 'SET #s = :s',
            ExpressionAttributeNames: { '#s': 'status' },
            ExpressionAttributeValues: { ':s': { S: 'REJECTED' } },
          }),
        );

      const before = aws.proxy.denials().length;
      const attempts = {
        'read the dataset': await outcome(() => dataset(theirs, them)),
        'sign with the attestation key': await outcome(() => sign(theirs)),
        'append to the audit log': await outcome(() => append(theirs)),
        'put a run item': await outcome(() => putItem(theirs)),
        'update a run item': await outcome(() => updateItem(theirs)),
      };
      const denials = aws.proxy.denials().slice(before);
      for (const d of denials) expected.add(d);
      expect(attempts, `${u}'s role on ${them}'s resources`).toEqual({
        'read the dataset': 'AccessDenied',
        'sign with the attestation key': 'AccessDeniedException',
        'append to the audit log': 'AccessDenied',
        'put a run item': 'AccessDeniedException',
        'update a run item': 'AccessDeniedException',
      });
      // Denied by the policies, for this role, on the other unit's resources.
      expect(new Set(denials.map((d) => d.principal)), formatDenials(denials)).toEqual(
        new Set([`${mine.stage}/fn:preprocess`]),
      );
      const ofTheirs = (resource: string) =>
        [theirs.names.landing, theirs.names.audit, theirs.names.table, theirs.names.attestationKeyArn].some(
          (n) => resource.includes(n),
        );
      expect(
        denials.map((d) => `${d.action} ${ofTheirs(d.resource)}`),
        formatDenials(denials),
      ).toEqual(
        expect.arrayContaining([
          's3:GetObject true',
          'kms:Sign true',
          's3:PutObject true',
          'dynamodb:PutItem true',
          'dynamodb:UpdateItem true',
        ]),
      );

      // The very same calls on the role's own unit go through: the denial is the other unit's policy's doing.
      const ownAttempts = {
        'read the dataset': await outcome(() => dataset(mine, u)),
        'sign with the attestation key': await outcome(() => sign(mine)),
        'append to the audit log': await outcome(() => append(mine)),
        'put a run item': await outcome(() => putItem(mine)),
        'update a run item': await outcome(() => updateItem(mine)),
      };
      expect(ownAttempts, `${u}'s role on its own resources`).toEqual({
        'read the dataset': 'allowed',
        'sign with the attestation key': 'allowed',
        'append to the audit log': 'allowed',
        'put a run item': 'allowed',
        'update a run item': 'allowed',
      });
    }
  }, 120_000);

  it('credit’s approvers’ role may read and approve credit’s model versions, and nothing of medical’s', async () => {
    // The version each run registered, by the ARN SageMaker gave it (recorded in the run's facts).
    const versionOf = (u: Unit) => {
      const arn = /arn:aws:sagemaker:[^"]*:model-package\/[^"]+/.exec(
        JSON.stringify(finished[u]?.facts ?? {}),
      )?.[0];
      expect(arn, `${u}: no registered model version in ${JSON.stringify(finished[u]?.facts)}`).toBeDefined();
      return String(arn);
    };
    const approver = new SageMakerClient({
      endpoint: aws.proxy.endpoint,
      region: REGION,
      credentials: stageOf('credit').credentialsOfRole('ModelApproval'),
      maxAttempts: 1,
    });
    const group = (u: Unit) => `veritrail-${UNITS[u].pipeline}`;
    const before = aws.proxy.denials().length;
    const tried = async (u: Unit) => ({
      group: await outcome(() =>
        approver.send(new DescribeModelPackageGroupCommand({ ModelPackageGroupName: group(u) })),
      ),
      version: await outcome(() =>
        approver.send(new DescribeModelPackageCommand({ ModelPackageName: versionOf(u) })),
      ),
      approve: await outcome(() =>
        approver.send(
          new UpdateModelPackageCommand({ ModelPackageArn: versionOf(u), ModelApprovalStatus: 'Approved' }),
        ),
      ),
    });
    const medical = await tried('medical');
    const denials = aws.proxy.denials().slice(before);
    for (const d of denials) expected.add(d);
    expect(medical, formatDenials(denials)).toEqual({
      group: 'AccessDeniedException',
      version: 'AccessDeniedException',
      approve: 'AccessDeniedException',
    });
    expect(
      denials.filter((d) => !d.principal.startsWith('e2e-credit/ModelApproval')),
      formatDenials(denials),
    ).toEqual([]);
    expect(denials.length).toBeGreaterThanOrEqual(3);
    expect(await tried('credit')).toEqual({ group: 'allowed', version: 'allowed', approve: 'allowed' });
    // medical declares no approver by IAM ARN: recorded only, no approval role in its stage.
    expect(
      stageOf('medical').resources.filter(
        (r) => r.type === 'AWS::IAM::Role' && r.logicalId.startsWith('ModelApproval'),
      ),
    ).toEqual([]);
  }, 60_000);
});
