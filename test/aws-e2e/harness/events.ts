/**
 * EventBridge, as far as the templates use it: the rules' EventPatterns (matched with the project's
 * matcher, test/helpers/event-pattern.ts) and their Lambda targets, invoked asynchronously as the
 * Lambda target is (the rule does not wait for the function; a failed async invocation is retried
 * by Lambda twice; the DLQ of the target and the function's on-failure destination are recorded,
 * not emulated). The events are built as AWS delivers them (shapes from the EventBridge and S3
 * documentation, as test/fixtures/events holds them).
 */
import { randomUUID } from 'node:crypto';
import type { EventPattern } from '../../../src/core/events/pattern.js';
import { matchesPattern } from '../../helpers/event-pattern.js';
import type { InvokeResult, LambdaFleet } from './lambda-host.js';
import type { ResolvedResource } from './resolve.js';

export interface Delivery {
  rule: string;
  target: string;
  event: unknown;
  /** Each attempt Lambda made (async invocations: the first and up to two retries). */
  attempts: InvokeResult[];
}

/** The "Object Created" event EventBridge delivers for a PutObject on a bucket with EventBridge notifications on. */
export function s3ObjectCreatedEvent(o: {
  account: string;
  region: string;
  bucket: string;
  key: string;
  size: number;
  etag: string;
  versionId?: string;
  requester?: string;
}): Record<string, unknown> {
  return {
    version: '0',
    id: randomUUID(),
    'detail-type': 'Object Created',
    source: 'aws.s3',
    account: o.account,
    time: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
    region: o.region,
    resources: [`arn:aws:s3:::${o.bucket}`],
    detail: {
      version: '0',
      bucket: { name: o.bucket },
      object: {
        key: o.key,
        size: o.size,
        etag: o.etag.replaceAll('"', ''),
        ...(o.versionId ? { 'version-id': o.versionId } : {}),
        sequencer: Date.now().toString(16).toUpperCase().padStart(18, '0'),
      },
      'request-id': randomUUID().replaceAll('-', '').slice(0, 16).toUpperCase(),
      requester: o.requester ?? o.account,
      'source-ip-address': '127.0.0.1',
      reason: 'PutObject',
    },
  };
}

interface Rule {
  logicalId: string;
  arn: string;
  pattern?: EventPattern;
  schedule?: string;
  targets: {
    Arn: string;
    Input?: string;
    InputTransformer?: { InputPathsMap?: Record<string, string>; InputTemplate: string };
  }[];
}

export class EventBus {
  readonly deliveries: Delivery[] = [];
  private readonly rules: Rule[];

  constructor(
    resources: ResolvedResource[],
    private readonly fleet: LambdaFleet,
  ) {
    this.rules = resources
      .filter((r) => r.type === 'AWS::Events::Rule')
      .map((r) => ({
        logicalId: r.logicalId,
        arn: r.arn ?? r.physicalId,
        ...(r.properties.EventPattern ? { pattern: r.properties.EventPattern as EventPattern } : {}),
        ...(r.properties.ScheduleExpression ? { schedule: String(r.properties.ScheduleExpression) } : {}),
        targets: (r.properties.Targets as Rule['targets'] | undefined) ?? [],
      }));
  }

  /** The rules whose pattern matches (schedules never match an event). */
  matching(event: unknown): Rule[] {
    return this.rules.filter((r) => r.pattern && matchesPattern(r.pattern, event));
  }

  /**
   * Puts the event on the bus: every matching rule's targets are invoked asynchronously. Returns
   * once every invocation (with Lambda's async retries) ended; the result lists the deliveries.
   */
  async put(event: Record<string, unknown>): Promise<Delivery[]> {
    const out: Delivery[] = [];
    await Promise.all(
      this.matching(event).flatMap((rule) =>
        rule.targets.map(async (t) => out.push(await this.deliver(rule, t, event))),
      ),
    );
    return out;
  }

  /** A scheduled rule firing: its targets get the Scheduled Event, or the InputTransformer output. */
  async fireSchedule(logicalIdPrefix: string): Promise<Delivery[]> {
    const rule = this.rules.find((r) => r.schedule && r.logicalId.startsWith(logicalIdPrefix));
    if (!rule) throw new Error(`no scheduled rule ${logicalIdPrefix}*`);
    const [, , , region, account] = rule.arn.split(':');
    const event = {
      version: '0',
      id: randomUUID(),
      'detail-type': 'Scheduled Event',
      source: 'aws.events',
      account,
      time: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
      region,
      resources: [rule.arn],
      detail: {},
    };
    return Promise.all(rule.targets.map((t) => this.deliver(rule, t, event)));
  }

  private async deliver(
    rule: Rule,
    target: Rule['targets'][number],
    event: Record<string, unknown>,
  ): Promise<Delivery> {
    const payload =
      target.Input !== undefined
        ? JSON.parse(target.Input)
        : target.InputTransformer
          ? transform(target.InputTransformer, event, rule.arn)
          : event;
    const fn = this.fleet.byArn(target.Arn);
    const attempts: InvokeResult[] = [];
    // Lambda's asynchronous invocation: up to 2 retries after a function error.
    for (let i = 0; i < 3; i++) {
      const r = await fn.invoke(payload);
      attempts.push(r);
      if (r.ok) break;
    }
    const d = { rule: rule.logicalId, target: fn.name, event: payload, attempts };
    this.deliveries.push(d);
    return d;
  }
}

/** EventBridge InputTransformer: InputPathsMap JSONPaths (simple $.a.b paths) into the template. */
export function transform(
  t: { InputPathsMap?: Record<string, string>; InputTemplate: string },
  event: Record<string, unknown>,
  ruleArn: string,
): unknown {
  const values: Record<string, unknown> = { 'aws.events.rule-arn': ruleArn, 'aws.events.event': event };
  for (const [name, path] of Object.entries(t.InputPathsMap ?? {})) {
    let v: unknown = event;
    for (const part of path
      .replace(/^\$\.?/, '')
      .split('.')
      .filter(Boolean))
      v = (v as Record<string, unknown> | undefined)?.[part];
    values[name] = v;
  }
  const text = t.InputTemplate.replace(/<([A-Za-z0-9_.-]+)>/g, (m, name: string) =>
    name in values ? JSON.stringify(values[name]) : m,
  );
  return JSON.parse(text);
}
