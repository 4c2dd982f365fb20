/** Fairness evaluation: confusion counts → metrics with bootstrap intervals. See docs/fairness-metrics.md. */
export {
  type Cells,
  type EncodedColumn,
  FairnessAccumulator,
  type FairnessCounts,
  mergeCounts,
} from './counts.js';
export { CsvColumnReader, type CsvColumnsHandler } from './csv-columns.js';
export type { GroupMetrics, Metric } from './metrics.js';
export { binomial, resampleCells, Xoshiro128 } from './random.js';
export {
  type BootstrapOptions,
  type FairnessReport,
  type FairnessReportOptions,
  fairnessReport,
  type Interval,
  intersectionKey,
  quantile,
} from './report.js';
export { type FairnessRowOptions, FairnessRowSink, readJsonLines } from './rows.js';
