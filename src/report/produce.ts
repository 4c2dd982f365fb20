/**
 * Produces a run's signed model report statement (model-report/v1): gathers the evidence the run
 * stored (run record, pipeline definition, signed statements, documents), builds the facts with the
 * pure core, signs them with the runtime's signer and stores the Sigstore bundle content-addressed.
 * Small on purpose: it runs at the end of every run, in a Lambda on AWS; the HTML is rendered
 * elsewhere (src/report/html.ts, `veritrail report`) from the signed statement.
 */
import { loadPipeline, putBytesCas, readObject } from '../cas.js';
import {
  buildModelReportStatement,
  FAIRNESS_PREDICATE_TYPE,
  type FairnessPredicate,
  parseBundle,
  type Statement,
  serializeBundle,
  signStatement,
} from '../core/attest/index.js';
import { signingKeyId } from '../core/attest/keys.js';
import { type Digest, digestFromHex, digestOf, isDigest } from '../core/digest.js';
import { toErrorInfo } from '../core/errors.js';
import { buildReportFacts, type ReportPipeline } from '../core/report/facts.js';
import { factsOf } from '../core/run-facts.js';
import type { ObjectStore, RunRecord, RunStore, Signer } from '../ports.js';

const CAS_KEY = /^sha256\/([0-9a-f]{64})$/;

/** The bundles of a run, in chain order: the fact under `facts.bundles`, the kit's file name. */
const REPORT_BUNDLES = [
  { fact: 'transform', file: 'transform.sigstore.json' },
  { fact: 'provenance', file: 'provenance.sigstore.json' },
  { fact: 'modelSignature', file: 'model-signature.sigstore.json' },
  { fact: 'fairness', file: 'fairness.sigstore.json' },
  { fact: 'gate', file: 'gate.sigstore.json' },
] as const;

/** The documents of a run: the fact holding its content address, the kit's file name. */
const REPORT_DOCUMENTS = [
  { fact: 'rawManifestKey', file: 'manifests/raw.manifest.json' },
  { fact: 'rawPinsKey', file: 'manifests/raw.pins.json' },
  { fact: 'processedManifestKey', file: 'manifests/processed.manifest.json' },
  { fact: 'fairnessReportKey', file: 'fairness-report.json' },
  { fact: 'gateDecisionKey', file: 'gate-decision.json' },
  { fact: 'modelKey', file: 'model.tar.gz' },
] as const;

/**
 * The artifacts key of each bundle of the run: Sign's `bundles`, and for a run that never reached
 * Sign the transform bundle Preprocess recorded.
 */
function bundleKeysOf(run: RunRecord): Record<string, string> {
  const f = factsOf(run);
  const keys: Record<string, string> = { ...f.bundles };
  if (keys.transform === undefined && f.transformBundleKey !== undefined)
    keys.transform = f.transformBundleKey;
  return keys;
}

function keyDigest(key: unknown): Digest | undefined {
  if (typeof key !== 'string') return undefined;
  const m = CAS_KEY.exec(key);
  return m?.[1] ? digestFromHex(m[1]) : undefined;
}

export interface ProducedReport {
  statement: Statement;
  /** Artifacts key of the stored bundle. */
  key: string;
  /** sha256 of the DSSE payload: the digest the HTML report shows. */
  statementDigest: Digest;
}

/**
 * Gathers, builds, signs and stores the report statement of `run`, as ending with `status`.
 * Reads only content-addressed objects, each checked against its address; an object that is absent
 * or altered is left out of the report (verification names it), never guessed.
 */
export async function produceReport(
  rt: { objects: ObjectStore; signer: Signer; mode: 'local' | 'aws'; now(): Date },
  run: RunRecord,
  options: { status?: string; error?: { code: string; message: string } } = {},
): Promise<ProducedReport> {
  const read = async (key: unknown): Promise<Uint8Array | undefined> => {
    const d = keyDigest(key);
    if (d === undefined) return undefined;
    try {
      const bytes = await readObject(rt.objects, 'artifacts', key as string);
      return digestOf(bytes) === d ? bytes : undefined;
    } catch {
      return undefined;
    }
  };
  const files: { name: string; digest: Digest }[] = [];
  const recorded = factsOf(run);
  for (const { fact, file } of REPORT_DOCUMENTS) {
    const key = recorded[fact];
    // The model is hashed by Train when stored; it is named by its content address, not re-read.
    // On SageMaker the model stays where the job wrote it (training/…): named by the digest Train recorded.
    const recordedModel = recorded.modelDigest;
    const d =
      fact === 'modelKey'
        ? (keyDigest(key) ?? recordedModel)
        : (await read(key))
          ? keyDigest(key)
          : undefined;
    if (d !== undefined) files.push({ name: file, digest: d });
  }
  const statements: { name: string; digest: Digest; predicateType: string }[] = [];
  let fairness: FairnessPredicate | undefined;
  const bundleKeys = bundleKeysOf(run);
  for (const { fact, file } of REPORT_BUNDLES) {
    const bytes = await read(bundleKeys[fact]);
    if (bytes === undefined) continue;
    files.push({ name: file, digest: digestOf(bytes) });
    try {
      const payload = parseBundle(bytes).envelope.payload;
      const st = JSON.parse(new TextDecoder().decode(payload)) as Statement;
      statements.push({ name: fact, digest: digestOf(payload), predicateType: st.predicateType });
      if (st.predicateType === FAIRNESS_PREDICATE_TYPE) fairness = st.predicate as FairnessPredicate;
    } catch {
      /* a malformed bundle is named by verification; the report leaves it out */
    }
  }
  let gateDecision: Parameters<typeof buildReportFacts>[0]['gateDecision'];
  const gateBytes = await read(recorded.gateDecisionKey);
  if (gateBytes !== undefined) {
    try {
      gateDecision = { digest: digestOf(gateBytes), doc: JSON.parse(new TextDecoder().decode(gateBytes)) };
    } catch {
      /* left out */
    }
  }
  let pipeline: ReportPipeline | undefined;
  try {
    if (isDigest(run.pipelineDigest)) pipeline = await loadPipeline(rt.objects, run.pipelineDigest);
  } catch {
    /* the report says less; verification names the missing definition */
  }
  const facts = buildReportFacts({
    run,
    ...(pipeline ? { pipeline } : {}),
    mode: rt.mode,
    ...(fairness ? { fairness } : {}),
    ...(gateDecision ? { gateDecision } : {}),
    statements,
    files,
    status: options.status ?? run.status,
    ...(options.error ? { error: options.error } : {}),
    now: rt.now(),
  });
  const statement = buildModelReportStatement(facts);
  const signed = await signStatement(statement, rt.signer);
  const bytes = new TextEncoder().encode(serializeBundle(signed.bundle));
  const stored = await putBytesCas(rt.objects, bytes, digestOf(bytes));
  return { statement, key: stored.key, statementDigest: signed.payloadDigest };
}

/**
 * The report at the end of a run (Finish, RecordFailure): the run as it ends, with `status` and the
 * end time, signed. Returns the facts to record with the status change.
 */
export async function produceRunReport(
  rt: {
    objects: ObjectStore;
    signer: Signer;
    mode: 'local' | 'aws';
    now(): Date;
    runs: Pick<RunStore, 'get'>;
  },
  runId: string,
  end: { status: string; error?: { code: string; message: string } },
): Promise<{ reportKey: string; reportDigest: Digest; reportSigningKey: Digest } | undefined> {
  const run = await rt.runs.get(runId);
  if (run === undefined) return undefined;
  const finishedAt = rt.now().toISOString();
  const r = await produceReport(rt, { ...run, facts: { ...run.facts, finishedAt } }, end);
  return {
    reportKey: r.key,
    reportDigest: r.statementDigest,
    reportSigningKey: await signingKeyId(rt.signer),
  };
}

/**
 * The facts to record as a run ends: `reportKey`, `reportDigest` and `reportSigningKey`, or `reportError` when the
 * report could not be made. A report never keeps a run from ending (the evidence it would sum up
 * stays checkable with `veritrail verify`); the error is recorded, and logged, instead.
 */
export async function endOfRunReport(
  rt: Parameters<typeof produceRunReport>[0],
  runId: string,
  end: Parameters<typeof produceRunReport>[2],
): Promise<Record<string, unknown>> {
  try {
    return (await produceRunReport(rt, runId, end)) ?? {};
  } catch (e) {
    const info = toErrorInfo(e);
    console.warn(JSON.stringify({ source: 'model-report', runId, error: info }));
    return { reportError: { code: info.code, message: info.message } };
  }
}
