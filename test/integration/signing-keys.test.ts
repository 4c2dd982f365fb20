/**
 * Issue 13 §3, "Key rotation is recorded in the log", and the report the log names.
 * - The first signing key and every later change of key are audit entries (`signing.key-rotated`),
 *   each naming the previous key and the new public key; a run signed after a rotation verifies
 *   with both keys trusted, and names the new key.
 * - Each run ends with a `report.signed` entry naming its report statement and the key that signed
 *   it: a report re-signed later (validly, by the same key) and swapped into the run record is
 *   caught by the log, and so is a report signed by another trusted key than the log records.
 */
import { createPublicKey } from 'node:crypto';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type DynamoDBClient, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ObjectAuditLog } from '../../src/audit/log.js';
import { putBytesCas, readObject } from '../../src/cas.js';
import { main } from '../../src/cli/main.js';
import { parseBundle, type Statement, serializeBundle, signStatement } from '../../src/core/attest/index.js';
import { digestOf } from '../../src/core/digest.js';
import { LOCAL_TABLE } from '../../src/local/dynamo.js';
import { openFileSigner } from '../../src/local/file-signer.js';
import { openLocalRuntime } from '../../src/local/runtime.js';
import type { AuditEntry } from '../../src/ports.js';
import { produceReport } from '../../src/report/produce.js';
import type { VerifyCheck } from '../../src/verify/codes.js';
import { captureIo, makeWorkspace, type Workspace } from '../helpers/workspace.js';

let ws: Workspace;
const keyFile = () => join(ws.home, 'keys', 'signing.key');
const pubOf = (privatePem: string) =>
  createPublicKey(privatePem).export({ type: 'spki', format: 'pem' }).toString();

async function run(): Promise<string> {
  const io = captureIo(ws.dir);
  const exit = await main(['run', ws.dataset, '--pipeline', ws.pipeline, '--home', ws.home, '--json'], io);
  expect([0, 3]).toContain(exit);
  return (JSON.parse(io.stdout.join('')) as { runId: string }).runId;
}

async function verify(runId: string, keys: string[]): Promise<{ ok: boolean; checks: VerifyCheck[] }> {
  const io = captureIo(ws.dir);
  const auditPub = join(ws.dir, 'audit.pub.pem');
  writeFileSync(auditPub, pubOf(readFileSync(join(ws.home, 'keys', 'audit.key'), 'utf8')));
  const args = ['verify', runId, '--home', ws.home, '--audit-key', auditPub, '--json'];
  for (const k of keys) args.push('--key', k);
  await main(args, io);
  return JSON.parse(io.stdout.join('')) as { ok: boolean; checks: VerifyCheck[] };
}

async function logEntries(): Promise<AuditEntry[]> {
  const rt = await openLocalRuntime(ws.home);
  try {
    const out: AuditEntry[] = [];
    for await (const e of (rt.audit as ObjectAuditLog).entries()) out.push(e);
    return out;
  } finally {
    await rt.close();
  }
}

const failing = (v: { checks: VerifyCheck[] }) => v.checks.filter((c) => !c.ok).map((c) => [c.name, c.code]);

let first: string;
let second: string;
let oldPub: string;
let newPub: string;

beforeAll(async () => {
  ws = makeWorkspace({ rows: 400 });
  first = await run();
  oldPub = join(ws.dir, 'old.pub.pem');
  writeFileSync(oldPub, pubOf(readFileSync(keyFile(), 'utf8')));
  // Rotate: the old key is retired (kept aside), a new one is created on the next run.
  renameSync(keyFile(), join(ws.dir, 'retired.key'));
  second = await run();
  newPub = join(ws.dir, 'new.pub.pem');
  writeFileSync(newPub, pubOf(readFileSync(keyFile(), 'utf8')));
}, 180_000);

afterAll(() => ws?.cleanup());

describe('signing-key rotation is recorded in the audit log', () => {
  it('names the first key, then the change from the old key to the new one, before anything the new key signs', async () => {
    const entries = await logEntries();
    const rotations = entries.filter((e) => e.type === 'signing.key-rotated');
    const oldId = (await openFileSigner(join(ws.dir, 'retired.key'))).keyId;
    const newId = (await openFileSigner(keyFile())).keyId;
    expect(rotations.map((e) => e.detail)).toEqual([
      { toKeyId: oldId, publicKeyPem: readFileSync(oldPub, 'utf8') },
      { fromKeyId: oldId, toKeyId: newId, publicKeyPem: readFileSync(newPub, 'utf8') },
    ]);
    // Recorded once per change, however many statements each key signed.
    const firstSigned = (runId: string) =>
      entries.find((e) => e.runId === runId && e.step === 'Preprocess' && e.type === 'step.succeeded')?.seq ??
      -1;
    expect(rotations[0]?.seq).toBeLessThan(firstSigned(first));
    expect(rotations[1]?.seq).toBeGreaterThan(firstSigned(first));
    expect(rotations[1]?.seq).toBeLessThan(firstSigned(second));
    const sign = entries.find((e) => e.runId === second && e.step === 'Sign');
    expect((sign?.detail as { key?: string } | undefined)?.key).toBe(newId);
  });

  it('each run verifies with the key of its time, and both with the rotation trusted', async () => {
    expect(failing(await verify(first, [oldPub]))).toEqual([]);
    expect(failing(await verify(second, [newPub]))).toEqual([]);
    expect(failing(await verify(second, [oldPub, newPub]))).toEqual([]);
    // The retired key alone does not verify the new run's statements.
    expect((await verify(second, [oldPub])).ok).toBe(false);
  });
});

describe('the log names the report each run ended with', () => {
  it('a report.signed entry names the statement digest and the key that signed it', async () => {
    const entries = await logEntries();
    const rt = await openLocalRuntime(ws.home);
    const record = await rt.runs.get(second);
    await rt.close();
    const named = entries.filter((e) => e.runId === second && e.type === 'report.signed');
    expect(named).toHaveLength(1);
    expect(named[0]?.subjects).toEqual({ report: record?.facts.reportDigest });
    expect(named[0]?.detail).toMatchObject({
      reportKey: record?.facts.reportKey,
      key: (await openFileSigner(keyFile())).keyId,
      bundles: ['report'],
    });
    const v = await verify(second, [newPub]);
    expect(v.checks.find((c) => c.name === 'audit.report')).toMatchObject({ ok: true, code: 'OK' });
  });

  /**
   * Swaps the run record's report for another validly signed one: `later` re-makes the report a
   * minute later (another statement), `resigned` signs the very same statement with `signerKey`.
   * Returns the function that puts the original back.
   */
  async function swapReport(signerKey: string, how: 'later' | 'resigned'): Promise<() => Promise<void>> {
    const setFacts = async (facts: { reportKey: string; reportDigest: string }) => {
      const rt = await openLocalRuntime(ws.home);
      try {
        const client = (rt.runs as unknown as { client: DynamoDBClient }).client;
        await client.send(
          new UpdateItemCommand({
            TableName: LOCAL_TABLE,
            Key: { pk: { S: `RUN#${second}` }, sk: { S: 'RUN' } },
            UpdateExpression: 'SET #f.#k = :k, #f.#d = :d',
            ExpressionAttributeNames: { '#f': 'facts', '#k': 'reportKey', '#d': 'reportDigest' },
            ExpressionAttributeValues: { ':k': { S: facts.reportKey }, ':d': { S: facts.reportDigest } },
          }),
        );
      } finally {
        await rt.close();
      }
    };
    const rt = await openLocalRuntime(ws.home);
    let original: { reportKey: string; reportDigest: string };
    let swapped: { reportKey: string; reportDigest: string };
    try {
      const record = await rt.runs.get(second);
      if (record === undefined) throw new Error('no run');
      original = {
        reportKey: String(record.facts.reportKey),
        reportDigest: String(record.facts.reportDigest),
      };
      const signer = await openFileSigner(signerKey);
      if (how === 'later') {
        const later = await produceReport(
          { objects: rt.objects, signer, mode: 'local', now: () => new Date(Date.now() + 60_000) },
          record,
        );
        swapped = { reportKey: later.key, reportDigest: later.statementDigest };
      } else {
        const bundle = parseBundle(await readObject(rt.objects, 'artifacts', original.reportKey));
        const statement = JSON.parse(new TextDecoder().decode(bundle.envelope.payload)) as Statement;
        const signed = await signStatement(statement, signer);
        expect(signed.payloadDigest).toBe(original.reportDigest);
        const bytes = new TextEncoder().encode(serializeBundle(signed.bundle));
        const stored = await putBytesCas(rt.objects, bytes, digestOf(bytes));
        swapped = { reportKey: stored.key, reportDigest: signed.payloadDigest };
      }
    } finally {
      await rt.close();
    }
    await setFacts(swapped);
    return () => setFacts(original);
  }

  it('a report re-made later by the same key and swapped into the run record: the log names another report', async () => {
    const restore = await swapReport(keyFile(), 'later');
    try {
      const v = await verify(second, [newPub]);
      expect(v.checks.find((c) => c.name === 'report.statement')?.ok).toBe(true);
      expect(failing(v)).toEqual([
        ['audit.subjects', 'AUDIT_SUBJECT_MISMATCH'],
        ['audit.report', 'AUDIT_ENTRY_MISSING'],
      ]);
    } finally {
      await restore();
    }
    expect(failing(await verify(second, [newPub]))).toEqual([]);
  });

  it('the same report statement signed by another trusted key than the log records: audit.signing-key fails', async () => {
    // The auditor trusts both keys of the rotation; the statement is byte for byte the one the log
    // names, only the key that signed it differs.
    const restore = await swapReport(join(ws.dir, 'retired.key'), 'resigned');
    try {
      const v = await verify(second, [oldPub, newPub]);
      expect(v.checks.find((c) => c.name === 'report.statement')?.ok).toBe(true);
      expect(v.checks.find((c) => c.name === 'audit.report')?.ok).toBe(true);
      expect(failing(v)).toEqual([['audit.signing-key', 'KEY_MISMATCH']]);
    } finally {
      await restore();
    }
    expect(failing(await verify(second, [oldPub, newPub]))).toEqual([]);
  });
});
