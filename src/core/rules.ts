import { Cron } from 'croner';
import { VeritrailError } from './errors.js';
import type { EventPattern, Matcher } from './events/pattern.js';
import { TerminalTrainingJobStatuses } from './events/sagemaker.js';

/**
 * The one definition of every EventBridge rule the control plane uses. The SST stacks deploy
 * these objects as they are; the tests match them against AWS's documented events with an
 * EventBridge pattern matcher (test/helpers/event-pattern.ts).
 */

/** Every SageMaker training job we create is named `vt-…`; the rule ignores everyone else's jobs. */
export const TRAINING_JOB_NAME_PREFIX = 'vt-';
/** Names of the control plane's scoring jobs (SageMaker Model and Batch Transform job): `vts-<runId>`. */
export const SCORING_JOB_NAME_PREFIX = 'vts-';

/** The rule name the embedded scheduler reports for a pipeline (AWS reports the rule ARN). */
export function localScheduleRule(pipeline: string): string {
  return `local-schedule/${pipeline}`;
}

const BUCKET_RE = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

/**
 * S3 "Object Created" in the landing bucket under `prefix` (EventBridge must be enabled on the
 * bucket: S3 User Guide, "Using EventBridge"). An empty prefix means the whole bucket.
 */
export function s3ObjectCreatedPattern(landingBucketName: string, prefix: string): EventPattern {
  if (!BUCKET_RE.test(landingBucketName)) {
    throw new VeritrailError(
      'PIPELINE_INVALID',
      `landing bucket name "${landingBucketName}" is not a valid S3 bucket name (3-63 lowercase letters, digits, . and -)`,
    );
  }
  if (!/^[A-Za-z0-9._/-]*$/.test(prefix) || prefix.startsWith('/') || prefix.split('/').includes('..')) {
    throw new VeritrailError(
      'PIPELINE_INVALID',
      `landing prefix "${prefix}" must be a plain relative S3 key prefix (letters, digits, . _ / -, no leading / or ..)`,
    );
  }
  const object: EventPattern = prefix === '' ? {} : { key: [{ prefix }] };
  return {
    source: ['aws.s3'],
    'detail-type': ['Object Created'],
    detail: {
      bucket: { name: [landingBucketName] },
      ...(prefix === '' ? {} : { object }),
    },
  };
}

/** Our training jobs reaching a terminal status (Completed, Failed, Stopped). */
export function sagemakerTrainingStateChangePattern(): EventPattern {
  const statuses: Matcher[] = [...TerminalTrainingJobStatuses];
  return {
    source: ['aws.sagemaker'],
    'detail-type': ['SageMaker Training Job State Change'],
    detail: {
      TrainingJobStatus: statuses,
      TrainingJobName: [{ prefix: TRAINING_JOB_NAME_PREFIX }],
    },
  };
}

/**
 * The same pattern in the shape aws-cdk-lib's `events.EventPattern` takes (`detailType` instead
 * of `detail-type`; every other field keeps its name).
 */
export function toCdkEventPattern(pattern: EventPattern): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(pattern)) out[k === 'detail-type' ? 'detailType' : k] = v;
  return out;
}

// ───────────────────────────── schedules ─────────────────────────────

interface CronField {
  /** Field text as given, upper-cased (names such as jan, mon). */
  text: string;
  /** `*` exactly: the field does not restrict. */
  star: boolean;
  values: Set<number>;
}

const MONTHS = ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'];
const DAYS = ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'];

function scheduleError(cron: string, problem: string): VeritrailError {
  return new VeritrailError(
    'PIPELINE_INVALID',
    `schedule.cron "${cron}" ${problem}. Write five fields (minute hour day-of-month month day-of-week, UTC), e.g. "0 3 * * 1".`,
    { details: { cron } },
  );
}

function parseCronField(
  cron: string,
  name: string,
  raw: string,
  min: number,
  max: number,
  names?: readonly string[],
  namesStart = 0,
): CronField {
  const text = raw.toUpperCase();
  const atom = (s: string): number => {
    if (/^\d+$/.test(s)) {
      const n = Number(s);
      if (n < min || n > max) throw scheduleError(cron, `has ${name} ${s} outside ${min}-${max}`);
      return n;
    }
    const i = names?.indexOf(s) ?? -1;
    if (i < 0) throw scheduleError(cron, `has "${s}" in the ${name} field, which is not a number or name`);
    return i + namesStart;
  };
  const values = new Set<number>();
  for (const part of text.split(',')) {
    const m = /^(\*|[A-Z0-9]+(?:-[A-Z0-9]+)?)(?:\/(\d+))?$/.exec(part);
    if (m === null) {
      throw scheduleError(
        cron,
        `has "${part}" in the ${name} field; only numbers, names, *, ranges (a-b), steps (/n) and lists (,) are supported`,
      );
    }
    const [, range = '', stepText] = m;
    const step = stepText === undefined ? 1 : Number(stepText);
    if (step < 1) throw scheduleError(cron, `has step 0 in the ${name} field`);
    let lo = min;
    let hi = max;
    if (range !== '*') {
      const [a = '', b] = range.split('-');
      lo = atom(a);
      hi = b === undefined ? (stepText === undefined ? lo : max) : atom(b);
      if (hi < lo) throw scheduleError(cron, `has the backwards range ${range} in the ${name} field`);
    }
    for (let v = lo; v <= hi; v += step) values.add(v);
  }
  return { text, star: text === '*', values };
}

/**
 * Field text for EventBridge: `*\/n` is written `<min>/n`, the form the EventBridge documentation
 * uses (e.g. `0/15` for every 15 minutes); the set of values is the same.
 */
function eventBridgeText(field: CronField, min: number): string {
  return field.text
    .split(',')
    .map((part) => (part.startsWith('*/') ? `${min}${part.slice(1)}` : part))
    .join(',');
}

function parseCron5(cron: string): {
  minute: CronField;
  hour: CronField;
  dom: CronField;
  month: CronField;
  dow: CronField;
} {
  const fields = cron.trim().split(/\s+/);
  if (fields.length !== 5) throw scheduleError(cron, `has ${fields.length} fields, not 5`);
  const [minute = '', hour = '', dom = '', month = '', dow = ''] = fields;
  return {
    minute: parseCronField(cron, 'minute', minute, 0, 59),
    hour: parseCronField(cron, 'hour', hour, 0, 23),
    dom: parseCronField(cron, 'day-of-month', dom, 1, 31),
    month: parseCronField(cron, 'month', month, 1, 12, MONTHS, 1),
    // 0 and 7 are both Sunday in five-field cron.
    dow: parseCronField(cron, 'day-of-week', dow, 0, 7, DAYS, 0),
  };
}

/** Sorted numbers as a compact list with ranges: [2,3,4,6] → "2-4,6". */
function compress(values: readonly number[]): string {
  const parts: string[] = [];
  let i = 0;
  while (i < values.length) {
    let j = i;
    while (j + 1 < values.length && (values[j + 1] as number) === (values[j] as number) + 1) j++;
    parts.push(j > i + 1 ? `${values[i]}-${values[j]}` : values.slice(i, j + 1).join(','));
    i = j + 1;
  }
  return parts.join(',');
}

/**
 * Converts a five-field cron (UTC) to EventBridge's `cron(minutes hours day-of-month month
 * day-of-week year)` (EventBridge User Guide, "Schedule expressions for rules"):
 *  - one of day-of-month and day-of-week must be `?`; five-field cron with both restricted means
 *    "either day" (POSIX crontab), which EventBridge cannot express, so it is refused;
 *  - EventBridge numbers weekdays 1-7 from Sunday, cron 0-7 from Sunday (7 = Sunday again), so the
 *    weekday set is renumbered and written as an explicit list.
 */
export function scheduleExpression(cron5: string): string {
  const { minute, hour, dom, month, dow } = parseCron5(cron5);
  if (!dom.star && !dow.star) {
    throw scheduleError(
      cron5,
      'restricts both day-of-month and day-of-week; cron runs on either, which EventBridge cannot express. ' +
        'Keep one of them * (or define two schedules)',
    );
  }
  let domText = eventBridgeText(dom, 1);
  let dowText = '?';
  if (!dow.star) {
    domText = '?';
    const days = [...new Set([...dow.values].map((d) => (d % 7) + 1))].sort((a, b) => a - b);
    dowText = days.length === 7 ? '*' : compress(days);
  }
  return `cron(${eventBridgeText(minute, 0)} ${eventBridgeText(hour, 0)} ${domText} ${eventBridgeText(month, 1)} ${dowText} *)`;
}

/**
 * Validates a five-field cron for the embedded scheduler with the same rules as
 * {@link scheduleExpression} (so a schedule that runs locally also deploys) and returns a croner
 * job description: evaluate in UTC, five fields only. It never starts a timer.
 */
export function localCron(cron5: string): Cron {
  scheduleExpression(cron5);
  try {
    // sloppyRanges: accept `5/15` (start/step) as EventBridge does.
    return new Cron(cron5.trim(), { timezone: 'UTC', mode: '5-part', paused: true, sloppyRanges: true });
  } catch (e) {
    throw new VeritrailError(
      'PIPELINE_INVALID',
      `schedule.cron "${cron5}" is not accepted by the scheduler: ${String(e)}`,
      {
        cause: e,
      },
    );
  }
}

/** The next `count` fire times strictly after `after`, in UTC. */
export function nextFireTimes(cron5: string, after: Date, count: number): Date[] {
  return localCron(cron5).nextRuns(count, after);
}

// ───────────────────────────── schedule target input ─────────────────────────────

/**
 * The rule target's input transformer for a pipeline's schedule (EventBridge User Guide,
 * "Transforming target input"). It turns the Scheduled Event into the schedule payload that
 * `SchedulePayloadSchema` accepts, keeping the rule ARN and the event time that make up the
 * idempotency key. Values extracted by an input path are inserted as JSON strings.
 */
export function scheduleInputTransformer(
  pipeline: string,
  force: boolean,
): { inputPathsMap: Record<string, string>; inputTemplate: string } {
  return {
    inputPathsMap: { time: '$.time', id: '$.id' },
    inputTemplate: `{"pipeline":${JSON.stringify(pipeline)},"force":${force},"rule":<aws.events.rule-arn>,"time":<time>,"eventId":<id>}`,
  };
}

/** Reads `$.a.b[0]`-style paths (the subset input transformers use here). */
function readPath(event: unknown, path: string): unknown {
  if (!path.startsWith('$')) return undefined;
  let value: unknown = event;
  for (const m of path.slice(1).matchAll(/\.([^.[\]]+)|\[(\d+)\]/g)) {
    const key = m[1] ?? Number(m[2]);
    if (typeof value !== 'object' || value === null) return undefined;
    value = (value as Record<string | number, unknown>)[key];
  }
  return value;
}

/**
 * Applies an input transformer the way EventBridge does for JSON templates: each `<var>` outside
 * a string literal becomes the JSON text of its value. The embedded router uses it so that local
 * targets receive the same payload as Lambda on AWS. Throws EVENT_INVALID when a variable is
 * missing (EventBridge would produce broken JSON).
 */
export function applyInputTransformer(
  transformer: { inputPathsMap: Record<string, string>; inputTemplate: string },
  event: unknown,
  rule: { arn: string; name: string },
): unknown {
  const vars: Record<string, unknown> = {
    'aws.events.rule-arn': rule.arn,
    'aws.events.rule-name': rule.name,
    'aws.events.event': event,
    'aws.events.event.json': JSON.stringify(event),
  };
  for (const [name, path] of Object.entries(transformer.inputPathsMap)) vars[name] = readPath(event, path);
  let out = '';
  let inString = false;
  const t = transformer.inputTemplate;
  for (let i = 0; i < t.length; i++) {
    const c = t[i] as string;
    if (inString) {
      out += c;
      if (c === '\\') {
        out += t[i + 1] ?? '';
        i++;
      } else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') {
      inString = true;
      out += c;
      continue;
    }
    const m = c === '<' ? /^<([A-Za-z0-9_.-]+)>/.exec(t.slice(i)) : null;
    if (m !== null) {
      const name = m[1] as string;
      const value = vars[name];
      if (value === undefined) {
        throw new VeritrailError(
          'EVENT_INVALID',
          `input transformer variable <${name}> has no value in this event`,
        );
      }
      out += JSON.stringify(value);
      i += m[0].length - 1;
      continue;
    }
    out += c;
  }
  return JSON.parse(out) as unknown;
}
