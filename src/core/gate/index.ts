/** Policy-as-code gates: Cedar policies over the facts of a run decide whether a model ships. See docs/gates.md. */

export { DEFAULT_POLICY_TEXT, GATE_SCHEMA_TEXT } from './default-policy.js';
export { evaluateGate, type GateDecision } from './evaluate.js';
export {
  type GateFacts,
  gateFactsFrom,
  parseGateFacts,
  toCedarContext,
} from './facts.js';
export { loadPolicy } from './policy.js';
