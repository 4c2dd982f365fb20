/**
 * `evaluateGate`: one Cedar authorization request, "may this pipeline ship this model?", decided by
 * the pipeline's policy over the facts of the run.
 *
 * principal = Veritrail::Pipeline::"<pipeline>", action = Veritrail::Action::"ship",
 * resource = Veritrail::Model::"<model digest>", context = toCedarContext(facts).
 *
 * Cedar skips a policy whose evaluation errors (Cedar language reference, "Authorization": errors
 * do not make a policy satisfied). For a forbid policy that would silently open the gate, so a
 * forbid that errors DENIES here (fail closed) and is named as a determining policy.
 */
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import { VeritrailError } from '../errors.js';
import { formatDecimal } from './decimal.js';
import { GATE_SCHEMA_TEXT } from './default-policy.js';
import { type CedarJson, type GateFacts, toCedarContext } from './facts.js';
import { type GatePolicy, type LoadedPolicy, loadPolicy } from './policy.js';

export interface GateDecision {
  decision: 'allow' | 'deny';
  /** Human-readable, from the determining policies' `@reason` annotations with the facts filled in. */
  reasons: string[];
  /** Ids of the determining policies, in file order. */
  policies: string[];
  /** Evaluation errors and warnings, when there are any. */
  diagnostics?: string[];
}

export interface GateRequest {
  /** Cedar policy text; ignored when `policy` (already loaded) is given. */
  policyText: string;
  policyFile?: string | undefined;
  policy?: LoadedPolicy | undefined;
  facts: GateFacts;
  /** Pipeline name: the principal's id. Default "pipeline". */
  pipeline?: string | undefined;
  /** Model digest (`sha256:<hex>`): the resource's id. Default "unknown". */
  model?: string | undefined;
  /** Schema for policy and request validation; default the gate schema; `null` skips validation. */
  schemaText?: string | null | undefined;
  /** Context entries beside the facts' own (e.g. `byAttribute`, with the schema that declares it). */
  extraContext?: Record<string, unknown> | undefined;
}

const GATE_ACTION = { type: 'Veritrail::Action', id: 'ship' } as const;

/** Decides allow / deny with reasons. Throws POLICY_INVALID for a malformed policy (with its line). */
export function evaluateGate(input: GateRequest): GateDecision {
  const policy =
    input.policy ?? loadPolicy(input.policyText, { file: input.policyFile, schemaText: input.schemaText });
  const context = { ...toCedarContext(input.facts), ...(input.extraContext ?? {}) } as ReturnType<
    typeof toCedarContext
  >;
  const schema = input.schemaText === undefined ? GATE_SCHEMA_TEXT : input.schemaText;
  const answer = cedar.isAuthorized({
    principal: { type: 'Veritrail::Pipeline', id: input.pipeline ?? 'pipeline' },
    action: GATE_ACTION,
    resource: { type: 'Veritrail::Model', id: input.model ?? 'unknown' },
    context: context as cedar.Context,
    policies: { staticPolicies: { ...policy.byId } },
    entities: [],
    ...(schema === null ? {} : { schema, validateRequest: true }),
  });
  if (answer.type === 'failure') {
    throw new VeritrailError(
      'POLICY_INVALID',
      `the gate request could not be evaluated: ${answer.errors.map((e) => e.message).join('; ')}. Check the facts against docs/gates.md.`,
    );
  }
  const diagnostics = answer.warnings.map((w) => `warning: ${w.message}`);
  const order = new Map(policy.policies.map((p, i) => [p.id, i]));
  const byId = new Map(policy.policies.map((p) => [p.id, p]));
  const inFileOrder = (ids: Iterable<string>): GatePolicy[] =>
    [...new Set(ids)]
      .map((id) => byId.get(id))
      .filter((p): p is GatePolicy => p !== undefined)
      .sort((a, b) => (order.get(a.id) ?? 0) - (order.get(b.id) ?? 0));

  const erroredForbids: GatePolicy[] = [];
  for (const e of answer.response.diagnostics.errors) {
    diagnostics.push(`policy "${e.policyId}" could not be evaluated: ${e.error.message}`);
    const p = byId.get(e.policyId);
    if (p?.effect === 'forbid') erroredForbids.push(p);
  }
  const render = (p: GatePolicy): string => interpolate(p.annotations.reason, context, diagnostics, p);
  const determining = inFileOrder(answer.response.diagnostics.reason);
  const finish = (d: GateDecision): GateDecision => (diagnostics.length > 0 ? { ...d, diagnostics } : d);

  if (answer.response.decision === 'deny' || erroredForbids.length > 0) {
    const forbids = inFileOrder(
      [...determining, ...erroredForbids].filter((p) => p.effect === 'forbid').map((p) => p.id),
    );
    const errored = new Set(erroredForbids.map((p) => p.id));
    const reasons = forbids.map((p) =>
      errored.has(p.id)
        ? `forbid policy "${p.id}" could not be evaluated, so the gate denies rather than skip it; fix the policy (see diagnostics)`
        : render(p),
    );
    if (reasons.length === 0) {
      reasons.push('no policy permits shipping this model (Cedar denies unless a permit policy applies)');
    }
    return finish({ decision: 'deny', reasons, policies: forbids.map((p) => p.id) });
  }
  return finish({
    decision: 'allow',
    reasons: determining.map(render),
    policies: determining.map((p) => p.id),
  });
}

/**
 * Fills `{path}` placeholders of a `@reason` with the context values Cedar compared (decimals as
 * "0.80", sets joined with ", "). `{context.x}` and `{x}` are the same. A policy without a reason
 * gets a generic one naming it.
 */
function interpolate(
  template: string | undefined,
  context: Record<string, CedarJson>,
  diagnostics: string[],
  policy: Pick<GatePolicy, 'id' | 'effect'>,
): string {
  if (template === undefined) {
    return policy.effect === 'forbid'
      ? `forbidden by policy "${policy.id}"`
      : `permitted by policy "${policy.id}"`;
  }
  return template.replace(/\{([A-Za-z_][A-Za-z0-9_.]*)\}/g, (whole, path: string) => {
    const segments = path.replace(/^context\./, '').split('.');
    let v: CedarJson | undefined = context;
    for (const s of segments) {
      v =
        v !== undefined && typeof v === 'object' && !Array.isArray(v) && !('__extn' in v)
          ? (v as Record<string, CedarJson>)[s]
          : undefined;
    }
    if (v === undefined) {
      diagnostics.push(`policy "${policy.id}": reason placeholder ${whole} names no fact that is defined`);
      return '(undefined)';
    }
    return renderValue(v);
  });
}

function renderValue(v: CedarJson): string {
  if (typeof v === 'string') return v;
  // Cedar Longs (a group size in byAttribute) are plain JSON numbers.
  if (typeof v === 'boolean' || typeof v === 'number') return String(v);
  if (Array.isArray(v)) return v.length === 0 ? '(none)' : v.map(renderValue).join(', ');
  if ('__extn' in v && typeof v.__extn === 'object' && v.__extn !== null && 'arg' in v.__extn) {
    return formatDecimal(String(v.__extn.arg));
  }
  return JSON.stringify(v);
}
