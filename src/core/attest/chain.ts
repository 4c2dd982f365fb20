import type { z } from 'zod';
import { type Digest, digestsEqual } from '../digest.js';
import { statementDigest } from './bundle.js';
import { isAttestationError } from './errors.js';
import { MODEL_SIGNING_PREDICATE_TYPE, type ModelSigningPredicateSchema } from './model-signing.js';
import {
  FAIRNESS_PREDICATE_TYPE,
  GATE_PREDICATE_TYPE,
  type GatePredicateSchema,
  RESOURCE_NAMES,
  TRANSFORM_PREDICATE_TYPE,
  type TransformPredicateSchema,
} from './predicates.js';
import {
  DEPENDENCY_NAMES,
  SLSA_PROVENANCE_PREDICATE_TYPE,
  type SlsaProvenancePredicateSchema,
} from './slsa.js';
import type { Statement } from './statement.js';
import { checkPredicate, statementCovers } from './verify.js';

/**
 * The chain of custody of one run: raw → processed (transform) → model (provenance, model
 * signature) → fairness → gate. Given the run's verified statements and the digests of the actual
 * bytes, lists every check in chain order, so the first failing one names the first broken link.
 */

export type ChainCheckCode =
  | 'OK'
  /** A statement of the run is absent. */
  | 'STATEMENT_MISSING'
  /** A statement sits in the wrong slot (its predicateType is not the one expected there). */
  | 'PREDICATE_TYPE'
  | 'PREDICATE_MALFORMED'
  /** A statement's subject is not the digest of the actual artifact. */
  | 'SUBJECT_MISMATCH'
  /** A statement names an input whose digest differs from the actual input. */
  | 'DEPENDENCY_MISMATCH'
  /** Two statements disagree about the artifact that links them. */
  | 'LINK_BROKEN'
  /** Statements name different runs. */
  | 'RUN_MISMATCH';

export interface ChainCheck {
  /** Stable dotted name, e.g. `transform.subject`, `link.processed-model`. */
  name: string;
  ok: boolean;
  code: ChainCheckCode;
  detail: string;
}

export interface RunStatements {
  transform?: Statement;
  provenance?: Statement;
  modelSigning?: Statement;
  fairness?: Statement;
  gate?: Statement;
}

/** Digests of the bytes as they are now (recomputed by the caller from storage). */
export interface ActualDigests {
  runId?: string;
  raw: Digest;
  processed: Digest;
  /** The model artifact (model.tar.gz). */
  model: Digest;
  trainingCode?: Digest;
  transformCode?: Digest;
  /** Image digest (`sha256:…` of `repo@sha256:…`), when training ran in a container image. */
  image?: Digest;
}

type Transform = z.infer<typeof TransformPredicateSchema>;
type Provenance = z.infer<typeof SlsaProvenancePredicateSchema>;
type ModelSigning = z.infer<typeof ModelSigningPredicateSchema>;
type Gate = z.infer<typeof GatePredicateSchema>;

function sha(hex: string | undefined): string {
  return `sha256:${hex ?? ''}`;
}

function short(d: string): string {
  return d.length > 19 ? `${d.slice(0, 19)}…` : d;
}

export function checkChain(statements: RunStatements, actual: ActualDigests): ChainCheck[] {
  const checks: ChainCheck[] = [];
  const pass = (name: string, detail: string) => checks.push({ name, ok: true, code: 'OK', detail });
  const fail = (name: string, code: ChainCheckCode, detail: string) =>
    checks.push({ name, ok: false, code, detail });
  const same = (
    name: string,
    code: ChainCheckCode,
    what: string,
    claimed: string | undefined,
    real: string,
  ) => {
    if (claimed !== undefined && digestsEqual(claimed, real)) pass(name, `${what} ${short(real)}`);
    else
      fail(
        name,
        code,
        `${what}: statement says ${claimed === undefined ? 'nothing' : short(claimed)}, actual is ${short(real)}`,
      );
  };

  /** Presence, slot and predicate checks; returns the statement when usable. */
  const usable = (slot: string, s: Statement | undefined, type: string): Statement | undefined => {
    if (s === undefined) {
      fail(`${slot}.present`, 'STATEMENT_MISSING', `no ${slot} statement for this run`);
      return undefined;
    }
    if (s.predicateType !== type) {
      fail(`${slot}.predicate`, 'PREDICATE_TYPE', `expected ${type}, found ${s.predicateType}`);
      return undefined;
    }
    try {
      checkPredicate(s);
    } catch (e) {
      if (!isAttestationError(e)) throw e;
      fail(`${slot}.predicate`, 'PREDICATE_MALFORMED', e.message);
      return undefined;
    }
    pass(`${slot}.predicate`, type);
    return s;
  };
  const subjectIs = (slot: string, s: Statement, real: Digest, what: string) => {
    if (statementCovers(s, real)) pass(`${slot}.subject`, `${what} ${short(real)}`);
    else
      fail(`${slot}.subject`, 'SUBJECT_MISMATCH', `${what}: no subject has the actual digest ${short(real)}`);
  };
  const runIds: { slot: string; runId: string }[] = [];

  // raw → processed
  const transform = usable('transform', statements.transform, TRANSFORM_PREDICATE_TYPE);
  let transformRaw: string | undefined;
  let transformOut: string | undefined;
  if (transform !== undefined) {
    const p = transform.predicate as Transform;
    runIds.push({ slot: 'transform', runId: p.runId });
    subjectIs('transform', transform, actual.processed, 'processed data');
    transformOut = sha(transform.subject[0]?.digest.sha256);
    const raw = p.inputs.find((r) => r.name === RESOURCE_NAMES.raw) ?? p.inputs[0];
    transformRaw = raw === undefined ? undefined : sha(raw.digest.sha256);
    same('transform.raw', 'DEPENDENCY_MISMATCH', 'raw data', transformRaw, actual.raw);
    if (actual.transformCode !== undefined) {
      same(
        'transform.code',
        'DEPENDENCY_MISMATCH',
        'transform code',
        sha(p.transform.code.digest.sha256),
        actual.transformCode,
      );
    }
  }

  // processed → model
  const provenance = usable('provenance', statements.provenance, SLSA_PROVENANCE_PREDICATE_TYPE);
  let provenanceModel: string | undefined;
  if (provenance !== undefined) {
    const p = provenance.predicate as Provenance;
    runIds.push({ slot: 'provenance', runId: p.runDetails.metadata.invocationId });
    subjectIs('provenance', provenance, actual.model, 'model');
    provenanceModel = sha(provenance.subject[0]?.digest.sha256);
    const dep = (name: string) => {
      const d = p.buildDefinition.resolvedDependencies.find((r) => r.name === name);
      return d === undefined ? undefined : sha(d.digest.sha256);
    };
    same('provenance.raw', 'DEPENDENCY_MISMATCH', 'raw data', dep(DEPENDENCY_NAMES.raw), actual.raw);
    same(
      'provenance.processed',
      'DEPENDENCY_MISMATCH',
      'processed data',
      dep(DEPENDENCY_NAMES.processed),
      actual.processed,
    );
    if (actual.trainingCode !== undefined) {
      same(
        'provenance.code',
        'DEPENDENCY_MISMATCH',
        'training code',
        dep(DEPENDENCY_NAMES.code),
        actual.trainingCode,
      );
    }
    if (actual.image !== undefined) {
      same(
        'provenance.image',
        'DEPENDENCY_MISMATCH',
        'training image',
        dep(DEPENDENCY_NAMES.image),
        actual.image,
      );
    }
    if (transform !== undefined && transformRaw !== undefined && transformOut !== undefined) {
      same(
        'link.raw',
        'LINK_BROKEN',
        'raw data named by transform and provenance',
        dep(DEPENDENCY_NAMES.raw),
        transformRaw,
      );
      same(
        'link.processed',
        'LINK_BROKEN',
        'processed data produced by the transform and consumed by training',
        dep(DEPENDENCY_NAMES.processed),
        transformOut,
      );
    }
  }

  // model → signature
  const signature = usable('model-signing', statements.modelSigning, MODEL_SIGNING_PREDICATE_TYPE);
  if (signature !== undefined) {
    const p = signature.predicate as ModelSigning;
    subjectIs(
      'model-signing',
      signature,
      actual.model,
      `model signature over ${p.resources.length} resource(s)`,
    );
    if (provenanceModel !== undefined) {
      const covers = statementCovers(signature, provenanceModel as Digest);
      if (covers) pass('link.model-signing', 'model signature covers the model of the provenance');
      else
        fail(
          'link.model-signing',
          'LINK_BROKEN',
          'the model signature does not cover the model named by the provenance',
        );
    }
  }

  // model → fairness
  const fairness = usable('fairness', statements.fairness, FAIRNESS_PREDICATE_TYPE);
  if (fairness !== undefined) {
    runIds.push({ slot: 'fairness', runId: (fairness.predicate as { runId: string }).runId });
    subjectIs('fairness', fairness, actual.model, 'model');
    if (provenanceModel !== undefined) {
      same(
        'link.fairness',
        'LINK_BROKEN',
        'model evaluated for fairness vs model built',
        sha(fairness.subject[0]?.digest.sha256),
        provenanceModel,
      );
    }
  }

  // fairness → gate
  const gate = usable('gate', statements.gate, GATE_PREDICATE_TYPE);
  if (gate !== undefined) {
    const p = gate.predicate as Gate;
    runIds.push({ slot: 'gate', runId: p.runId });
    subjectIs('gate', gate, actual.model, 'model');
    if (fairness !== undefined) {
      const evidence = p.evidence.find((r) => r.name === RESOURCE_NAMES.fairness);
      same(
        'link.gate',
        'LINK_BROKEN',
        'fairness statement the gate decided on',
        evidence === undefined ? undefined : sha(evidence.digest.sha256),
        statementDigest(fairness),
      );
    }
  }

  // one run
  const expected = actual.runId ?? runIds[0]?.runId;
  const strangers = runIds.filter((r) => r.runId !== expected);
  if (expected !== undefined) {
    if (strangers.length === 0) pass('run.id', `every statement names run ${expected}`);
    else
      fail(
        'run.id',
        'RUN_MISMATCH',
        strangers.map((r) => `${r.slot} names run ${r.runId}, expected ${expected}`).join('; '),
      );
  }
  return checks;
}

/** The first failing check: the first broken link along the chain. */
export function firstFailure(checks: readonly ChainCheck[]): ChainCheck | undefined {
  return checks.find((c) => !c.ok);
}
