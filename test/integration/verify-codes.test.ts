/**
 * Issue 16 §3: every code `veritrail verify <runId>` can report is produced by a test, the way a
 * tamperer or a real failure would produce it, and names its check. tamper.test.ts changes bytes;
 * the cases here are what else can happen to a run's evidence:
 * - the run record is rewritten (it is not signed: anyone with write access to the table can),
 *   often with objects stored at their own content address to match;
 * - a stored object is damaged (a half-written bundle, an unreadable audit entry) or a checkpoint
 *   is missing (a crash before the log checkpointed, a rolled-back checkpoint store);
 * - an insider signs with the state dir key (what `--trust-state-keys` trusts), or a faulty
 *   signer does: the signature holds, what it signs is not a statement of that slot;
 * - the auditor hands the API a key it cannot use.
 * Two pipeline runs on the same data (a run's transform statement can then be grafted onto the
 * other); each case changes one thing, verifies, and puts it back.
 */
import { generateKeyPairSync } from 'node:crypto';
import { chmodSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type DynamoDBClient, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { convertToAttr } from '@aws-sdk/util-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openLogReader } from '../../src/audit/reader.js';
import { putBytesCas, putJsonCas } from '../../src/cas.js';
import { main } from '../../src/cli/main.js';
import {
  BUNDLE_MEDIA_TYPE,
  parseBundle,
  publicKeyHint,
  type SigstoreBundle,
  type Statement,
  serializeBundle,
  signEnvelope,
  signStatement,
} from '../../src/core/attest/index.js';
import { digestOf } from '../../src/core/digest.js';
import { LOCAL_TABLE } from '../../src/local/dynamo.js';
import { openFileSigner } from '../../src/local/file-signer.js';
import { openLocalRuntime } from '../../src/local/runtime.js';
import type { RunRecord } from '../../src/ports.js';
import type { VerifyCheck, VerifyCheckName, VerifyCode } from '../../src/verify/codes.js';
import { verifyRunWith } from '../../src/verify/run.js';
import { captureIo, makeWorkspace, type Workspace } from '../helpers/workspace.js';

interface Verified {
  exit: number;
  ok: boolean;
  checks: VerifyCheck[];
}

let ws: Workspace;
let first: string;
let second: string;
/** The second run's record as the pipeline wrote it. */
let run: RunRecord;

async function pipelineRun(): Promise<string> {
  const io = captureIo(ws.dir);
  const exit = await main(['run', ws.dataset, '--pipeline', ws.pipeline, '--home', ws.home, '--json'], io);
  expect([0, 3]).toContain(exit);
  return (JSON.parse(io.stdout.join('')) as { runId: string }).runId;
}

async function verify(runId = second): Promise<Verified> {
  const io = captureIo(ws.dir);
  const exit = await main(['verify', runId, '--home', ws.home, '--trust-state-keys', '--json'], io);
  return { exit, ...(JSON.parse(io.stdout.join('')) as { ok: boolean; checks: VerifyCheck[] }) };
}

function firstFailure(v: { checks: VerifyCheck[] }): { name: string; code: string } | undefined {
  const f = v.checks.find((c) => !c.ok);
  return f && { name: f.name, code: f.code };
}

/** Opens the state dir for `fn` and closes it again (the CLI opens it too: one at a time). */
async function withRuntime<T>(
  fn: (rt: Awaited<ReturnType<typeof openLocalRuntime>>) => Promise<T>,
): Promise<T> {
  const rt = await openLocalRuntime(ws.home);
  try {
    return await fn(rt);
  } finally {
    await rt.close();
  }
}

/** Stores `bytes` at their own content address, as anyone with write access to the store can. */
const store = (bytes: Uint8Array) =>
  withRuntime(async (rt) => (await putBytesCas(rt.objects, bytes, digestOf(bytes))).key);
const storeJson = (value: unknown) => withRuntime(async (rt) => (await putJsonCas(rt.objects, value)).key);

/** Sets (or, for undefined, removes) facts of the run record in its table; returns what puts them back. */
async function setFacts(runId: string, facts: Record<string, unknown>): Promise<Record<string, unknown>> {
  return withRuntime(async (rt) => {
    const before = (await rt.runs.get(runId))?.facts ?? {};
    const client = (rt.runs as unknown as { client: DynamoDBClient }).client;
    for (const [k, v] of Object.entries(facts)) {
      await client.send(
        new UpdateItemCommand({
          TableName: LOCAL_TABLE,
          Key: { pk: { S: `RUN#${runId}` }, sk: { S: 'RUN' } },
          UpdateExpression: v === undefined ? 'REMOVE #f.#k' : 'SET #f.#k = :v',
          ExpressionAttributeNames: { '#f': 'facts', '#k': k },
          ...(v === undefined
            ? {}
            : { ExpressionAttributeValues: { ':v': convertToAttr(v, { removeUndefinedValues: true }) } }),
        }),
      );
    }
    return Object.fromEntries(Object.keys(facts).map((k) => [k, before[k]]));
  });
}

/** Runs `fn` with facts of the second run rewritten, then puts them back. */
async function withFacts<T>(facts: Record<string, unknown>, fn: () => Promise<T>): Promise<T> {
  const original = await setFacts(second, facts);
  try {
    return await fn();
  } finally {
    await setFacts(second, original);
  }
}

/** Runs `fn` with the second run's bundle of `fact` replaced by the bundle stored at `key`. */
const withBundle = <T>(fact: string, key: string, fn: () => Promise<T>) =>
  withFacts({ bundles: { ...(run.facts.bundles as Record<string, string>), [fact]: key } }, fn);

/** Replaces a file's bytes (WORM objects are read-only: write access is lent, then taken back). */
async function withFileBytes<T>(
  path: string,
  change: (b: Buffer) => Buffer,
  fn: () => Promise<T>,
): Promise<T> {
  const mode = statSync(path).mode & 0o777;
  const original = readFileSync(path);
  chmodSync(path, 0o600);
  writeFileSync(path, change(Buffer.from(original)));
  try {
    return await fn();
  } finally {
    writeFileSync(path, original);
    chmodSync(path, mode);
  }
}

/** Moves files aside for `fn`, and back. */
async function withoutFiles<T>(paths: string[], fn: () => Promise<T>): Promise<T> {
  for (const p of paths) renameSync(p, `${p}.aside`);
  try {
    return await fn();
  } finally {
    for (const p of paths) renameSync(`${p}.aside`, p);
  }
}

const artifact = (key: unknown) => join(ws.home, 'objects', 'artifacts', ...String(key).split('/'));
const auditLog = () => join(ws.home, 'objects', 'audit', 'log');
const bundleKey = (fact: string) => (run.facts.bundles as Record<string, string>)[fact] as string;
const json = (key: unknown) => JSON.parse(readFileSync(artifact(key), 'utf8')) as Record<string, unknown>;

/** The statement in the second run's bundle of `fact`. */
async function statementOf(fact: string): Promise<Statement> {
  const payload = parseBundle(readFileSync(artifact(bundleKey(fact)))).envelope.payload;
  return JSON.parse(new TextDecoder().decode(payload)) as Statement;
}

/** Signs `payload` as the state dir's signing key does (a DSSE envelope in a Sigstore bundle), under any payloadType. */
async function signedByStateKey(payloadType: string, payload: Uint8Array): Promise<Uint8Array> {
  const signer = await openFileSigner(join(ws.home, 'keys', 'signing.key'));
  const hint = publicKeyHint(await signer.publicKeyPem());
  const bundle: SigstoreBundle = {
    mediaType: BUNDLE_MEDIA_TYPE,
    verificationMaterial: { publicKey: { hint }, tlogEntries: [] },
    dsseEnvelope: await signEnvelope(payloadType, payload, signer, { keyid: hint }),
  };
  return new TextEncoder().encode(serializeBundle(bundle));
}

beforeAll(async () => {
  ws = makeWorkspace({ rows: 400 });
  first = await pipelineRun();
  second = await pipelineRun();
  run = (await withRuntime((rt) => rt.runs.get(second))) as RunRecord;
  // Preprocessing is deterministic: both runs made the same processed data (the graft below needs it).
  const firstRun = (await withRuntime((rt) => rt.runs.get(first))) as RunRecord;
  expect(firstRun.facts.processedDigest).toBe(run.facts.processedDigest);
  expect(firstFailure(await verify())).toBeUndefined();
}, 240_000);

afterAll(() => ws?.cleanup());

describe('when the run record is rewritten', () => {
  it('a manifest key pointing out of the content store: raw.manifest fails with RECORD_INVALID', async () => {
    const v = await withFacts({ rawManifestKey: '../../keys/signing.key' }, verify);
    expect(firstFailure(v)).toEqual({ name: 'raw.manifest', code: 'RECORD_INVALID' });
    expect(v.exit).toBe(1);
  });

  it('a processed manifest with a field veritrail does not write, stored at its address: processed.manifest fails with MANIFEST_INVALID', async () => {
    const key = await storeJson({ ...json(run.facts.processedManifestKey), note: 'reviewed' });
    const v = await withFacts({ processedManifestKey: key }, verify);
    expect(firstFailure(v)).toEqual({ name: 'processed.manifest', code: 'MANIFEST_INVALID' });
  });

  it('the training data replaced, with its manifest and digest: transform.raw fails with DEPENDENCY_MISMATCH', async () => {
    const other = Buffer.from(
      `${readFileSync(ws.dataset, 'utf8').trimEnd().split('\n').slice(0, -1).join('\n')}\n`,
    );
    const manifest = json(run.facts.rawManifestKey) as { files: { size: number; digest: string }[] };
    const [file] = manifest.files;
    if (file === undefined || manifest.files.length !== 1)
      throw new Error('a one-file raw manifest expected');
    const rawManifestKey = await storeJson({
      ...manifest,
      files: [{ ...file, size: other.length, digest: digestOf(other) }],
    });
    const v = await withFileBytes(
      ws.dataset,
      () => other,
      () => withFacts({ rawDigest: digestOf(other), rawManifestKey }, verify),
    );
    expect(v.checks.find((c) => c.name === 'raw.data')?.ok).toBe(true);
    expect(firstFailure(v)).toEqual({ name: 'transform.raw', code: 'DEPENDENCY_MISMATCH' });
  });

  it('another model.tar.gz, with its key and digest: provenance.subject fails with SUBJECT_MISMATCH', async () => {
    const model = new Uint8Array(
      Buffer.concat([readFileSync(artifact(run.facts.modelKey)), Buffer.from([0])]),
    );
    const modelKey = await store(model);
    const v = await withFacts({ modelKey, modelDigest: digestOf(model) }, verify);
    expect(v.checks.find((c) => c.name === 'model.data')?.ok).toBe(true);
    expect(firstFailure(v)).toEqual({ name: 'provenance.subject', code: 'SUBJECT_MISMATCH' });
  });

  it('the transform bundle pointing at the provenance slot: provenance.predicate fails with PREDICATE_TYPE', async () => {
    const v = await withBundle('provenance', bundleKey('transform'), verify);
    expect(firstFailure(v)).toEqual({ name: 'provenance.predicate', code: 'PREDICATE_TYPE' });
  });

  it('a statement bundle named as the model report: report.statement fails with PREDICATE_TYPE', async () => {
    const v = await withFacts({ reportKey: bundleKey('gate') }, verify);
    expect(firstFailure(v)).toEqual({ name: 'report.statement', code: 'PREDICATE_TYPE' });
  });

  it("the other run's transform statement grafted on (same data, validly signed): run.id fails with RUN_MISMATCH", async () => {
    const other = (await withRuntime((rt) => rt.runs.get(first))) as RunRecord;
    const v = await withBundle(
      'transform',
      (other.facts.bundles as Record<string, string>).transform as string,
      verify,
    );
    expect(v.checks.find((c) => c.name === 'transform.signature')?.ok).toBe(true);
    expect(firstFailure(v)).toEqual({ name: 'run.id', code: 'RUN_MISMATCH' });
    expect(v.checks.find((c) => c.name === 'run.id')?.detail).toContain(`transform names run ${first}`);
  });

  it('the gate decision document rewritten and stored at its address: gate.decision fails with LINK_BROKEN', async () => {
    const decision = json(run.facts.gateDecisionKey);
    const flipped = await storeJson({
      ...decision,
      decision: decision.decision === 'allow' ? 'deny' : 'allow',
    });
    const v = await withFacts({ gateDecisionKey: flipped }, verify);
    expect(firstFailure(v)).toEqual({ name: 'gate.decision', code: 'LINK_BROKEN' });
  });

  it('a better accuracy in the fairness report, stored at its address: report.statement fails with REPORT_MISMATCH', async () => {
    const better = await storeJson({ ...json(run.facts.fairnessReportKey), accuracy: 0.99 });
    const v = await withFacts({ fairnessReportKey: better }, verify);
    // The report file itself is not signed; the signed model report names its digest.
    expect(v.checks.find((c) => c.name === 'fairness.report')?.ok).toBe(true);
    expect(firstFailure(v)).toEqual({ name: 'report.statement', code: 'REPORT_MISMATCH' });
    expect(v.checks.find((c) => c.name === 'report.statement')?.detail).toContain(
      'fairness-report.json is not the file it names',
    );
  });

  it('the gate decision in the record flipped: record.gate fails with RECORD_MISMATCH', async () => {
    const gate = run.facts.gate as { decision: string };
    const v = await withFacts(
      { gate: { ...gate, decision: gate.decision === 'allow' ? 'deny' : 'allow' } },
      verify,
    );
    expect(firstFailure(v)).toEqual({ name: 'record.gate', code: 'RECORD_MISMATCH' });
  });
});

describe('when a stored object is damaged', () => {
  it('a half-written bundle: gate.signature fails with BUNDLE_MALFORMED', async () => {
    const v = await withFileBytes(artifact(bundleKey('gate')), (b) => b.subarray(0, b.length >> 1), verify);
    expect(firstFailure(v)).toEqual({ name: 'gate.signature', code: 'BUNDLE_MALFORMED' });
  });

  it('an audit entry that no longer parses: audit.entries fails with AUDIT_CORRUPT', async () => {
    const entry = join(auditLog(), 'entries', '000', '000', '000', '000', '004');
    const v = await withFileBytes(entry, (b) => Buffer.concat([Buffer.from('#'), b.subarray(1)]), verify);
    expect(firstFailure(v)).toEqual({ name: 'audit.entries', code: 'AUDIT_CORRUPT' });
  });
});

describe('when the run is not under a checkpoint', () => {
  const checkpoints = () =>
    readdirSync(join(auditLog(), 'checkpoints'))
      .filter((n) => /^\d{15}$/.test(n))
      .sort()
      .map((n) => join(auditLog(), 'checkpoints', n));

  it("the log stopped before checkpointing the run's entries: audit.inclusion fails with AUDIT_NOT_CHECKPOINTED", async () => {
    // The first run's checkpoint remains; the one covering the second run is gone.
    const v = await withoutFiles(checkpoints().slice(-1), verify);
    expect(firstFailure(v)).toEqual({ name: 'audit.inclusion', code: 'AUDIT_NOT_CHECKPOINTED' });
    expect(v.checks.find((c) => c.name === 'audit.checkpoint')?.ok).toBe(true);
  });

  it('a log with no checkpoint at all: audit.checkpoint fails with AUDIT_NOT_CHECKPOINTED', async () => {
    const v = await withoutFiles(checkpoints(), verify);
    expect(firstFailure(v)).toEqual({ name: 'audit.checkpoint', code: 'AUDIT_NOT_CHECKPOINTED' });
  });
});

describe('when the signing key signs what is not a statement of its slot', () => {
  // What an insider holding the state dir key (all --trust-state-keys trusts), or a faulty signer,
  // can make: the signature holds, so only what follows it can refuse the bundle.
  it('another payloadType: gate.signature fails with PAYLOAD_TYPE', async () => {
    const payload = parseBundle(readFileSync(artifact(bundleKey('gate')))).envelope.payload;
    const key = await store(await signedByStateKey('application/json', payload));
    const v = await withBundle('gate', key, verify);
    expect(firstFailure(v)).toEqual({ name: 'gate.signature', code: 'PAYLOAD_TYPE' });
  });

  it('an in-toto v0.1 statement: gate.signature fails with STATEMENT_MALFORMED', async () => {
    const old = { ...(await statementOf('gate')), _type: 'https://in-toto.io/Statement/v0.1' };
    const key = await store(
      await signedByStateKey('application/vnd.in-toto+json', new TextEncoder().encode(JSON.stringify(old))),
    );
    const v = await withBundle('gate', key, verify);
    expect(firstFailure(v)).toEqual({ name: 'gate.signature', code: 'STATEMENT_MALFORMED' });
  });

  it('a gate decision that is neither allow nor deny: gate.signature fails with PREDICATE_MALFORMED', async () => {
    const st = await statementOf('gate');
    const signer = await openFileSigner(join(ws.home, 'keys', 'signing.key'));
    const signed = await signStatement(
      { ...st, predicate: { ...(st.predicate as object), decision: 'maybe' } },
      signer,
    );
    const key = await store(new TextEncoder().encode(serializeBundle(signed.bundle)));
    const v = await withBundle('gate', key, verify);
    expect(firstFailure(v)).toEqual({ name: 'gate.signature', code: 'PREDICATE_MALFORMED' });
  });
});

describe('when the auditor hands verify a key it cannot use', () => {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 })
    .publicKey.export({ type: 'spki', format: 'pem' })
    .toString();

  it('the CLI refuses an RSA key before any check (exit 2, KEY_INVALID)', async () => {
    writeFileSync(join(ws.dir, 'rsa.pub.pem'), rsa);
    const io = captureIo(ws.dir);
    const exit = await main(
      ['verify', second, '--home', ws.home, '--key', 'rsa.pub.pem', '--trust-state-keys', '--json'],
      io,
    );
    expect(exit).toBe(2);
    expect(io.stderr.join('')).toContain('KEY_INVALID');
  });

  it('handed to verifyRunWith directly, every signature check fails with KEY_INVALID', async () => {
    const auditPem = await (await openFileSigner(join(ws.home, 'keys', 'audit.key'))).publicKeyPem();
    const report = await withRuntime(async (rt) => {
      const { report } = await verifyRunWith(
        {
          runs: rt.runs,
          objects: rt.objects,
          openAudit: (k) => openLogReader({ store: rt.objects, publicKey: k.pem, bucket: 'audit' }),
        },
        {
          signing: [{ pem: rsa, id: digestOf(rsa), source: 'an RSA key' }],
          audit: [{ pem: auditPem, id: digestOf(auditPem), source: 'state dir' }],
        },
        second,
      );
      return report;
    });
    const signatureChecks: VerifyCheckName[] = [
      'transform.signature',
      'provenance.signature',
      'model-signing.signature',
      'fairness.signature',
      'gate.signature',
      'report.statement',
    ];
    const byName = Object.fromEntries(report.checks.map((c) => [c.name, c.code]));
    for (const name of signatureChecks) expect(byName[name], name).toBe('KEY_INVALID');
    expect(firstFailure(report)).toEqual({ name: 'transform.signature', code: 'KEY_INVALID' });
  });
});

describe('after every change is put back', () => {
  it('both runs verify again', async () => {
    expect(firstFailure(await verify(first))).toBeUndefined();
    const v = await verify(second);
    expect(firstFailure(v)).toBeUndefined();
    expect(v.exit).toBe(0);
  });
});

/**
 * Where each code a check can carry is produced and asserted. A Record over the union: a code
 * added to src/verify/codes.ts does not compile until a test for it is named here.
 */
const ASSERTED_IN: Record<Exclude<VerifyCode, 'OK'>, string> = {
  EVIDENCE_MISSING: 'test/unit/cli-verify.test.ts',
  RECORD_INVALID: 'test/integration/verify-codes.test.ts',
  DIGEST_MISMATCH: 'test/integration/tamper.test.ts',
  MANIFEST_INVALID: 'test/integration/verify-codes.test.ts',
  RECORD_MISMATCH: 'test/integration/signed-truth.test.ts',
  AUDIT_ENTRY_MISSING: 'test/integration/signing-keys.test.ts',
  AUDIT_CORRUPT: 'test/integration/verify-codes.test.ts',
  AUDIT_NOT_CHECKPOINTED: 'test/integration/verify-codes.test.ts',
  AUDIT_CHECKPOINT_INVALID: 'test/integration/tamper.test.ts',
  AUDIT_PROOF_FAILED: 'test/integration/tamper.test.ts',
  AUDIT_SUBJECT_MISMATCH: 'test/integration/signing-keys.test.ts',
  KEY_MISMATCH: 'test/integration/signing-keys.test.ts',
  REPORT_MISMATCH: 'test/integration/verify-codes.test.ts',
  AUDIT_NOT_WITNESSED: 'test/integration/verify-witnessed.test.ts',
  BUNDLE_MALFORMED: 'test/integration/verify-codes.test.ts',
  KEY_INVALID: 'test/integration/verify-codes.test.ts',
  SIGNATURE_INVALID: 'test/integration/tamper.test.ts',
  PAYLOAD_TYPE: 'test/integration/verify-codes.test.ts',
  STATEMENT_MALFORMED: 'test/integration/verify-codes.test.ts',
  PREDICATE_TYPE: 'test/integration/verify-codes.test.ts',
  PREDICATE_MALFORMED: 'test/integration/verify-codes.test.ts',
  SUBJECT_MISMATCH: 'test/integration/verify-codes.test.ts',
  DEPENDENCY_MISMATCH: 'test/integration/verify-codes.test.ts',
  LINK_BROKEN: 'test/integration/verify-codes.test.ts',
  RUN_MISMATCH: 'test/integration/verify-codes.test.ts',
};

describe('every verify code', () => {
  it('is asserted by the test named for it', () => {
    const root = join(import.meta.dirname, '..', '..');
    for (const [code, file] of Object.entries(ASSERTED_IN))
      expect(readFileSync(join(root, file), 'utf8'), `${code} in ${file}`).toContain(`'${code}'`);
  });
});
