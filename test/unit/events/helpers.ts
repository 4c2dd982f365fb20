import { readFileSync } from 'node:fs';
import { isVeritrailError, type VeritrailError } from '../../../src/core/errors.js';

/** A documented example event from test/fixtures/events, freshly parsed (safe to mutate). */
export function fixture(name: string): Record<string, unknown> {
  const url = new URL(`../../fixtures/events/${name}`, import.meta.url);
  return JSON.parse(readFileSync(url, 'utf8')) as Record<string, unknown>;
}

/** The VeritrailError `fn` throws; fails the test when it throws nothing or something else. */
export function rejection(fn: () => unknown): VeritrailError {
  try {
    fn();
  } catch (e) {
    if (isVeritrailError(e)) return e;
    throw new Error(`expected a VeritrailError, got ${String(e)}`);
  }
  throw new Error('expected a rejection, but the input was accepted');
}

/** Sets `value` at a dotted path of a JSON object (undefined deletes the field). */
export function withField(
  obj: Record<string, unknown>,
  path: string,
  value: unknown,
): Record<string, unknown> {
  const copy = structuredClone(obj);
  const parts = path.split('.');
  let node: Record<string, unknown> = copy;
  for (const p of parts.slice(0, -1)) node = node[p] as Record<string, unknown>;
  const last = parts[parts.length - 1] as string;
  if (value === undefined) delete node[last];
  else node[last] = value;
  return copy;
}
