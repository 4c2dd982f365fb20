import type { z } from 'zod';
import { type Digest, digestOf, digestsEqual, isDigest } from '../digest.js';
import { parseBundle } from './bundle.js';
import { verifyEnvelopeSignature } from './dsse.js';
import { AttestationError } from './errors.js';
import { parsePublicKey } from './keys.js';
import {
  MODEL_SIGNING_PREDICATE_TYPE,
  ModelSigningPredicateSchema,
  modelSigningRootDigest,
  SINGLE_FILE_RESOURCE_NAME,
} from './model-signing.js';
import {
  FAIRNESS_PREDICATE_TYPE,
  FairnessPredicateSchema,
  GATE_PREDICATE_TYPE,
  GatePredicateSchema,
  MODEL_REPORT_PREDICATE_TYPE,
  ModelReportPredicateSchema,
  RETRAIN_SKIP_PREDICATE_TYPE,
  RetrainSkipPredicateSchema,
  TRANSFORM_PREDICATE_TYPE,
  TransformPredicateSchema,
} from './predicates.js';
import { SLSA_PROVENANCE_PREDICATE_TYPE, SlsaProvenancePredicateSchema } from './slsa.js';
import { IN_TOTO_PAYLOAD_TYPE, type Statement, StatementSchema } from './statement.js';

/** The predicate schemas verification enforces. Other predicate types pass through unchecked. */
export const KNOWN_PREDICATES: Readonly<Record<string, z.ZodType>> = {
  [SLSA_PROVENANCE_PREDICATE_TYPE]: SlsaProvenancePredicateSchema,
  [MODEL_SIGNING_PREDICATE_TYPE]: ModelSigningPredicateSchema,
  [TRANSFORM_PREDICATE_TYPE]: TransformPredicateSchema,
  [FAIRNESS_PREDICATE_TYPE]: FairnessPredicateSchema,
  [GATE_PREDICATE_TYPE]: GatePredicateSchema,
  [RETRAIN_SKIP_PREDICATE_TYPE]: RetrainSkipPredicateSchema,
  [MODEL_REPORT_PREDICATE_TYPE]: ModelReportPredicateSchema,
};

export interface VerifyOptions {
  /** The artifact's bytes or digest: some subject must carry this sha256 (SUBJECT_MISMATCH otherwise). */
  artifact?: Uint8Array | Digest;
  /** Refuse any other predicateType (PREDICATE_TYPE). */
  predicateType?: string;
}

export interface VerifiedStatement {
  statement: Statement;
  /** The exact payload bytes that were verified (DSSE protocol.md: hand these on, never re-parse). */
  payload: Uint8Array;
  /** sha256 of `payload`. */
  payloadDigest: Digest;
  /** Hint of the key that verified, as written in bundles. */
  keyHint: string;
}

/**
 * Checks the statement's predicate against its schema (known types only) and, for a model
 * signature, that the subject digest is the digest over the resources, as model-transparency's
 * `dsse_payload_to_manifest` does. Throws PREDICATE_MALFORMED.
 */
export function checkPredicate(statement: Statement): void {
  const schema = KNOWN_PREDICATES[statement.predicateType];
  if (schema === undefined) return;
  const parsed = schema.safeParse(statement.predicate ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new AttestationError(
      'PREDICATE_MALFORMED',
      `the ${statement.predicateType} predicate is malformed at ${issue?.path.join('.') || '(root)'}: ${issue?.message ?? ''}`,
      { cause: parsed.error },
    );
  }
  if (statement.predicateType === MODEL_SIGNING_PREDICATE_TYPE) {
    const predicate = parsed.data as z.infer<typeof ModelSigningPredicateSchema>;
    const [subject, ...rest] = statement.subject;
    if (subject === undefined || rest.length > 0) {
      throw new AttestationError(
        'PREDICATE_MALFORMED',
        'a model signature statement must have exactly one subject',
      );
    }
    const root = modelSigningRootDigest(predicate.resources);
    if (!digestsEqual(`sha256:${subject.digest.sha256 ?? ''}`, root)) {
      throw new AttestationError(
        'PREDICATE_MALFORMED',
        'the model signature subject digest is not the digest over its resources: the manifest is inconsistent',
      );
    }
  }
}

function artifactDigest(artifact: Uint8Array | Digest): Digest {
  if (artifact instanceof Uint8Array) return digestOf(artifact);
  if (!isDigest(artifact)) {
    throw new AttestationError(
      'SUBJECT_MISMATCH',
      'the expected artifact digest is not of the form sha256:<64 hex>',
    );
  }
  return artifact;
}

/**
 * True when `digest` names one of the statement's subjects. For a model signature whose model is
 * a single file, the file digest (the one resource named ".") also matches, since the subject
 * digest there is a digest over digests.
 */
export function statementCovers(statement: Statement, digest: Digest): boolean {
  let found = false;
  // No early exit: every subject is compared, in constant time each.
  for (const s of statement.subject) {
    if (typeof s.digest.sha256 === 'string' && digestsEqual(`sha256:${s.digest.sha256}`, digest))
      found = true;
  }
  if (statement.predicateType === MODEL_SIGNING_PREDICATE_TYPE) {
    const resources =
      (statement.predicate as { resources?: { name?: unknown; digest?: unknown }[] }).resources ?? [];
    const [only, ...more] = resources;
    if (
      only !== undefined &&
      more.length === 0 &&
      only.name === SINGLE_FILE_RESOURCE_NAME &&
      typeof only.digest === 'string' &&
      digestsEqual(`sha256:${only.digest}`, digest)
    ) {
      found = true;
    }
  }
  return found;
}

/**
 * Verifies a Sigstore bundle v0.3 holding a DSSE-signed in-toto statement, offline, with the
 * public key handed in. Steps, in order (each failure is an {@link AttestationError}, and nothing
 * else is ever thrown for bad input): KEY_INVALID, BUNDLE_MALFORMED, SIGNATURE_INVALID over
 * PAE(payloadType, payload), PAYLOAD_TYPE, STATEMENT_MALFORMED, PREDICATE_TYPE (when
 * `options.predicateType` is set), PREDICATE_MALFORMED, SUBJECT_MISMATCH (when `options.artifact`
 * is set). The key hint and DSSE keyid are not consulted: they are unauthenticated
 * (DSSE protocol.md, KEYID).
 */
export function verifyBundle(
  bundleJson: unknown,
  publicKeyPem: string,
  options?: VerifyOptions,
): VerifiedStatement {
  try {
    return verifyBundleUnsafe(bundleJson, publicKeyPem, options);
  } catch (e) {
    if (e instanceof AttestationError) throw e;
    // Defence in depth: whatever slipped through the checks above is still a malformed bundle.
    throw new AttestationError('BUNDLE_MALFORMED', 'the bundle could not be read', { cause: e });
  }
}

function verifyBundleUnsafe(
  bundleJson: unknown,
  publicKeyPem: string,
  options?: VerifyOptions,
): VerifiedStatement {
  const key = parsePublicKey(publicKeyPem);
  const { envelope } = parseBundle(bundleJson);
  verifyEnvelopeSignature(key, envelope);
  if (envelope.payloadType !== IN_TOTO_PAYLOAD_TYPE) {
    throw new AttestationError(
      'PAYLOAD_TYPE',
      `the payloadType is ${JSON.stringify(envelope.payloadType)}; expected ${IN_TOTO_PAYLOAD_TYPE}`,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(envelope.payload));
  } catch (cause) {
    throw new AttestationError('STATEMENT_MALFORMED', 'the signed payload is not UTF-8 JSON', { cause });
  }
  const parsed = StatementSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new AttestationError(
      'STATEMENT_MALFORMED',
      `the signed payload is not an in-toto Statement v1: ${issue?.path.join('.') || '(root)'}: ${issue?.message ?? ''}`,
      { cause: parsed.error },
    );
  }
  const statement = json as Statement;
  if (options?.predicateType !== undefined && statement.predicateType !== options.predicateType) {
    throw new AttestationError(
      'PREDICATE_TYPE',
      `the statement is a ${statement.predicateType}; expected ${options.predicateType}`,
    );
  }
  checkPredicate(statement);
  if (options?.artifact !== undefined) {
    const expected = artifactDigest(options.artifact);
    if (!statementCovers(statement, expected)) {
      throw new AttestationError(
        'SUBJECT_MISMATCH',
        `no subject of the statement has the artifact's digest ${expected}: the artifact is not the one that was signed`,
        { details: { artifact: expected } },
      );
    }
  }
  return {
    statement,
    payload: envelope.payload,
    payloadDigest: digestOf(envelope.payload),
    keyHint: key.hint,
  };
}
