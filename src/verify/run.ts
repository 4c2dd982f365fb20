/**
 * The run verifier: re-derives a run's chain of custody from what is stored and checks every link,
 * in chain order (raw → processed → model → statements → links → run record → audit log), so the
 * first failing check names the first broken link (DESIGN.md, invariant 3). It only reads: no
 * checkpoint is made, no key is created, and only public keys are needed.
 */

import { fileURLToPath } from 'node:url';
import type { ObjectAuditLog } from '../audit/log.js';
import { type ProofBundle, verifyProofBundle } from '../audit/proof.js';
import { hashStream, readObject } from '../cas.js';
import {
  checkChain,
  isAttestationError,
  MODEL_REPORT_PREDICATE_TYPE,
  type ModelReportPredicate,
  type RunStatements,
  type Statement,
  statementCovers,
  verifyBundle,
} from '../core/attest/index.js';
import type { WitnessKey } from '../core/cosignature.js';
import { type Digest, digestFromHex, digestOf, digestsEqual, isDigest } from '../core/digest.js';
import { isVeritrailError, toErrorInfo } from '../core/errors.js';
import {
  buildManifest,
  type Manifest,
  type ManifestEntry,
  manifestDigest,
  parseManifest,
} from '../core/manifest.js';
import type { AuditEntry, DatasetFile, DatasetSource, ObjectStore, RunRecord, RunStore } from '../ports.js';
import { type VerifyCheck, type VerifyCode, VerifyError, type VerifyReport } from './codes.js';
import { hashPath } from './hash-path.js';

export interface VerifyDeps {
  runs: Pick<RunStore, 'get'>;
  objects: ObjectStore;
  /**
   * Reads raw data that is not a local path (`s3://…` of a deployed stage): the files the run
   * pinned (raw.pins.json, VersionIds included) are re-read and re-hashed through it.
   */
  datasets?: Pick<DatasetSource, 'open'>;
  /** Opens the audit log with a signer that carries one trusted audit public key. */
  openAudit(key: TrustedKey): ObjectAuditLog;
}

/** One public key an auditor trusts: PEM SubjectPublicKeyInfo, its id, and where it came from. */
export interface TrustedKey {
  pem: string;
  /** sha256 of the DER SubjectPublicKeyInfo: the key id the audit log and the run record carry. */
  id: string;
  /** e.g. `--key ./signing.pub.pem`, `trust file ./trust.json`, `state dir .veritrail/keys/signing.key`. */
  source: string;
}

/**
 * The public keys an auditor trusts, several of each kind when keys were rotated. The first of each
 * list is the one written into an evidence folder when none verified.
 */
export interface TrustedKeys {
  signing: TrustedKey[];
  audit: TrustedKey[];
  /**
   * Witnesses (C2SP tlog-cosignature verifier keys) whose cosignature the auditor looks for on a
   * checkpoint covering the run's entries. Absent or empty: witnessing is reported as not asked.
   */
  witnesses?: WitnessKey[];
}

/** The run's bundles, in chain order: [check name prefix, key in facts.bundles, export file stem]. */
export const BUNDLE_SLOTS = [
  { slot: 'transform', fact: 'transform', file: 'transform' },
  { slot: 'provenance', fact: 'provenance', file: 'provenance' },
  { slot: 'model-signing', fact: 'modelSignature', file: 'model-signature' },
  { slot: 'fairness', fact: 'fairness', file: 'fairness' },
  { slot: 'gate', fact: 'gate', file: 'gate' },
] as const;

export type BundleSlot = (typeof BUNDLE_SLOTS)[number]['slot'];

/** The evidence read while verifying: what `veritrail export` writes out, byte for byte. */
export interface Evidence {
  run: RunRecord;
  bundles: Partial<Record<BundleSlot, Uint8Array>>;
  rawManifest?: Uint8Array;
  rawPins?: Uint8Array;
  processedManifest?: Uint8Array;
  fairnessReport?: Uint8Array;
  gateDecision?: Uint8Array;
  auditEntries: AuditEntry[];
  proofs: ProofBundle[];
  checkpoint?: string;
  /** The run's signed report statement (Sigstore bundle), when the run recorded one. */
  reportBundle?: Uint8Array;
  /** The trusted keys that verified the bundles and the checkpoint (absent when none did). */
  signingKey?: TrustedKey;
  auditKey?: TrustedKey;
}

const CAS_KEY = /^sha256\/[0-9a-f]{64}$/;
/** Where a SageMaker training job writes its model: `training/<pipeline>/<job>/output/model.tar.gz`. */
const TRAINING_MODEL_KEY = /^training\/(?:[A-Za-z0-9_-][A-Za-z0-9._-]*\/)+model\.tar\.gz$/;
const NO_DIGEST: Digest = `sha256:${'0'.repeat(64)}`;

function short(d: string): string {
  return d.length > 23 ? `${d.slice(0, 23)}…` : d;
}

type Read =
  | { ok: true; bytes: Uint8Array; addressed: boolean }
  | { ok: false; code: VerifyCode; detail: string };

class Checks {
  readonly list: VerifyCheck[] = [];
  pass(name: string, detail: string): void {
    this.list.push({ name, ok: true, code: 'OK', detail });
  }
  fail(name: string, code: VerifyCode, detail: string): void {
    this.list.push({ name, ok: false, code, detail });
  }
}

/**
 * Verifies one run against the trusted keys. Throws VerifyError RUN_NOT_FOUND for an unknown run;
 * every other problem is a failing check in the report.
 */
export async function verifyRunWith(
  deps: VerifyDeps,
  keys: TrustedKeys,
  runId: string,
): Promise<{ report: VerifyReport; evidence: Evidence }> {
  const run = await deps.runs.get(runId);
  if (run === undefined) {
    throw new VerifyError(
      'RUN_NOT_FOUND',
      `no run ${runId} is recorded in this state dir; list runs with: veritrail runs list`,
    );
  }
  const c = new Checks();
  const facts = run.facts;
  const evidence: Evidence = { run, bundles: {}, auditEntries: [], proofs: [] };
  const failed = run.status === 'FAILED';
  const missing = (what: string) =>
    failed
      ? `${what} is absent: the run FAILED before producing it`
      : `${what} is absent from the run's evidence`;

  /** A digest fact: undefined (and a failing check) when absent or malformed. */
  const digestFact = (name: string, check: string, what: string): Digest | undefined => {
    const v = facts[name];
    if (v === undefined) {
      c.fail(check, 'EVIDENCE_MISSING', missing(`the ${what} digest`));
      return undefined;
    }
    if (!isDigest(v)) {
      c.fail(check, 'RECORD_INVALID', `the run record's ${name} is not a sha256 digest`);
      return undefined;
    }
    return v;
  };

  /** Reads a content-addressed artifacts object and tells whether its bytes still hash to its key. */
  const readCas = async (key: unknown, what: string): Promise<Read> => {
    if (key === undefined) return { ok: false, code: 'EVIDENCE_MISSING', detail: missing(what) };
    if (typeof key !== 'string' || !CAS_KEY.test(key)) {
      return {
        ok: false,
        code: 'RECORD_INVALID',
        detail: `the ${what} key in the run record is not a content address`,
      };
    }
    try {
      const bytes = await readObject(deps.objects, 'artifacts', key);
      return { ok: true, bytes, addressed: digestsEqual(digestOf(bytes), `sha256:${key.slice(7)}`) };
    } catch (e) {
      if (isVeritrailError(e, 'OBJECT_NOT_FOUND')) {
        return { ok: false, code: 'EVIDENCE_MISSING', detail: `the ${what} (${key}) is not in the store` };
      }
      return {
        ok: false,
        code: 'EVIDENCE_MISSING',
        detail: `the ${what} (${key}) cannot be read: ${toErrorInfo(e).message}`,
      };
    }
  };
  const altered = (what: string) =>
    `the stored ${what} was altered: its bytes no longer hash to its content address`;

  // ───── raw data ─────
  const rawDigest = digestFact('rawDigest', 'raw.manifest', 'raw data');
  if (rawDigest !== undefined) {
    const r = await readCas(facts.rawManifestKey, 'raw data manifest');
    if (!r.ok) c.fail('raw.manifest', r.code, r.detail);
    else {
      evidence.rawManifest = r.bytes;
      const m = manifestOf(r.bytes);
      if (!r.addressed) c.fail('raw.manifest', 'DIGEST_MISMATCH', altered('raw data manifest'));
      else if (typeof m === 'string') c.fail('raw.manifest', 'MANIFEST_INVALID', m);
      else if (!namesDataset(m, rawDigest)) {
        c.fail(
          'raw.manifest',
          'DIGEST_MISMATCH',
          `the raw data manifest does not describe the recorded raw data ${short(rawDigest)}`,
        );
      } else c.pass('raw.manifest', `${m.files.length} file(s), raw data ${short(rawDigest)}`);
    }
    const pins = await readCas(facts.rawPinsKey, 'raw data pins');
    if (pins.ok) evidence.rawPins = pins.bytes;
  }
  let actualRaw = rawDigest ?? NO_DIGEST;
  if (rawDigest !== undefined) {
    const uri = run.dataset.uri;
    if (!uri.startsWith('file://') && deps.datasets === undefined) {
      c.fail(
        'raw.data',
        'EVIDENCE_MISSING',
        `the raw data is at ${uri}; verify a deployed run with --stage <stage> to read it`,
      );
    } else if (!uri.startsWith('file://') && deps.datasets !== undefined) {
      const pinned = evidence.rawPins === undefined ? undefined : pinnedFilesOf(evidence.rawPins);
      if (pinned === undefined)
        c.fail('raw.data', 'EVIDENCE_MISSING', `the raw data at ${uri} has no readable pinned file list`);
      else {
        try {
          const actual = await rehashPinned(deps.datasets, pinned);
          actualRaw = actual;
          if (digestsEqual(actual, rawDigest))
            c.pass('raw.data', `${uri} (${pinned.length} pinned version(s)) hashes to ${short(rawDigest)}`);
          else
            c.fail(
              'raw.data',
              'DIGEST_MISMATCH',
              `the raw data at ${uri}, read at its pinned versions, hashes to ${short(actual)}, the run recorded ${short(rawDigest)}`,
            );
        } catch (e) {
          c.fail(
            'raw.data',
            'EVIDENCE_MISSING',
            `the raw data at ${uri} cannot be read: ${toErrorInfo(e).message}`,
          );
        }
      }
    } else {
      try {
        const actual = await hashPath(fileURLToPath(uri));
        actualRaw = actual.digest;
        if (digestsEqual(actual.digest, rawDigest))
          c.pass('raw.data', `${uri} hashes to ${short(rawDigest)}`);
        else {
          c.fail(
            'raw.data',
            'DIGEST_MISMATCH',
            `the raw data at ${uri} hashes to ${short(actual.digest)}, the run recorded ${short(rawDigest)}: the data changed after the run`,
          );
        }
      } catch (e) {
        c.fail(
          'raw.data',
          'EVIDENCE_MISSING',
          `the raw data at ${uri} cannot be read: ${toErrorInfo(e).message}`,
        );
      }
    }
  }

  // ───── processed data ─────
  const processedDigest = digestFact('processedDigest', 'processed.manifest', 'processed data');
  let actualProcessed = processedDigest ?? NO_DIGEST;
  let processed: Manifest | undefined;
  if (processedDigest !== undefined) {
    const r = await readCas(facts.processedManifestKey, 'processed data manifest');
    if (!r.ok) c.fail('processed.manifest', r.code, r.detail);
    else {
      evidence.processedManifest = r.bytes;
      const m = manifestOf(r.bytes);
      if (!r.addressed) c.fail('processed.manifest', 'DIGEST_MISMATCH', altered('processed data manifest'));
      else if (typeof m === 'string') c.fail('processed.manifest', 'MANIFEST_INVALID', m);
      else if (!digestsEqual(manifestDigest(m), processedDigest)) {
        c.fail(
          'processed.manifest',
          'DIGEST_MISMATCH',
          `the processed data manifest is not the one recorded (${short(processedDigest)})`,
        );
      } else {
        processed = m;
        c.pass('processed.manifest', `${m.files.length} file(s), processed data ${short(processedDigest)}`);
      }
    }
  }
  if (processed !== undefined) {
    const actual: ManifestEntry[] = [];
    const problems: { code: VerifyCode; detail: string }[] = [];
    for (const f of processed.files) {
      try {
        const { hex, size } = await hashStream(
          await deps.objects.open('artifacts', `sha256/${f.digest.slice(7)}`),
        );
        actual.push({ path: f.path, size, digest: `sha256:${hex}` });
        if (hex !== f.digest.slice(7) || size !== f.size) {
          problems.push({
            code: 'DIGEST_MISMATCH',
            detail: `processed file ${f.path} hashes to sha256:${hex.slice(0, 16)}…, its manifest says ${short(f.digest)}`,
          });
        }
      } catch (e) {
        actual.push(f);
        problems.push({
          code: 'EVIDENCE_MISSING',
          detail: `processed file ${f.path} cannot be read: ${toErrorInfo(e).message}`,
        });
      }
    }
    actualProcessed = manifestDigest(buildManifest(actual));
    const first = problems[0];
    if (first === undefined) c.pass('processed.data', `${actual.length} file(s) match the manifest`);
    else c.fail('processed.data', first.code, problems.map((p) => p.detail).join('; '));
  }

  // ───── model ─────
  const modelDigest = digestFact('modelDigest', 'model.data', 'model');
  let actualModel = modelDigest ?? NO_DIGEST;
  if (modelDigest !== undefined) {
    const key = facts.modelKey;
    // Content-addressed (the embedded trainer), or where SageMaker wrote it (`training/…`): either
    // way the bytes are hashed below and must be the recorded digest.
    if (typeof key !== 'string' || !(CAS_KEY.test(key) || TRAINING_MODEL_KEY.test(key))) {
      c.fail(
        'model.data',
        key === undefined ? 'EVIDENCE_MISSING' : 'RECORD_INVALID',
        'the run record names no model.tar.gz in the artifacts bucket (sha256/… or training/…)',
      );
    } else {
      try {
        const { hex } = await hashStream(await deps.objects.open('artifacts', key));
        actualModel = `sha256:${hex}`;
        if (digestsEqual(actualModel, modelDigest))
          c.pass('model.data', `model.tar.gz hashes to ${short(modelDigest)}`);
        else
          c.fail(
            'model.data',
            'DIGEST_MISMATCH',
            `model.tar.gz hashes to ${short(actualModel)}, the run recorded ${short(modelDigest)}`,
          );
      } catch (e) {
        c.fail(
          'model.data',
          'EVIDENCE_MISSING',
          `model.tar.gz (${key}) cannot be read: ${toErrorInfo(e).message}`,
        );
      }
    }
  }

  // ───── signatures ─────
  const statements: RunStatements = {};
  /** Which trusted key verified each bundle, by slot. */
  const verifiedBy: Partial<Record<BundleSlot, string>> = {};
  const bundleKeys = { ...((facts.bundles ?? {}) as Record<string, unknown>) };
  // A run that failed after Preprocess never reached Sign, which is where facts.bundles is written;
  // the transform bundle is then only named in the execution state saved with the training launch.
  const pre = (
    facts.training as { state?: { results?: { preprocess?: { bundleKey?: unknown } } } } | undefined
  )?.state?.results?.preprocess;
  if (bundleKeys.transform === undefined && pre?.bundleKey !== undefined)
    bundleKeys.transform = pre.bundleKey;
  for (const { slot, fact } of BUNDLE_SLOTS) {
    const name = `${slot}.signature`;
    const r = await readCas(bundleKeys[fact], `${slot} bundle`);
    if (!r.ok) {
      c.fail(name, r.code, r.detail);
      continue;
    }
    evidence.bundles[slot] = r.bytes;
    let json: unknown;
    try {
      json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(r.bytes));
    } catch {
      c.fail(name, 'BUNDLE_MALFORMED', `the ${slot} bundle is not JSON`);
      continue;
    }
    let statement: Statement | undefined;
    let failure: { code: VerifyCode; message: string } | undefined;
    for (const key of keys.signing) {
      try {
        statement = verifyBundle(json, key.pem).statement;
        verifiedBy[slot] = key.id;
        break;
      } catch (e) {
        if (!isAttestationError(e)) throw e;
        // A wrong key and a forged signature look alike; keep the most telling failure.
        if (failure === undefined || failure.code === 'SIGNATURE_INVALID')
          failure = { code: e.code, message: e.message };
      }
    }
    if (statement === undefined) {
      c.fail(
        name,
        failure?.code ?? 'EVIDENCE_MISSING',
        `${slot} bundle: ${failure?.message ?? 'no trusted signing key'}`,
      );
      continue;
    }
    if (!r.addressed) {
      c.fail(name, 'DIGEST_MISMATCH', altered(`${slot} bundle`));
      continue;
    }
    if (slot === 'model-signing') statements.modelSigning = statement;
    else statements[slot] = statement;
    c.pass(name, `${statement.predicateType} signed by trusted key ${short(verifiedBy[slot] ?? '')}`);
  }

  // ───── links: raw → processed → model → fairness → gate ─────
  const codeDigest = isDigest(facts.codeDigest) ? facts.codeDigest : undefined;
  for (const k of checkChain(statements, {
    runId: run.runId,
    raw: actualRaw,
    processed: actualProcessed,
    model: actualModel,
    ...(codeDigest ? { trainingCode: codeDigest } : {}),
  })) {
    // A statement that did not verify is already reported by its signature check.
    if (
      k.code === 'STATEMENT_MISSING' &&
      c.list.some((x) => x.name === `${k.name.split('.')[0]}.signature` && !x.ok)
    )
      continue;
    c.list.push({ name: k.name, ok: k.ok, code: k.code, detail: k.detail });
  }
  if (statements.fairness !== undefined && processed !== undefined) {
    // The held-out split the fairness statement names (test.csv; validation.csv in older runs)
    // must be a file of the processed data, by name and digest.
    const data = (
      statements.fairness.predicate as { evaluationData?: { name?: unknown; digest?: { sha256?: string } } }
    ).evaluationData;
    const name = typeof data?.name === 'string' ? data.name : 'validation.csv';
    const claimed = data?.digest?.sha256;
    const held = processed.files.find((f) => f.path === name);
    if (held !== undefined && claimed !== undefined && digestsEqual(`sha256:${claimed}`, held.digest)) {
      c.pass('link.evaluation-data', `the fairness evaluation ran on the processed ${name}`);
    } else {
      c.fail(
        'link.evaluation-data',
        'LINK_BROKEN',
        `the fairness statement names evaluation data (${name}) that is not a file of the processed data`,
      );
    }
  }
  const report = await readCas(facts.fairnessReportKey, 'fairness report');
  if (report.ok) evidence.fairnessReport = report.bytes;
  if (statements.fairness !== undefined || report.ok) {
    if (!report.ok) c.fail('fairness.report', report.code, report.detail);
    else if (!report.addressed) c.fail('fairness.report', 'DIGEST_MISMATCH', altered('fairness report'));
    else {
      const model = jsonOf(report.bytes)?.model;
      if (typeof model === 'string' && digestsEqual(model, actualModel))
        c.pass('fairness.report', `the report evaluates model ${short(model)}`);
      else
        c.fail(
          'fairness.report',
          'LINK_BROKEN',
          'the fairness report evaluates another model than this run built',
        );
    }
  }
  const decisionDoc = await readCas(facts.gateDecisionKey, 'gate decision');
  if (decisionDoc.ok) evidence.gateDecision = decisionDoc.bytes;
  const gatePredicate = statements.gate?.predicate as
    | { decision?: string; policy?: { digest?: { sha256?: string } } }
    | undefined;
  if (gatePredicate !== undefined || decisionDoc.ok) {
    if (!decisionDoc.ok) c.fail('gate.decision', decisionDoc.code, decisionDoc.detail);
    else if (!decisionDoc.addressed) c.fail('gate.decision', 'DIGEST_MISMATCH', altered('gate decision'));
    else if (gatePredicate !== undefined) {
      const named = gatePredicate.policy?.digest?.sha256;
      const doc = jsonOf(decisionDoc.bytes);
      if (named === undefined || !digestsEqual(`sha256:${named}`, digestOf(decisionDoc.bytes))) {
        c.fail(
          'gate.decision',
          'LINK_BROKEN',
          'the gate statement names another decision document than the stored one',
        );
      } else if (doc?.decision !== gatePredicate.decision) {
        c.fail(
          'gate.decision',
          'LINK_BROKEN',
          `the decision document says ${String(doc?.decision)}, the signed gate statement ${String(gatePredicate.decision)}`,
        );
      } else c.pass('gate.decision', `signed decision ${gatePredicate.decision}, with its policy and facts`);
    } else c.pass('gate.decision', 'stored decision document is intact');
  }

  // ───── the model report: signed by a trusted key, about this model, naming these very files ─────
  /** The report statement's digest and the trusted key that verified it. */
  let reportSigned: { statement: Digest; key: string } | undefined;
  if (facts.reportKey !== undefined) {
    const r = await readCas(facts.reportKey, 'report statement');
    if (!r.ok) c.fail('report.statement', r.code, r.detail);
    else {
      evidence.reportBundle = r.bytes;
      let st: Statement | undefined;
      let why = 'no trusted signing key';
      let code: VerifyCode = 'SIGNATURE_INVALID';
      for (const key of keys.signing) {
        try {
          const verified = verifyBundle(r.bytes, key.pem, { predicateType: MODEL_REPORT_PREDICATE_TYPE });
          st = verified.statement;
          reportSigned = { statement: verified.payloadDigest, key: key.id };
          break;
        } catch (e) {
          if (!isAttestationError(e)) throw e;
          why = e.message;
          code = e.code;
        }
      }
      if (st === undefined) c.fail('report.statement', code, `the report statement: ${why}`);
      else if (!r.addressed) c.fail('report.statement', 'DIGEST_MISMATCH', altered('report statement'));
      else {
        const p = st.predicate as ModelReportPredicate;
        const actual: Record<string, Uint8Array | Digest | undefined> = {
          'model.tar.gz': modelDigest === undefined ? undefined : actualModel,
          'manifests/raw.manifest.json': evidence.rawManifest,
          'manifests/raw.pins.json': evidence.rawPins,
          'manifests/processed.manifest.json': evidence.processedManifest,
          'fairness-report.json': evidence.fairnessReport,
          'gate-decision.json': evidence.gateDecision,
          ...Object.fromEntries(
            BUNDLE_SLOTS.map((b) => [`${b.file}.sigstore.json`, evidence.bundles[b.slot]]),
          ),
        };
        const wrong: string[] = [];
        for (const f of p.files) {
          const a = actual[f.name ?? ''];
          const d = a === undefined ? undefined : typeof a === 'string' ? a : digestOf(a);
          if (d === undefined) wrong.push(`it names ${f.name}, which the evidence lacks`);
          else if (!digestsEqual(d, `sha256:${f.digest.sha256}`))
            wrong.push(`${f.name} is not the file it names`);
        }
        if (modelDigest !== undefined && !statementCovers(st, actualModel))
          wrong.push('its subject is not this model');
        if (p.status !== run.status) wrong.push(`it says ${p.status}, the run is ${run.status}`);
        if (gatePredicate !== undefined && p.gate?.decision !== gatePredicate.decision)
          wrong.push(`it says ${String(p.gate?.decision)}, the signed gate ${gatePredicate.decision}`);
        if (wrong.length > 0)
          c.fail('report.statement', 'REPORT_MISMATCH', `the signed report: ${wrong.join('; ')}`);
        else
          c.pass(
            'report.statement',
            `model-report/v1 names ${p.files.length} evidence file(s), each as it is`,
          );
      }
    }
  }

  // ───── the run record ─────
  if (run.dataset.digest !== undefined && rawDigest !== undefined) {
    if (digestsEqual(run.dataset.digest, rawDigest))
      c.pass('record.dataset', 'the trigger named the raw data that was hashed');
    else
      c.fail(
        'record.dataset',
        'RECORD_MISMATCH',
        `the run was started for ${short(run.dataset.digest)}, the raw data hashed to ${short(rawDigest)}`,
      );
  }
  const recordedDecision = (facts.gate as { decision?: unknown } | undefined)?.decision;
  if (gatePredicate !== undefined) {
    if (recordedDecision === gatePredicate.decision)
      c.pass('record.gate', `the run record and the signed gate agree: ${gatePredicate.decision}`);
    else
      c.fail(
        'record.gate',
        'RECORD_MISMATCH',
        `the run record says ${String(recordedDecision)}, the signed gate statement ${String(gatePredicate.decision)}`,
      );
  }
  if (failed) {
    const err = run.error;
    c.pass(
      'record.status',
      `run FAILED${err ? ` (${err.code}: ${err.message})` : ''}; the evidence it produced is checked`,
    );
  } else {
    const expected =
      gatePredicate?.decision === 'allow'
        ? 'SUCCEEDED'
        : gatePredicate?.decision === 'deny'
          ? 'REJECTED'
          : undefined;
    if (expected !== undefined && run.status === expected)
      c.pass('record.status', `${run.status}, as the signed gate decided`);
    else if (expected === undefined)
      c.fail('record.status', 'EVIDENCE_MISSING', `run is ${run.status} and has no signed gate decision`);
    else
      c.fail(
        'record.status',
        'RECORD_MISMATCH',
        `run is ${run.status}, but the signed gate decision means ${expected}`,
      );
  }
  // Signed truth over the registry (issue 11 item 6): the local registry entry's approval must be
  // what the signed gate decided. A model package on AWS (an ARN) is not readable offline: skipped.
  const registry = facts.registry as { ref?: unknown } | undefined;
  const registryKey =
    typeof registry?.ref === 'string' && registry.ref.startsWith('local:artifacts/')
      ? registry.ref.slice('local:artifacts/'.length)
      : undefined;
  if (registryKey !== undefined && gatePredicate !== undefined && !failed) {
    const approvalOf = gatePredicate.decision === 'allow' ? 'Approved' : 'Rejected';
    let stored: unknown;
    try {
      stored = (
        JSON.parse(new TextDecoder().decode(await readObject(deps.objects, 'artifacts', registryKey))) as {
          approval?: unknown;
        }
      ).approval;
    } catch {
      stored = undefined;
    }
    if (stored === approvalOf)
      c.pass('record.registry', `the registry entry is ${approvalOf}, as the signed gate decided`);
    else
      c.fail(
        'record.registry',
        stored === undefined ? 'EVIDENCE_MISSING' : 'RECORD_MISMATCH',
        stored === undefined
          ? `the registry entry ${registryKey} cannot be read`
          : `the registry entry says ${String(stored)}, but the signed gate decision means ${approvalOf}`,
      );
  }
  if (typeof facts.signingKey === 'string') {
    const verifying = [...new Set(Object.values(verifiedBy))];
    const trusted = keys.signing.some((k) => digestsEqual(k.id, facts.signingKey as string));
    if (trusted && verifying.every((id) => digestsEqual(id, facts.signingKey as string)))
      c.pass('record.signing-key', `the run records signing key ${short(facts.signingKey)}, a trusted key`);
    else
      c.fail(
        'record.signing-key',
        'RECORD_MISMATCH',
        `the run records signing key ${short(facts.signingKey)}, the bundles verify with ${verifying.map(short).join(', ') || 'no trusted key'}`,
      );
  }

  // ───── audit log ─────
  const firstSigning = Object.values(verifiedBy)[0];
  const signingKey = keys.signing.find((k) => k.id === firstSigning);
  if (signingKey) evidence.signingKey = signingKey;
  // With rotated audit keys, the latest checkpoint is signed by one of them: use the one that verifies it.
  let auditKey = keys.audit[0] as TrustedKey;
  for (const k of keys.audit) {
    try {
      if ((await deps.openAudit(k).latestCheckpoint()) !== undefined) {
        auditKey = k;
        evidence.auditKey = k;
        break;
      }
    } catch {
      /* not this key */
    }
  }
  await verifyAudit(
    { log: deps.openAudit(auditKey), key: auditKey, witnesses: keys.witnesses ?? [] },
    run,
    c,
    evidence,
    verifiedBy,
    reportSigned,
    {
      raw: actualRaw,
      processed: actualProcessed,
      model: actualModel,
      ...(facts.gateDecisionKey && decisionDoc.ok ? { gateDecision: digestOf(decisionDoc.bytes) } : {}),
      ...(facts.fairnessReportKey && report.ok ? { fairnessReport: digestOf(report.bytes) } : {}),
      ...(evidence.rawManifest ? { rawManifest: digestOf(evidence.rawManifest) } : {}),
    },
  );

  const checks = c.list;
  return {
    report: { ok: checks.every((x) => x.ok), runId: run.runId, status: run.status, checks },
    evidence,
  };
}

async function verifyAudit(
  audit: { log: ObjectAuditLog; key: TrustedKey; witnesses: readonly WitnessKey[] },
  run: RunRecord,
  c: Checks,
  evidence: Evidence,
  verifiedBy: Partial<Record<BundleSlot, string>>,
  reportSigned: { statement: Digest; key: string } | undefined,
  actualDigests: Record<string, Digest>,
): Promise<void> {
  const actual: Record<string, Digest> = {
    ...actualDigests,
    ...(reportSigned ? { report: reportSigned.statement } : {}),
  };
  const log = audit.log;
  const auditPem = audit.key.pem;
  const entries: AuditEntry[] = [];
  try {
    for await (const e of log.entriesOf(run.runId)) entries.push(e);
  } catch (e) {
    c.fail('audit.entries', 'AUDIT_CORRUPT', `the audit log cannot be read: ${toErrorInfo(e).message}`);
    return;
  }
  evidence.auditEntries = entries;
  const terminal = run.status === 'FAILED' ? 'run.failed' : 'run.finished';
  const ended = ['SUCCEEDED', 'REJECTED', 'FAILED'].includes(run.status);
  if (entries.length === 0)
    c.fail('audit.entries', 'AUDIT_ENTRY_MISSING', `the audit log holds no entry of run ${run.runId}`);
  else if (ended && !entries.some((e) => e.type === terminal)) {
    c.fail(
      'audit.entries',
      'AUDIT_ENTRY_MISSING',
      `the run is ${run.status} but the audit log has no ${terminal} entry for it`,
    );
  } else c.pass('audit.entries', `${entries.length} entries (seq ${entries[0]?.seq}…${entries.at(-1)?.seq})`);

  let checkpoint: Awaited<ReturnType<ObjectAuditLog['latestCheckpoint']>>;
  try {
    checkpoint = await log.latestCheckpoint();
  } catch (e) {
    c.fail(
      'audit.checkpoint',
      'AUDIT_CHECKPOINT_INVALID',
      `the latest checkpoint does not verify with the audit key: ${toErrorInfo(e).message}`,
    );
    return;
  }
  if (checkpoint === undefined) {
    c.fail('audit.checkpoint', 'AUDIT_NOT_CHECKPOINTED', 'the audit log has no signed checkpoint');
    return;
  }
  evidence.checkpoint = checkpoint.note;
  c.pass('audit.checkpoint', `signed checkpoint of ${checkpoint.size} entries`);

  const problems: { code: VerifyCode; detail: string }[] = [];
  for (const entry of entries) {
    if (entry.seq >= checkpoint.size) {
      problems.push({
        code: 'AUDIT_NOT_CHECKPOINTED',
        detail: `entry ${entry.seq} is beyond the latest checkpoint (${checkpoint.size})`,
      });
      continue;
    }
    try {
      const proof = await log.prove(entry.seq, { checkpointSize: checkpoint.size });
      verifyProofBundle(proof, auditPem);
      evidence.proofs.push(proof);
    } catch (e) {
      const code: VerifyCode = isVeritrailError(e, 'SIGNATURE_INVALID')
        ? 'AUDIT_CHECKPOINT_INVALID'
        : 'AUDIT_PROOF_FAILED';
      problems.push({
        code,
        detail: `entry ${entry.seq} (${entry.step} ${entry.type}) is not proven by the signed checkpoint: ${toErrorInfo(e).message}`,
      });
    }
  }
  const first = problems[0];
  if (first !== undefined) c.fail('audit.inclusion', first.code, problems.map((p) => p.detail).join('; '));
  else if (entries.length > 0)
    c.pass('audit.inclusion', `every entry of the run is included in checkpoint ${checkpoint.size}`);
  if (first !== undefined) return;

  // Is the run under a checkpoint that independent witnesses cosigned (C2SP tlog-witness)? Only a
  // witness can tell a rolled-back or forked log from the real one: the log's own key cannot.
  const last = entries.at(-1);
  if (audit.witnesses.length === 0) {
    c.pass(
      'audit.witnessed',
      'no witness named (--witness): whether the run is under a witnessed checkpoint was not checked',
    );
  } else if (last !== undefined) {
    const witnessed = await log.witnessedAt(last.seq, audit.witnesses, [auditPem]);
    if (witnessed === undefined) {
      c.fail(
        'audit.witnessed',
        'AUDIT_NOT_WITNESSED',
        `no checkpoint covering entry ${last.seq} carries a cosignature of ${audit.witnesses.map((w) => w.name).join(', ')}`,
      );
    } else {
      c.pass(
        'audit.witnessed',
        `checkpoint ${witnessed.checkpointSize} covers the run and is cosigned by ${witnessed.cosignatures.map((w) => w.witness).join(', ')}`,
      );
    }
  }

  const disagreements: string[] = [];
  for (const entry of entries) {
    for (const [role, digest] of Object.entries(entry.subjects ?? {})) {
      const real = actual[role];
      // Only roles the evidence pins; the raw role of a failed hash is absent, for instance.
      if (real !== undefined && real !== NO_DIGEST && !digestsEqual(real, digest)) {
        disagreements.push(
          `entry ${entry.seq} (${entry.step}) records ${role} ${short(digest)}, the evidence is ${short(real)}`,
        );
      }
    }
  }
  if (disagreements.length > 0) c.fail('audit.subjects', 'AUDIT_SUBJECT_MISMATCH', disagreements.join('; '));
  else c.pass('audit.subjects', 'the audited digests are the evidence digests');

  // The report is signed as the run ends; the log names it (report.signed), so a report swapped
  // in the run record for another validly signed one is caught even though its signature holds.
  if (reportSigned !== undefined) {
    const named = entries.find(
      (e) => e.subjects?.report !== undefined && digestsEqual(e.subjects.report, reportSigned.statement),
    );
    if (named !== undefined)
      c.pass('audit.report', `entry ${named.seq} names the signed report ${short(reportSigned.statement)}`);
    else
      c.fail(
        'audit.report',
        'AUDIT_ENTRY_MISSING',
        `no audit entry of the run names its signed report ${short(reportSigned.statement)}`,
      );
  }

  // The log is the record of which key signed what (the run record is not signed): every entry
  // that names a signing key must name the very key that verified the bundles it signed.
  const recorded = entries.flatMap((e) => {
    const d = e.detail as { key?: unknown; bundles?: unknown } | undefined;
    return typeof d?.key === 'string' && isDigest(d.key)
      ? [
          {
            seq: e.seq,
            step: e.step,
            key: d.key,
            bundles: Array.isArray(d.bundles) ? d.bundles.map(String) : [],
          },
        ]
      : [];
  });
  const slotOf: Record<string, BundleSlot | 'report'> = {
    ...Object.fromEntries(BUNDLE_SLOTS.map((b) => [b.fact, b.slot])),
    report: 'report',
  };
  const keyOf: Partial<Record<BundleSlot | 'report', string>> = {
    ...verifiedBy,
    ...(reportSigned ? { report: reportSigned.key } : {}),
  };
  const wrong: string[] = [];
  for (const r of recorded) {
    for (const b of r.bundles) {
      const slot = slotOf[b];
      const by = slot === undefined ? undefined : keyOf[slot];
      if (by !== undefined && !digestsEqual(by, r.key))
        wrong.push(
          `entry ${r.seq} (${r.step}) records key ${short(r.key)} for the ${slot} bundle, which verifies with ${short(by)}`,
        );
    }
  }
  if (wrong.length > 0) c.fail('audit.signing-key', 'KEY_MISMATCH', wrong.join('; '));
  else if (recorded.length === 0 && Object.keys(verifiedBy).some((s) => s !== 'transform'))
    c.fail(
      'audit.signing-key',
      'KEY_MISMATCH',
      "no audit entry records the key that signed the run's statements",
    );
  else if (recorded.length > 0)
    c.pass(
      'audit.signing-key',
      `the log records ${[...new Set(recorded.map((r) => short(r.key)))].join(', ')}, the key that verifies the bundles`,
    );
}

function jsonOf(bytes: Uint8Array): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(new TextDecoder().decode(bytes));
    return typeof v === 'object' && v !== null && !Array.isArray(v)
      ? (v as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

/** The manifest in `bytes`, or why it is not one. */
function manifestOf(bytes: Uint8Array): Manifest | string {
  const v = jsonOf(bytes);
  if (v === undefined) return 'the manifest is not JSON';
  try {
    return parseManifest(v);
  } catch (e) {
    return `the manifest is invalid: ${toErrorInfo(e).message}`;
  }
}

/** A dataset digest is a single file's own digest or a folder's manifest digest (HashDataset). */
function namesDataset(m: Manifest, digest: Digest): boolean {
  const [only, ...more] = m.files;
  if (only !== undefined && more.length === 0 && digestsEqual(only.digest, digest)) return true;
  return digestsEqual(manifestDigest(m), digest);
}

/** The pinned files of raw.pins.json (path, size, VersionId), or undefined when it is not that. */
function pinnedFilesOf(bytes: Uint8Array): DatasetFile[] | undefined {
  try {
    const v: unknown = JSON.parse(new TextDecoder().decode(bytes));
    if (!Array.isArray(v)) return undefined;
    const out: DatasetFile[] = [];
    for (const f of v as Record<string, unknown>[]) {
      if (typeof f?.uri !== 'string' || typeof f.path !== 'string' || typeof f.size !== 'number')
        return undefined;
      out.push({
        uri: f.uri,
        path: f.path,
        size: f.size,
        ...(typeof f.versionId === 'string' ? { versionId: f.versionId } : {}),
      });
    }
    return out.length > 0 ? out : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The dataset digest of `files` as HashDataset computes it (a single file's own SHA-256, else its
 * manifest's), each file streamed at its pinned version and its size checked.
 */
async function rehashPinned(datasets: Pick<DatasetSource, 'open'>, files: DatasetFile[]): Promise<Digest> {
  const hashed: { path: string; size: number; digest: Digest }[] = [];
  for (const f of files) {
    const { hex, size } = await hashStream(await datasets.open(f));
    if (size !== f.size)
      throw new Error(`${f.path} is ${size} bytes at its pinned version, the pins say ${f.size}`);
    hashed.push({ path: f.path, size, digest: digestFromHex(hex) });
  }
  const [only, ...more] = hashed;
  return only !== undefined && more.length === 0 ? only.digest : manifestDigest(buildManifest(hashed));
}
