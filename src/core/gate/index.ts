/** Policy-as-code gates: Cedar policies over the facts of a run decide whether a model ships. See docs/gates.md. */
export {
  type CedarDecimalJson,
  formatDecimal,
  type Rounding,
  toCedarDecimal,
  toDecimalString,
} from './decimal.js';
export { DEFAULT_POLICY_TEXT, GATE_SCHEMA_TEXT } from './default-policy.js';
export { evaluateGate, GATE_ACTION, type GateDecision, type GateRequest, interpolate } from './evaluate.js';
export {
  type AttributeMetrics,
  type CedarJson,
  type GateFacts,
  type GateFactsInput,
  GateFactsSchema,
  type GateThresholds,
  gateFactsFrom,
  type PipelineGateThresholds,
  parseGateFacts,
  toCedarContext,
  type WorstMetrics,
} from './facts.js';
export {
  type GatePolicy,
  type LoadedPolicy,
  type LoadPolicyOptions,
  lineColumn,
  loadPolicy,
} from './policy.js';
