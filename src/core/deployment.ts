/**
 * What the stacks (stacks/) and the AWS adapters (src/aws) must agree on about deployed resources:
 * names, key specs, key schemas. One definition each, here, because the stacks import only src/core
 * (no runtime code at synth: .dependency-cruiser.cjs).
 */

// ───── audit log (src/aws/runtime.ts; stacks/Witness.ts names this app's log) ─────

/** The audit log's checkpoint origin on AWS: one log per audit bucket. */
export function auditOrigin<C extends { buckets: { audit: string } }>(config: C): string {
  return `veritrail.aws/${config.buckets.audit}`;
}

// ───── witness (src/aws/kms-cosigner.ts, src/aws/dynamo-witness-store.ts; stacks/Witness.ts) ─────

/** The witness's KMS key: Ed25519, as C2SP tlog-cosignature signs. */
export const KMS_WITNESS_KEY_SPEC = 'ECC_NIST_EDWARDS25519';
export const KMS_WITNESS_SIGNING_ALGORITHM = 'ED25519_SHA_512';

/** The table's only key attribute. */
export const WITNESS_TABLE_KEY = 'origin';

// ───── model registry (src/aws/sagemaker-registry.ts; stacks/approval.ts) ─────

/** `veritrail-<pipeline>` with every character SageMaker refuses turned into a hyphen. */
export function defaultGroupName(pipeline: string): string {
  return `veritrail-${pipeline}`
    .replace(/[^a-zA-Z0-9-]/g, '-')
    .replace(/-+$/, '')
    .slice(0, 63);
}
