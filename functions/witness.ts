/**
 * Lambda of the Witness stack (stacks/Witness.ts): a c2sp.org/tlog-witness witness behind a
 * function URL, cosigning the audit log's checkpoints with a KMS Ed25519 key after checking each
 * against the state in its own DynamoDB table; at deploy time it also answers the custom resource
 * that publishes its vkey. docs/audit-log.md, "A witness on AWS".
 */
import { composeWitness, witnessHandler } from '../src/aws/witness-runtime.js';

/** Composition root: the witness (KMS cosigner, DynamoDB state, trusted log keys), once per cold start. */
export const handler = witnessHandler(() => composeWitness(process.env));
