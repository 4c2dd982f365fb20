import { z } from 'zod';
import { VeritrailError } from '../errors.js';
import { objectKeyProblem } from './key.js';

/**
 * Pieces shared by every event schema, and the one place a zod failure becomes a
 * {@link VeritrailError}: EVENT_INVALID naming each bad field, or PATH_REJECTED when the only
 * thing wrong is an unsafe key (invariant 6: a clear reason, never a crash).
 */

/** Marks a zod issue raised by a key-safety check, so the parse helper can choose PATH_REJECTED. */
export const PATH_ISSUE = 'veritrail.path-rejected';

/** An object key that passes {@link objectKeyProblem}; the issue carries {@link PATH_ISSUE}. */
export const safeObjectKey = z.string().superRefine((key, ctx) => {
  const problem = objectKeyProblem(key);
  if (problem !== undefined) {
    ctx.addIssue({ code: 'custom', message: `object key ${problem}`, params: { [PATH_ISSUE]: true } });
  }
});

/** RFC 3339 time with a zone, as EventBridge writes `time` (e.g. `2021-11-12T00:00:00Z`). */
export const eventTime = z.iso.datetime({
  offset: true,
  error: 'must be an RFC 3339 date-time such as 2021-11-12T00:00:00Z',
});

/** 12-digit AWS account id. */
const accountId = z.string().regex(/^\d{12}$/, 'must be a 12-digit AWS account id');

/** The pipeline name rule of src/core/pipeline.ts, repeated so events validate without a definition. */
export const pipelineName = z
  .string()
  .regex(
    /^[a-z][a-z0-9-]{1,38}[a-z0-9]$/,
    'must be 3-40 lowercase letters, digits or dashes, starting with a letter',
  );

/**
 * The EventBridge envelope (EventBridge User Guide, "Amazon EventBridge events"). Unknown
 * top-level fields are kept: AWS adds envelope fields (e.g. `replay-name`) without notice.
 */
export const envelopeShape = {
  version: z.string(),
  id: z.string().min(1, 'must not be empty'),
  account: accountId,
  time: eventTime,
  region: z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d+$/, 'must be an AWS Region such as us-east-1'),
  resources: z.array(z.string()),
} as const;

function describeIssue(issue: z.core.$ZodIssue): string {
  const path = issue.path.length > 0 ? issue.path.map(String).join('.') : '(top level)';
  // zod's own text for a missing field is "expected string, received undefined": say "missing".
  const message =
    issue.code === 'invalid_type' && / received undefined$/.test(issue.message)
      ? `is missing (${issue.message.replace(/^Invalid input: /, '').replace(/, received undefined$/, '')})`
      : issue.message;
  return `${path}: ${message}`;
}

/** `field.path: problem` for each issue, joined with `; `. */
function describeEventIssues(error: z.ZodError): string {
  return error.issues.map(describeIssue).join('; ');
}

function isPathIssue(issue: z.core.$ZodIssue): boolean {
  return issue.code === 'custom' && issue.params?.[PATH_ISSUE] === true;
}

/** The bad fields of a failed parse, for `details` (machine-readable, e.g. `detail.object.key`). */
function fieldsOf(error: z.ZodError): string[] {
  return error.issues.map((i) => (i.path.length > 0 ? i.path.map(String).join('.') : '(top level)'));
}

/**
 * Parses `value` with `schema`. On failure: PATH_REJECTED when every issue is a key-safety
 * issue, otherwise EVENT_INVALID; the message names each bad field, `details.fields` lists them.
 */
export function parseWith<S extends z.ZodType>(
  schema: S,
  value: unknown,
  what: string,
  fixAdvice = 'The event was not acted on; fix the field(s) named, or check that the rule sends this event type here.',
): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const pathOnly = result.error.issues.length > 0 && result.error.issues.every(isPathIssue);
  const code = pathOnly ? 'PATH_REJECTED' : 'EVENT_INVALID';
  const advice = pathOnly
    ? 'Rename the object with a plain relative key (letters, digits, / between names) and upload it again.'
    : fixAdvice;
  throw new VeritrailError(code, `${what} rejected: ${describeEventIssues(result.error)}. ${advice}`, {
    cause: result.error,
    details: { event: what, fields: fieldsOf(result.error) },
  });
}
