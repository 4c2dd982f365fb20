import { join } from 'node:path';
import type { ErrorInfo } from '../core/errors.js';
import type { RunStatus } from '../core/run.js';
import { factsOf } from '../core/run-facts.js';
import { homePaths } from '../local/home.js';
import type { RunRecord } from '../ports.js';

/** The `--json` shape of `veritrail run`: one object on stdout. */
export interface RunSummary {
  runId: string;
  status: RunStatus;
  pipeline: string;
  dataset: { uri: string; digest?: string };
  processed?: { digest: string };
  model?: { digest: string };
  fairness?: Record<string, unknown>;
  gate?: { decision: string; reasons: string[] };
  /** Paths of the signed bundles (Sigstore bundle JSON), by statement. */
  attestations: Record<string, string>;
  /**
   * The run's model report: the signed statement (model-report/v1) and how to render it. Every run
   * that ended (SUCCEEDED, REJECTED, FAILED) has one.
   */
  report?: { statement: string; bundle: string; render: string };
  error?: ErrorInfo;
}

export function runSummary(
  home: string,
  run: RunRecord | undefined,
  results: Record<string, unknown> | undefined,
  fallbackError: ErrorInfo | undefined,
): RunSummary {
  if (!run) {
    return {
      runId: 'unknown',
      status: 'FAILED',
      pipeline: 'unknown',
      dataset: { uri: '' },
      attestations: {},
      error: fallbackError ?? { code: 'INTERNAL', message: 'the run was not recorded' },
    };
  }
  const f = factsOf(run);
  const artifacts = join(homePaths(home).objects, 'artifacts');
  const attestations = Object.fromEntries(
    Object.entries(f.bundles ?? {}).map(([k, key]) => [k, join(artifacts, key)]),
  );
  void results;
  return {
    runId: run.runId,
    status: run.status,
    pipeline: run.pipeline,
    dataset: { uri: run.dataset.uri, ...(f.rawDigest ? { digest: f.rawDigest } : {}) },
    ...(f.processedDigest ? { processed: { digest: f.processedDigest } } : {}),
    ...(f.modelDigest ? { model: { digest: f.modelDigest } } : {}),
    ...(f.fairness ? { fairness: f.fairness } : {}),
    ...(f.gate ? { gate: { decision: f.gate.decision, reasons: f.gate.reasons } } : {}),
    attestations,
    ...(f.reportKey && f.reportDigest
      ? {
          report: {
            statement: f.reportDigest,
            bundle: join(artifacts, f.reportKey),
            render: `veritrail report ${run.runId} --out report-${run.runId}.html`,
          },
        }
      : {}),
    ...(run.error
      ? { error: run.error }
      : fallbackError && run.status === 'FAILED'
        ? { error: fallbackError }
        : {}),
  };
}
