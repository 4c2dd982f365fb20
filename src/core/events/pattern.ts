/**
 * The shape of an EventBridge event pattern (EventBridge User Guide, "Creating event patterns"):
 * the rule objects of src/core/rules.ts are typed by it, and the stacks deploy them as they are.
 * Whether a pattern routes the events it should is checked in the tests, against AWS's documented
 * events, by an EventBridge pattern matcher (test/helpers/event-pattern.ts, which also routes the
 * emulated EventBridge of test/aws-e2e). No production code matches patterns: on AWS EventBridge
 * does, and the embedded runtime's inputs (a landed file, a schedule, an operator start) are
 * routed by what they are.
 */

export type PatternScalar = string | number | boolean | null;

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
