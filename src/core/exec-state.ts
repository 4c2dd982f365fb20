import { z } from 'zod';
import { isDigest } from './digest.js';

/**
 * The execution state passed between states of the state machine. It carries identities and
 * digests only (Step Functions caps payloads at 256 KiB); the bytes live in the object store.
 */
const digest = z.string().refine(isDigest, 'must be a sha256:<hex> digest');
const key = z.string().min(1);

export const ExecStateSchema = z.object({
  runId: z.string().regex(/^[A-Za-z0-9_-]{1,80}$/, 'must be 1-80 letters, digits, - or _'),
  pipeline: z.object({
    name: z.string().min(1),
    /** Digest of the canonical definition, stored content-addressed in the artifacts bucket. */
    digest,
    /** Where the definition's relative paths (trainer code, policy) resolve: a file: URI locally. */
    base: z.string().optional(),
  }),
  dataset: z.object({ uri: z.string().min(1), versionId: z.string().optional() }),
  trigger: z.object({
    type: z.enum(['operator', 's3', 'schedule', 'landing']),
    idempotencyKey: z.string().min(1),
    actor: z.string().optional(),
  }),
  results: z.record(z.string(), z.unknown()).optional(),
});
export type ExecState = z.infer<typeof ExecStateSchema>;

export const HashResultSchema = z.object({
  digest,
  size: z.number().int().nonnegative(),
  files: z.number().int().positive(),
  manifestKey: key,
  manifestDigest: digest,
});
export type HashResult = z.infer<typeof HashResultSchema>;

const channel = z.object({ key, digest, rows: z.number().int().nonnegative(), fileName: z.string() });
export const PreprocessResultSchema = z.object({
  digest,
  manifestKey: key,
  train: channel,
  validation: channel,
  /**
   * The held-out test split, never staged for the trainer: test.csv (features and label) stays with
   * the control plane; test-features.csv (features only) is what the inference contract receives;
   * test-groups.csv holds the protected attributes, row-aligned with both.
   */
  test: channel,
  testFeatures: z.object({ key, digest }),
  testGroups: z.object({ key, digest }),
  columns: z.array(z.string()),
  transform: z.object({ digest, codeDigest: digest }),
  bundleKey: key.optional(),
});
export type PreprocessResult = z.infer<typeof PreprocessResultSchema>;

export const CodeResultSchema = z.object({
  digest,
  files: z.number().int().nonnegative(),
  image: z.string().optional(),
  command: z.array(z.string()),
  /** Locally: the trainer's interpreter, version and package list (src/steps/trainer-env.ts). */
  environment: z
    .object({ interpreter: z.string(), version: z.string(), packages: digest.optional(), digest })
    .optional(),
  /** On AWS: the scanned code packed as one content-addressed tar.gz, the job's `code` input channel. */
  bundle: z.object({ key, digest, fileName: z.string() }).optional(),
});
export type CodeResult = z.infer<typeof CodeResultSchema>;

export const TrainResultSchema = z.object({
  jobName: z.string(),
  model: z.object({ key, digest }),
  output: z.object({ key, digest }),
  startedAt: z.string(),
  endedAt: z.string(),
  /** How the trainer was confined (src/local/sandbox.ts; `sagemaker` on AWS), for the provenance. */
  isolation: z
    .object({
      level: z.string(),
      network: z.boolean(),
      stateDirVisible: z.boolean(),
      note: z.string().optional(),
    })
    .optional(),
  /** The staged channels were re-hashed after the trainer exited and were unchanged. */
  channelsSealed: z.boolean().optional(),
});
export type TrainResult = z.infer<typeof TrainResultSchema>;

export const EvaluateResultSchema = z.object({
  reportKey: key,
  reportDigest: digest,
  /** The control plane's own predictions on the test split, content-addressed. */
  predictions: z.object({ key, digest }).optional(),
  headline: z.record(z.string(), z.union([z.number(), z.null(), z.string()])),
  warnings: z.array(z.string()),
});
export type EvaluateResult = z.infer<typeof EvaluateResultSchema>;

export const GateResultSchema = z.object({
  decision: z.enum(['allow', 'deny']),
  reasons: z.array(z.string()),
  policies: z.array(z.string()),
  decisionKey: key,
  decisionDigest: digest,
});
export type GateResult = z.infer<typeof GateResultSchema>;

export const SignResultSchema = z.object({
  bundles: z.record(z.string(), key),
});
export type SignResult = z.infer<typeof SignResultSchema>;

/** Reads a prior step's result from the state, failing loudly when the state machine skipped it. */
export function resultOf<T>(state: ExecState, name: string, schema: z.ZodType<T>): T {
  const value = state.results?.[name];
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    throw new Error(
      `execution state has no valid results.${name}: ${parsed.error.issues[0]?.message ?? 'missing'}`,
    );
  }
  return parsed.data;
}
