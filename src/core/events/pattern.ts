/**
 * EventBridge event patterns, evaluated locally so that the embedded router routes exactly what
 * the AWS rules route (EventBridge User Guide: "Creating event patterns", "Content filtering in
 * Amazon EventBridge event patterns", "Arrays in event patterns", "Matching null values and empty
 * strings", "Comparison operators for use in event patterns").
 *
 * Semantics implemented:
 *  - fields of a pattern are ANDed; the values of a leaf array are ORed; `$or` ORs sub-patterns;
 *  - nested objects match nested objects; when the event has an array of objects there, any
 *    element may match;
 *  - when the event value is an array, the leaf matches if any element matches;
 *  - only leaves count as present: an object value is "not a leaf", so `{"exists": false}` matches
 *    it and `{"exists": true}` does not;
 *  - `null` and `""` are distinct values; a missing field matches neither;
 *  - exact values (string, number, boolean, null), `prefix` and `suffix` (with `equals-ignore-case`),
 *    `equals-ignore-case`, `wildcard` (`*`, escapes `\*` and `\\`), `anything-but` (value, list,
 *    prefix, suffix, equals-ignore-case, wildcard), `numeric` (=, <, <=, >, >= and ranges),
 *    `exists`, and IPv4 `cidr`.
 * A malformed pattern is a programming error: it throws {@link EventPatternError}, whatever the
 * event. A malformed event never throws: it just does not match.
 */

type PatternScalar = string | number | boolean | null;

export type Matcher =
  | PatternScalar
  | { readonly prefix: string | { readonly 'equals-ignore-case': string } }
  | { readonly suffix: string | { readonly 'equals-ignore-case': string } }
  | { readonly 'equals-ignore-case': string }
  | { readonly wildcard: string }
  | {
      readonly 'anything-but':
        | string
        | number
        | readonly string[]
        | readonly number[]
        | { readonly prefix: string }
        | { readonly suffix: string }
        | { readonly 'equals-ignore-case': string | readonly string[] }
        | { readonly wildcard: string | readonly string[] };
    }
  | { readonly numeric: readonly (string | number)[] }
  | { readonly exists: boolean }
  | { readonly cidr: string };

/** An event pattern: leaf arrays of matchers, nested patterns, and `$or` lists of patterns. */
export interface EventPattern {
  readonly [field: string]: readonly Matcher[] | EventPattern | readonly EventPattern[];
}

type EventPatternErrorCode = 'PATTERN_INVALID';

/** A pattern EventBridge would refuse (or one this matcher does not support); names the field. */
class EventPatternError extends Error {
  override readonly name = 'EventPatternError';
  readonly code: EventPatternErrorCode = 'PATTERN_INVALID';
  readonly field: string;
  constructor(field: string, problem: string) {
    super(
      `event pattern is invalid at ${field || '(top level)'}: ${problem}. Fix the rule definition in src/core/rules.ts.`,
    );
    this.field = field;
  }
}

type Predicate = (value: unknown) => boolean;

interface LeafTest {
  /** Whether this matcher accepts a missing (or non-leaf) field. */
  readonly onAbsent: boolean;
  readonly test: (value: PatternScalar) => boolean;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function join(path: string, field: string): string {
  return path === '' ? field : `${path}.${field}`;
}

/** Case folding for equals-ignore-case: upper then lower folds more pairs than either alone. */
function fold(s: string): string {
  return s.toUpperCase().toLowerCase();
}

function collectLeaves(value: unknown, out: PatternScalar[]): void {
  if (Array.isArray(value)) {
    for (const v of value) collectLeaves(v, out);
    return;
  }
  if (
    value === null ||
    typeof value === 'string' ||
    typeof value === 'number' ||
    typeof value === 'boolean'
  ) {
    out.push(value);
  }
  // Objects (and anything that is not JSON) are not leaves.
}

/** The leaf values at a field, or `undefined` when it is missing or not a leaf. */
function leavesOf(value: unknown): PatternScalar[] | undefined {
  if (value === undefined) return undefined;
  const out: PatternScalar[] = [];
  collectLeaves(value, out);
  return out.length === 0 ? undefined : out;
}

function compileWildcard(glob: string, path: string): RegExp {
  let re = '';
  let previousStar = false;
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i] as string;
    if (c === '\\') {
      const next = glob[i + 1];
      if (next !== '*' && next !== '\\') {
        throw new EventPatternError(path, `wildcard "${glob}": a backslash may only escape * or \\`);
      }
      re += `\\${next}`;
      i++;
      previousStar = false;
    } else if (c === '*') {
      if (previousStar)
        throw new EventPatternError(path, `wildcard "${glob}": consecutive * are not allowed`);
      re += '.*';
      previousStar = true;
    } else {
      re += c.replace(/[.+?^${}()|[\]\\/-]/g, '\\$&');
      previousStar = false;
    }
  }
  return new RegExp(`^${re}$`, 's');
}

function stringOrIgnoreCase(spec: unknown, path: string, op: string): { text: string; ignoreCase: boolean } {
  if (typeof spec === 'string') return { text: spec, ignoreCase: false };
  if (isPlainObject(spec)) {
    const keys = Object.keys(spec);
    const v = spec['equals-ignore-case'];
    if (keys.length === 1 && typeof v === 'string') return { text: v, ignoreCase: true };
  }
  throw new EventPatternError(path, `"${op}" takes a string or {"equals-ignore-case": string}`);
}

function parseIpv4(s: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (m === null) return undefined;
  let n = 0;
  for (const part of m.slice(1)) {
    const octet = Number(part);
    if (octet > 255) return undefined;
    n = n * 256 + octet;
  }
  return n;
}

function compileCidr(spec: unknown, path: string): (v: PatternScalar) => boolean {
  const m = typeof spec === 'string' ? /^([0-9.]+)\/(\d{1,2})$/.exec(spec) : null;
  const base = m?.[1] === undefined ? undefined : parseIpv4(m[1]);
  const bits = m?.[2] === undefined ? Number.NaN : Number(m[2]);
  if (base === undefined || !(bits >= 0 && bits <= 32)) {
    throw new EventPatternError(
      path,
      `cidr ${JSON.stringify(spec)} is not an IPv4 CIDR block (IPv6 is not supported locally)`,
    );
  }
  const size = 2 ** (32 - bits);
  const start = Math.floor(base / size) * size;
  return (v) => {
    if (typeof v !== 'string') return false;
    const ip = parseIpv4(v);
    return ip !== undefined && ip >= start && ip < start + size;
  };
}

const NUMERIC_OPS = ['=', '<', '<=', '>', '>='] as const;
type NumericOp = (typeof NUMERIC_OPS)[number];

function compileNumeric(spec: unknown, path: string): (v: PatternScalar) => boolean {
  if (!Array.isArray(spec) || (spec.length !== 2 && spec.length !== 4)) {
    throw new EventPatternError(path, 'numeric takes [op, number] or [op, number, op, number]');
  }
  const tests: Array<{ op: NumericOp; n: number }> = [];
  for (let i = 0; i < spec.length; i += 2) {
    const op = spec[i] as unknown;
    const n = spec[i + 1] as unknown;
    if (!NUMERIC_OPS.includes(op as NumericOp)) {
      throw new EventPatternError(
        path,
        `numeric operator ${JSON.stringify(op)} is not one of ${NUMERIC_OPS.join(' ')}`,
      );
    }
    if (typeof n !== 'number' || !Number.isFinite(n)) {
      throw new EventPatternError(path, `numeric operand ${JSON.stringify(n)} is not a finite number`);
    }
    tests.push({ op: op as NumericOp, n });
  }
  if (tests.length === 2) {
    const [a, b] = tests;
    const lower = (t: { op: NumericOp } | undefined) => t?.op === '>' || t?.op === '>=';
    const upper = (t: { op: NumericOp } | undefined) => t?.op === '<' || t?.op === '<=';
    if (!(lower(a) && upper(b)) && !(upper(a) && lower(b))) {
      throw new EventPatternError(
        path,
        'a numeric range needs one lower bound (> or >=) and one upper bound (< or <=)',
      );
    }
  }
  return (v) => {
    if (typeof v !== 'number') return false;
    return tests.every(({ op, n }) => {
      switch (op) {
        case '=':
          return v === n;
        case '<':
          return v < n;
        case '<=':
          return v <= n;
        case '>':
          return v > n;
        case '>=':
          return v >= n;
      }
      return false;
    });
  };
}

function compileAnythingBut(spec: unknown, path: string): (v: PatternScalar) => boolean {
  if (typeof spec === 'string' || typeof spec === 'number') return (v) => v !== spec;
  if (Array.isArray(spec)) {
    const allStrings = spec.every((x) => typeof x === 'string');
    const allNumbers = spec.every((x) => typeof x === 'number');
    if (spec.length === 0 || !(allStrings || allNumbers)) {
      throw new EventPatternError(path, 'anything-but list must be non-empty and all strings or all numbers');
    }
    const set = new Set<unknown>(spec);
    return (v) => !set.has(v);
  }
  if (isPlainObject(spec) && Object.keys(spec).length === 1) {
    const [key] = Object.keys(spec);
    const inner = spec[key as string];
    const texts = (): string[] => {
      const list = Array.isArray(inner) ? inner : [inner];
      if (list.length === 0 || !list.every((x) => typeof x === 'string')) {
        throw new EventPatternError(path, `anything-but ${key} takes a string or a list of strings`);
      }
      return list as string[];
    };
    switch (key) {
      case 'prefix': {
        if (typeof inner !== 'string')
          throw new EventPatternError(path, 'anything-but prefix takes a string');
        return (v) => typeof v !== 'string' || !v.startsWith(inner);
      }
      case 'suffix': {
        if (typeof inner !== 'string')
          throw new EventPatternError(path, 'anything-but suffix takes a string');
        return (v) => typeof v !== 'string' || !v.endsWith(inner);
      }
      case 'equals-ignore-case': {
        const folded = new Set(texts().map(fold));
        return (v) => typeof v !== 'string' || !folded.has(fold(v));
      }
      case 'wildcard': {
        const res = texts().map((t) => compileWildcard(t, path));
        return (v) => typeof v !== 'string' || !res.some((re) => re.test(v));
      }
    }
  }
  throw new EventPatternError(
    path,
    'anything-but takes a string, a number, a list, or {prefix|suffix|equals-ignore-case|wildcard: …}',
  );
}

function compileMatcher(m: unknown, path: string): LeafTest {
  if (m === null || typeof m === 'string' || typeof m === 'number' || typeof m === 'boolean') {
    return { onAbsent: false, test: (v) => v === m };
  }
  if (!isPlainObject(m) || Object.keys(m).length !== 1) {
    throw new EventPatternError(
      path,
      `matcher ${JSON.stringify(m)} must be a value or an object with one operator`,
    );
  }
  const [op] = Object.keys(m) as [string];
  const spec = m[op];
  switch (op) {
    case 'prefix': {
      const { text, ignoreCase } = stringOrIgnoreCase(spec, path, op);
      const t = fold(text);
      return {
        onAbsent: false,
        test: (v) =>
          typeof v === 'string' && (ignoreCase ? fold(v.slice(0, text.length)) === t : v.startsWith(text)),
      };
    }
    case 'suffix': {
      const { text, ignoreCase } = stringOrIgnoreCase(spec, path, op);
      const t = fold(text);
      return {
        onAbsent: false,
        test: (v) =>
          typeof v === 'string' &&
          (ignoreCase
            ? v.length >= text.length && fold(v.slice(v.length - text.length)) === t
            : v.endsWith(text)),
      };
    }
    case 'equals-ignore-case': {
      if (typeof spec !== 'string') throw new EventPatternError(path, 'equals-ignore-case takes a string');
      const t = fold(spec);
      return { onAbsent: false, test: (v) => typeof v === 'string' && fold(v) === t };
    }
    case 'wildcard': {
      if (typeof spec !== 'string') throw new EventPatternError(path, 'wildcard takes a string');
      const re = compileWildcard(spec, path);
      return { onAbsent: false, test: (v) => typeof v === 'string' && re.test(v) };
    }
    case 'anything-but':
      return { onAbsent: false, test: compileAnythingBut(spec, path) };
    case 'numeric':
      return { onAbsent: false, test: compileNumeric(spec, path) };
    case 'exists': {
      if (typeof spec !== 'boolean') throw new EventPatternError(path, 'exists takes true or false');
      return { onAbsent: !spec, test: () => spec };
    }
    case 'cidr':
      return { onAbsent: false, test: compileCidr(spec, path) };
    default:
      throw new EventPatternError(path, `unknown operator "${op}"`);
  }
}

function compileLeaf(matchers: readonly unknown[], path: string): Predicate {
  if (matchers.length === 0)
    throw new EventPatternError(path, 'a leaf must list at least one value or matcher');
  const tests = matchers.map((m) => compileMatcher(m, path));
  return (value) => {
    const leaves = leavesOf(value);
    if (leaves === undefined) return tests.some((t) => t.onAbsent);
    return tests.some((t) => leaves.some((v) => t.test(v)));
  };
}

function fieldOf(value: unknown, field: string): unknown {
  return isPlainObject(value) && Object.hasOwn(value, field) ? value[field] : undefined;
}

function compileObject(pattern: unknown, path: string): Predicate {
  if (!isPlainObject(pattern)) throw new EventPatternError(path, 'must be an object');
  const checks: Predicate[] = [];
  for (const [field, sub] of Object.entries(pattern)) {
    const here = join(path, field);
    if (field === '$or') {
      if (!Array.isArray(sub) || sub.length < 2) {
        throw new EventPatternError(here, '$or takes a list of at least two patterns');
      }
      const alternatives = sub.map((p, i) => compileObject(p, `${here}[${i}]`));
      checks.push((value) => alternatives.some((alt) => alt(value)));
    } else if (Array.isArray(sub)) {
      const leaf = compileLeaf(sub, here);
      checks.push((value) => leaf(fieldOf(value, field)));
    } else if (isPlainObject(sub)) {
      const nested = compileObject(sub, here);
      checks.push((value) => {
        const child = fieldOf(value, field);
        if (Array.isArray(child)) {
          const objects = child.filter(isPlainObject);
          return objects.length === 0 ? nested(undefined) : objects.some((o) => nested(o));
        }
        return nested(isPlainObject(child) ? child : undefined);
      });
    } else {
      throw new EventPatternError(here, 'must be a list of matchers or a nested pattern object');
    }
  }
  return (value) => checks.every((check) => check(value));
}

/** Validates a pattern once and returns a fast predicate over events (for the local router). */
export function compilePattern(pattern: EventPattern): (event: unknown) => boolean {
  return compileObject(pattern, '');
}

/** Whether `event` matches `pattern`; throws {@link EventPatternError} for a malformed pattern. */
export function matchesPattern(pattern: EventPattern, event: unknown): boolean {
  return compilePattern(pattern)(event);
}
