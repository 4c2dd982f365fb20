import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Digest } from '../../src/core/digest.js';
import { isVeritrailError } from '../../src/core/errors.js';
import { objectKeyProblem, parseControlPlaneInput } from '../../src/core/events/index.js';
import { scheduleExpression } from '../../src/core/rules.js';
import {
  EXECUTION_NAME_PATTERN,
  executionNameOf,
  idempotencyKeyOf,
  planStart,
  RUN_ID_PATTERN,
  type Trigger,
} from '../../src/core/start.js';
import { matchesPattern } from '../helpers/event-pattern.js';

const hex64 = fc.stringMatching(/^[0-9a-f]{64}$/);
const digest = hex64.map((h): Digest => `sha256:${h}`);
const anyText = fc.string({ unit: 'binary', maxLength: 200 });
const kind = fc.constantFrom('s3', 'local', 'schedule', 'operator' as const);

const trigger: fc.Arbitrary<Trigger> = fc.oneof(
  fc.record({
    kind: fc.constant('s3' as const),
    pipeline: anyText,
    bucket: anyText,
    key: anyText,
    versionId: fc.option(anyText, { nil: undefined }),
    etag: anyText,
    sequencer: anyText,
    size: fc.nat(),
    eventId: anyText,
  }),
  fc.record({ kind: fc.constant('local' as const), pipeline: anyText, path: anyText, digest }),
  fc.record({
    kind: fc.constant('schedule' as const),
    pipeline: anyText,
    rule: anyText,
    time: fc
      .date({ min: new Date(0), max: new Date('2200-01-01T00:00:00Z'), noInvalidDate: true })
      .map((d) => d.toISOString()),
    force: fc.boolean(),
  }),
  fc.record({
    kind: fc.constant('operator' as const),
    pipeline: anyText,
    dataset: fc.record({
      uri: fc.constant('s3://bucket-1/k.csv'),
      versionId: anyText,
      digest: fc.option(digest, { nil: undefined }),
    }),
    requestId: fc.option(anyText, { nil: undefined }),
    force: fc.boolean(),
  }),
);

describe('execution names', () => {
  it('are always valid Step Functions names, whatever the pipeline and run id', () => {
    fc.assert(
      fc.property(anyText, kind, anyText, (pipeline, k, runId) => {
        expect(executionNameOf(pipeline, k, runId)).toMatch(EXECUTION_NAME_PATTERN);
      }),
    );
  });

  it('are valid and carry a valid run id for every trigger', () => {
    fc.assert(
      fc.property(trigger, (t) => {
        const plan = planStart(t);
        expect(plan.executionName).toMatch(EXECUTION_NAME_PATTERN);
        expect(plan.runId).toMatch(RUN_ID_PATTERN);
        expect(plan.executionName.endsWith(plan.runId)).toBe(true);
      }),
    );
  });
});

describe('idempotency (invariant 4)', () => {
  it('the same trigger always gives the same key, run id and execution name', () => {
    fc.assert(
      fc.property(trigger, (t) => {
        expect(planStart(structuredClone(t))).toEqual(planStart(t));
      }),
    );
  });

  it('delivery facts (event id, path, actor) never change the key', () => {
    fc.assert(
      fc.property(trigger, anyText, (t, noise) => {
        const noisy: Trigger =
          t.kind === 's3'
            ? { ...t, eventId: noise, size: t.size + 1 }
            : t.kind === 'local'
              ? { ...t, path: noise }
              : t.kind === 'schedule'
                ? { ...t, eventId: noise, force: !t.force }
                : { ...t, actor: noise };
        expect(idempotencyKeyOf(noisy)).toBe(idempotencyKeyOf(t));
      }),
    );
  });

  it('different S3 content identities give different keys and names', () => {
    const id = fc.record({ pipeline: anyText, bucket: anyText, key: anyText, versionId: anyText });
    fc.assert(
      fc.property(id, id, (a, b) => {
        fc.pre(
          a.pipeline !== b.pipeline ||
            a.bucket !== b.bucket ||
            a.key !== b.key ||
            a.versionId !== b.versionId,
        );
        const t = (x: typeof a): Trigger => ({
          kind: 's3',
          ...x,
          etag: 'e',
          sequencer: '0',
          size: 1,
          eventId: 'i',
        });
        expect(planStart(t(a)).idempotencyKey).not.toBe(planStart(t(b)).idempotencyKey);
        expect(planStart(t(a)).executionName).not.toBe(planStart(t(b)).executionName);
      }),
    );
  });

  it('different local contents give different keys', () => {
    fc.assert(
      fc.property(digest, digest, (a, b) => {
        fc.pre(a !== b);
        const t = (dg: Digest): Trigger => ({ kind: 'local', pipeline: 'p-1', path: 'x', digest: dg });
        expect(idempotencyKeyOf(t(a))).not.toBe(idempotencyKeyOf(t(b)));
      }),
    );
  });

  it('schedule firings in different minutes give different keys', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2 ** 31 }),
        fc.integer({ min: 1, max: 10_000 }),
        (minute, gap) => {
          const t = (m: number): Trigger => ({
            kind: 'schedule',
            pipeline: 'p-1',
            rule: 'r',
            time: new Date(m * 60_000).toISOString(),
            force: false,
          });
          expect(idempotencyKeyOf(t(minute))).not.toBe(idempotencyKeyOf(t(minute + gap)));
        },
      ),
    );
  });
});

describe('object key safety', () => {
  const safeSegment = fc
    .stringMatching(/^[A-Za-z0-9_-][A-Za-z0-9._-]{0,20}$/)
    .filter((s) => s !== '.' && s !== '..');

  it('accepts every key made of plain segments', () => {
    fc.assert(
      fc.property(fc.array(safeSegment, { minLength: 1, maxLength: 8 }), (segments) => {
        expect(objectKeyProblem(segments.join('/'))).toBeUndefined();
      }),
    );
  });

  it('rejects every key with a ".." segment, a backslash, a NUL or a leading /', () => {
    const trick = fc.constantFrom('..', 'a\\b', 'a\u0000b', '');
    fc.assert(
      fc.property(
        fc.array(safeSegment, { maxLength: 4 }),
        trick,
        fc.array(safeSegment, { maxLength: 4 }),
        (pre, t, post) => {
          const key = t === '' ? `/${[...pre, ...post, 'x'].join('/')}` : [...pre, t, ...post].join('/');
          expect(objectKeyProblem(key)).toBeDefined();
        },
      ),
    );
  });
});

describe('robustness against arbitrary input', () => {
  it('recognising an input throws only VeritrailErrors', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        try {
          parseControlPlaneInput(value);
        } catch (e) {
          expect(isVeritrailError(e)).toBe(true);
        }
      }),
    );
  });

  it('S3-shaped garbage is refused with a VeritrailError, never a crash', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string(), fc.jsonValue()), (detail) => {
        try {
          parseControlPlaneInput({ source: 'aws.s3', 'detail-type': 'Object Created', detail });
        } catch (e) {
          expect(isVeritrailError(e)).toBe(true);
        }
      }),
    );
  });

  it('scheduleExpression throws only VeritrailErrors', () => {
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom('*', '0', '7', '*/5', '1-5', 'mon', 'jan', '?', 'L', '61', ',', '-', '/'), {
          maxLength: 7,
        }),
        (parts) => {
          try {
            expect(scheduleExpression(parts.join(' '))).toMatch(/^cron\(\S+ \S+ \S+ \S+ \S+ \*\)$/);
          } catch (e) {
            expect(isVeritrailError(e)).toBe(true);
          }
        },
      ),
    );
  });
});

describe('pattern matching laws', () => {
  const scalar = fc.oneof(
    anyText,
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.boolean(),
    fc.constant(null),
  );

  it('an exact value matches itself, and anything-but it does not', () => {
    fc.assert(
      fc.property(anyText, (v) => {
        expect(matchesPattern({ f: [v] }, { f: v })).toBe(true);
        expect(matchesPattern({ f: [{ 'anything-but': v }] }, { f: v })).toBe(false);
      }),
    );
  });

  it('anything-but a string is the negation of the exact match for present values', () => {
    fc.assert(
      fc.property(anyText, scalar, (v, e) => {
        expect(matchesPattern({ f: [{ 'anything-but': v }] }, { f: e })).toBe(
          !matchesPattern({ f: [v] }, { f: e }),
        );
      }),
    );
  });

  it('a wildcard without * is an exact match, and prefix p* agrees with prefix', () => {
    const noStar = anyText.filter((s) => !s.includes('*') && !s.includes('\\'));
    fc.assert(
      fc.property(noStar, anyText, (p, v) => {
        expect(matchesPattern({ f: [{ wildcard: p }] }, { f: v })).toBe(v === p);
        expect(matchesPattern({ f: [{ wildcard: `${p}*` }] }, { f: v })).toBe(
          matchesPattern({ f: [{ prefix: p }] }, { f: v }),
        );
      }),
    );
  });

  it('exists true and exists false split every event', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (e) => {
        const yes = matchesPattern({ f: [{ exists: true }] }, { f: e });
        const no = matchesPattern({ f: [{ exists: false }] }, { f: e });
        expect(yes).toBe(!no);
      }),
    );
  });
});
