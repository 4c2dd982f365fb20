/**
 * veritrail as a library: the offline verifiers an auditor or a third-party tool needs, with no
 * I/O and no AWS dependency. Hashes are Uint8Array, sizes and indices bigint.
 */

export { type ProofBundle, verifyProofBundle } from './audit/verify/proof.js';
export { AttestationError, checkChain, pae, verifyBundle } from './core/attest/index.js';
export { canonicalJson } from './core/jcs.js';
export { buildManifest, manifestDigest } from './core/manifest.js';
export { ProofError, verifyConsistencyProof, verifyInclusionProof } from './core/merkle.js';
