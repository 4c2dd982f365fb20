/** Fairness evaluation: confusion counts → metrics with bootstrap intervals. See docs/fairness-metrics.md. */
export {
  type Cells,
  FairnessAccumulator,
  type FairnessCounts,
  mergeCounts,
} from './counts.js';

export { binomial, Xoshiro128 } from './random.js';
export {
  type FairnessReport,
  fairnessReport,
  quantile,
} from './report.js';
export { FairnessRowSink, readJsonLines } from './rows.js';
