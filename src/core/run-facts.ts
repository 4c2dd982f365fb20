import { z } from 'zod';
import type { Digest } from './digest.js';
import { isDigest } from './digest.js';

/**
 * The run record's facts (`RunRecord.facts`): the summary fields each step records as it succeeds,
 * read back by `runs show`, verify, the report, the retrain decision and the reconciler. One schema,
 * one owner per field (the step named above it); writers are typed by {@link RunFactsPatch}, readers
 * go through {@link factsOf}.
 *
 * The run store is told, not trusted (invariant 8): a field of the wrong shape reads as absent, as
 * every reader treated it before there was a schema, and the checks that depend on it say what is
 * missing (verify names the broken link; a retrain whose last run lacks a digest trains).
 */
const digest = z.custom<Digest>((v) => typeof v === 'string' && isDigest(v), 'must be a sha256:<hex> digest');
const text = z.string();
const count = z.number().int().nonnegative();
/** A field that may be absent, and reads as absent when it has another shape. */
const opt = <T extends z.ZodType>(schema: T) => schema.optional().catch(undefined);

const RunFactsShape = {
  // HashDataset
  rawDigest: opt(digest),
  rawSize: opt(count),
  rawFiles: opt(count),
  rawManifestKey: opt(text),
  rawPinsKey: opt(text),
  // Preprocess
  processedDigest: opt(digest),
  processedManifestKey: opt(text),
  transformBundleKey: opt(text),
  trainRows: opt(count),
  validationRows: opt(count),
  testRows: opt(count),
  // CheckCode
  codeDigest: opt(digest),
  codeChecks: opt(z.literal('passed')),
  environmentDigest: opt(digest),
  // Train, first half (the launch): the callback finds the run's state here when the job ends.
  training: opt(z.object({ jobName: text, startedAt: text.optional(), state: z.unknown() })),
  // Train, second half
  modelDigest: opt(digest),
  modelKey: opt(text),
  trainingOutputKey: opt(text),
  trainingJob: opt(text),
  trainerIsolation: opt(text),
  // Evaluate
  fairness: opt(z.record(z.string(), z.union([z.number(), z.string(), z.null()]))),
  fairnessWarnings: opt(z.array(z.string())),
  fairnessReportKey: opt(text),
  predictionsDigest: opt(digest),
  selfReported: opt(z.object({ accuracy: z.number().nullable().optional(), flagged: z.unknown() })),
  // Gate
  gate: opt(
    z.object({
      decision: z.enum(['allow', 'deny']),
      reasons: z.array(z.string()),
      policies: z.array(z.string()),
    }),
  ),
  gateDecisionKey: opt(text),
  policyDigest: opt(digest),
  // Sign
  bundles: opt(z.record(z.string(), text)),
  signingKey: opt(text),
  // Register
  registry: opt(z.object({ ref: text, approval: text })),
  // Finish (and RecordFailure): the end, and the signed model report or why there is none.
  finishedAt: opt(text),
  reportKey: opt(text),
  reportDigest: opt(digest),
  reportSigningKey: opt(digest),
  reportError: opt(z.object({ code: text, message: text })),
};

const RunFactsSchema = z.object(RunFactsShape);

/** The facts of a run as read back: every field optional, each of its documented shape. */
export type RunFacts = z.output<typeof RunFactsSchema>;

/** What a step may record: any of the documented fields, each of its shape. */
export type RunFactsPatch = { [K in keyof RunFacts]?: NonNullable<RunFacts[K]> };

/** The run's facts through the schema (unknown fields dropped, misshapen ones absent). */
export function factsOf(run: { facts?: Record<string, unknown> }): RunFacts {
  return RunFactsSchema.parse(run.facts ?? {});
}
