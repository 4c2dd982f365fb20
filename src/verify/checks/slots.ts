/** The run's bundles, in chain order: [check name prefix, key in facts.bundles, export file stem]. */
export const BUNDLE_SLOTS = [
  { slot: 'transform', fact: 'transform', file: 'transform' },
  { slot: 'provenance', fact: 'provenance', file: 'provenance' },
  { slot: 'model-signing', fact: 'modelSignature', file: 'model-signature' },
  { slot: 'fairness', fact: 'fairness', file: 'fairness' },
  { slot: 'gate', fact: 'gate', file: 'gate' },
] as const;

export type BundleSlot = (typeof BUNDLE_SLOTS)[number]['slot'];
