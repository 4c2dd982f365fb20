/** Attestation formats and offline verification: DSSE, in-toto, SLSA, Model Signing, Sigstore bundles. */
export { decodeBase64, encodeBase64 } from './base64.js';
export {
  BUNDLE_MEDIA_TYPE,
  type ParsedBundle,
  parseBundle,
  type SignedStatement,
  type SigstoreBundle,
  serializeBundle,
  signStatement,
  statementDigest,
} from './bundle.js';
export {
  type ActualDigests,
  type ChainCheck,
  type ChainCheckCode,
  checkChain,
  firstFailure,
  type RunStatements,
} from './chain.js';
export {
  type DecodedEnvelope,
  type DsseEnvelope,
  type DsseSignature,
  decodeEnvelope,
  pae,
  signEnvelope,
  verifyEnvelopeSignature,
  verifyPae,
} from './dsse.js';
export {
  ATTESTATION_TO_DOMAIN_CODE,
  AttestationError,
  type AttestationErrorCode,
  AttestationErrorCodes,
  isAttestationError,
} from './errors.js';
export { parsePublicKey, publicKeyDer, publicKeyHint, type VerificationKey } from './keys.js';
export {
  buildModelSigningStatement,
  buildSingleFileModelSigningStatement,
  comparePathSegments,
  MODEL_SIGNING_PREDICATE_TYPE,
  type ModelSigningInput,
  type ModelSigningPredicate,
  ModelSigningPredicateSchema,
  type ModelSigningStatement,
  modelSigningRootDigest,
  SINGLE_FILE_RESOURCE_NAME,
} from './model-signing.js';
export {
  buildFairnessStatement,
  buildGateStatement,
  buildModelReportStatement,
  buildRetrainSkipStatement,
  buildTransformStatement,
  FAIRNESS_PREDICATE_TYPE,
  type FairnessGroup,
  type FairnessMetric,
  type FairnessPredicate,
  FairnessPredicateSchema,
  GATE_PREDICATE_TYPE,
  type GatePredicate,
  GatePredicateSchema,
  MODEL_REPORT_PREDICATE_TYPE,
  type ModelReportPredicate,
  ModelReportPredicateSchema,
  RESOURCE_NAMES,
  RETRAIN_SKIP_PREDICATE_TYPE,
  type ReportGroup,
  type ReportRate,
  type RetrainSkipPredicate,
  RetrainSkipPredicateSchema,
  type Sha256Resource,
  TRANSFORM_PREDICATE_TYPE,
  type TransformPredicate,
  TransformPredicateSchema,
} from './predicates.js';
export {
  buildProvenanceStatement,
  DEPENDENCY_NAMES,
  type DependencyRef,
  type ProvenanceInput,
  type ProvenanceStatement,
  SLSA_PROVENANCE_PREDICATE_TYPE,
  type SlsaProvenancePredicate,
  SlsaProvenancePredicateSchema,
  VERITRAIL_BUILD_TYPE,
} from './slsa.js';
export {
  buildStatement,
  type DigestSet,
  IN_TOTO_PAYLOAD_TYPE,
  type ResourceDescriptor,
  resource,
  STATEMENT_TYPE,
  type Statement,
  StatementSchema,
  statementPayload,
  subjectSha256s,
} from './statement.js';
export {
  checkPredicate,
  KNOWN_PREDICATES,
  statementCovers,
  type VerifiedStatement,
  type VerifyOptions,
  verifyBundle,
} from './verify.js';
