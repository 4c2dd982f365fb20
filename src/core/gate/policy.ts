/**
 * Loading a Cedar gate policy: parse, split into policies keyed by their `@id`, and validate against
 * the gate schema in strict mode. Every problem is a VeritrailError('POLICY_INVALID') whose message
 * and `details` carry the file, line and column, so that a user can go straight to it.
 */
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import { VeritrailError } from '../errors.js';
import { GATE_SCHEMA_TEXT } from './default-policy.js';

export interface GatePolicy {
  /** The `@id` annotation, or Cedar's positional id `policy<N>` when there is none. */
  id: string;
  effect: 'permit' | 'forbid';
  annotations: Readonly<Record<string, string>>;
  text: string;
  /** 1-based line of the policy's first character (its first annotation) in the file. */
  line: number;
}

export interface LoadedPolicy {
  file: string | undefined;
  text: string;
  policies: readonly GatePolicy[];
  /** The policy set as Cedar takes it: id → policy text. */
  byId: Readonly<Record<string, string>>;
}

export interface LoadPolicyOptions {
  /** Shown in messages (`<file>:<line>:<column>`); default "policy". */
  file?: string | undefined;
  /** Cedar schema to validate against in strict mode; default the gate schema; `null` skips validation. */
  schemaText?: string | null | undefined;
}

/** Parses and validates a gate policy; throws POLICY_INVALID naming the line and column of a problem. */
export function loadPolicy(text: string, options: LoadPolicyOptions = {}): LoadedPolicy {
  const file = options.file;
  const parsed = cedar.checkParsePolicySet({ staticPolicies: text });
  if (parsed.type === 'failure') {
    throw invalid(text, file, parsed.errors[0], 0, 'the policy does not parse');
  }
  const parts = cedar.policySetTextToParts(text);
  if (parts.type === 'failure') throw invalid(text, file, parts.errors[0], 0, 'the policy does not parse');
  if (parts.policy_templates.length > 0) {
    throw new VeritrailError(
      'POLICY_INVALID',
      `${file ?? 'policy'}: templates (policies with ?principal or ?resource slots) are not supported in a gate policy; write static policies.`,
      { details: { file } },
    );
  }
  if (parts.policies.length === 0) {
    throw new VeritrailError(
      'POLICY_INVALID',
      `${file ?? 'policy'} contains no policy, so every model would be denied; write at least one permit (see docs/gates.md).`,
      { details: { file } },
    );
  }
  const policies: GatePolicy[] = [];
  const byId: Record<string, string> = {};
  const offsets: number[] = [];
  let cursor = 0;
  parts.policies.forEach((part, i) => {
    // The parts are verbatim slices of the text in order; their byte offsets map locations back.
    const at = text.indexOf(part, cursor);
    const charOffset = at < 0 ? cursor : at;
    cursor = at < 0 ? cursor : at + part.length;
    const byteOffset = utf8Length(text.slice(0, charOffset));
    offsets.push(byteOffset);
    const json = cedar.policyToJson(part);
    if (json.type === 'failure')
      throw invalid(text, file, json.errors[0], byteOffset, 'the policy does not parse');
    const annotations: Record<string, string> = { ...(json.json.annotations ?? {}) };
    const id = annotations.id ?? `policy${i}`;
    const line = lineColumn(text, byteOffset).line;
    if (Object.hasOwn(byId, id)) {
      throw new VeritrailError(
        'POLICY_INVALID',
        `${file ?? 'policy'}:${line}: @id("${id}") is used by more than one policy; give each policy its own id.`,
        { details: { file, line, policy: id } },
      );
    }
    byId[id] = part;
    policies.push({ id, effect: json.json.effect, annotations, text: part, line });
  });

  const schema = options.schemaText === undefined ? GATE_SCHEMA_TEXT : options.schemaText;
  if (schema !== null) {
    const v = cedar.validate({
      schema,
      policies: { staticPolicies: byId },
      validationSettings: { mode: 'strict' },
    });
    if (v.type === 'failure') {
      throw new VeritrailError(
        'POLICY_INVALID',
        `the gate schema is invalid: ${v.errors.map((e) => e.message).join('; ')}`,
        { details: { file } },
      );
    }
    // Validator warnings are refused too: the main one, "policy is impossible", means a policy can
    // never apply, which for a forbid silently opens the gate (typically a misspelt fact tested
    // with `has`); the others flag confusable or bidirectional Unicode, unwelcome in a security policy.
    // Report the problem nearest the top of the file first, as a compiler would.
    const located = [...v.validationErrors, ...v.validationWarnings]
      .map((e) => {
        const base = offsets[policies.findIndex((p) => p.id === e.policyId)] ?? 0;
        return { e, base, at: base + (e.error.sourceLocations?.[0]?.start ?? 0) };
      })
      .sort((a, b) => a.at - b.at);
    const first = located[0];
    if (first !== undefined) {
      throw invalid(
        text,
        file,
        first.e.error,
        first.base,
        `policy "${first.e.policyId}" does not fit the gate schema (policies/veritrail.cedarschema)`,
      );
    }
  }
  return { file, text, policies, byId };
}

function invalid(
  text: string,
  file: string | undefined,
  error: cedar.DetailedError | undefined,
  baseByteOffset: number,
  what: string,
): VeritrailError {
  const loc = error?.sourceLocations?.[0];
  const { line, column } = lineColumn(text, baseByteOffset + (loc?.start ?? 0));
  const detail = [error?.message, loc?.label, error?.help].filter(
    (s): s is string => typeof s === 'string' && s !== '',
  );
  return new VeritrailError(
    'POLICY_INVALID',
    `${file ?? 'policy'}:${line}:${column}: ${what}: ${detail.join('; ')}. Fix the policy at that line (Cedar syntax: docs/gates.md).`,
    { details: { file, line, column }, cause: error },
  );
}

function utf8Length(s: string): number {
  return new TextEncoder().encode(s).length;
}

/** 1-based line and column (in characters) of a UTF-8 byte offset, as Cedar reports source spans. */
function lineColumn(text: string, byteOffset: number): { line: number; column: number } {
  const bytes = new TextEncoder().encode(text);
  const prefix = new TextDecoder().decode(bytes.subarray(0, Math.max(0, Math.min(byteOffset, bytes.length))));
  const lines = prefix.split('\n');
  const last = lines[lines.length - 1] ?? '';
  return { line: lines.length, column: [...last].length + 1 };
}
