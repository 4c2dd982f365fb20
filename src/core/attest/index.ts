/** Attestation formats and offline verification: DSSE, in-toto, SLSA, Model Signing, Sigstore bundles. */

export {
  BUNDLE_MEDIA_TYPE,
  parseBundle,
  type SigstoreBundle,
  serializeBundle,
  signStatement,
  statementDigest,
} from './bundle.js';
export {
  type ActualDigests,
  type ChainCheckCode,
  checkChain,
  type RunStatements,
} from './chain.js';
export {
  pae,
  signEnvelope,
} from './dsse.js';
export {
  AttestationError,
  AttestationErrorCodes,
  isAttestationError,
} from './errors.js';
export { publicKeyDer, publicKeyHint } from './keys.js';
export { buildSingleFileModelSigningStatement } from './model-signing.js';
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
  GATE_PREDICATE_TYPE,
  MODEL_REPORT_PREDICATE_TYPE,
  type ModelReportPredicate,
  RETRAIN_SKIP_PREDICATE_TYPE,
  type ReportGroup,
  type ReportRate,
} from './predicates.js';
export { buildProvenanceStatement } from './slsa.js';
export {
  buildStatement,
  resource,
  type Statement,
} from './statement.js';
export {
  statementCovers,
  verifyBundle,
} from './verify.js';
