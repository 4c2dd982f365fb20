/**
 * The layer table, enforced (`npm run lint` runs `depcruise`; test/unit/layers.test.ts checks that
 * the rules hold on the repository and that they do catch a bad import).
 *
 * A module imports from its own layer and the layers below it, never from one above. Type-only
 * imports count (tsPreCompilationDeps): an interface a lower layer needs is defined in that layer.
 * README.md ("How it is built") describes each layer.
 */

/** Lowest first. */
const LAYERS = [
  // Pure domain: digests, manifests, JCS, Merkle trees, attestations, fairness, gates, event
  // schemas, the execution state, deployment names. No I/O, no AWS, no process.
  { name: 'core', path: '^src/core/' },
  // The interfaces the pipeline needs (ports.ts) and the bundle of them a handler runs with.
  { name: 'ports', path: '^src/(ports|runtime)\\.ts$' },
  // Helpers over the ObjectStore port and the file system: content-addressed reads and writes,
  // tarballs, the worker-thread pool that hashes files.
  { name: 'storage', path: '^src/((cas|tarball|hash-pool)\\.ts|hash-worker\\.mjs)$' },
  // The WORM audit log and its witnesses, over the ObjectStore port.
  { name: 'audit', path: '^src/audit/' },
  // Offline verification of a run's evidence.
  { name: 'verify', path: '^src/verify/' },
  // The model report (facts, plots, HTML), built from verified evidence.
  { name: 'report', path: '^src/report/' },
  // One module per state of the state machine.
  { name: 'steps', path: '^src/steps/' },
  // The services both modes share: the start service.
  { name: 'app', path: '^src/app/' },
  // Adapters and their composition: AWS (SDK v3, Lambda wiring) and the embedded runtime.
  { name: 'adapters', path: '^src/(aws|local)/' },
  // What runs: the CLI, the library's entry, the Lambdas, the stacks, the bin script.
  { name: 'entry points', path: '^(src/cli/|src/index\\.ts$|functions/|stacks/|sst\\.config\\.ts$|bin/)' },
  // Tooling around the product: build scripts, benchmarks, tests. Nothing imports them.
  { name: 'tooling', path: '^(scripts|bench|test)/' },
];

/**
 * Deliberate imports a rule below would refuse: each names the one rule, one importing path and one
 * imported path, with the reason it stays. Anything else that breaks a layer is fixed by moving the
 * code to the layer that owns it.
 */
const EXCEPTIONS = [
  {
    rule: 'layer-adapters',
    from: '^src/local/runner\\.ts$',
    to: '^functions/[^/]+\\.ts$',
    reason:
      'the local runner runs the very handler modules Lambda runs (one per task state), so both modes execute the same composition and middleware; it passes the embedded runtime in the invocation context, and no AWS port is built',
  },
  {
    rule: 'adapter-local-alone',
    from: '^src/local/(dynamo|runtime)\\.ts$',
    to: '^src/aws/dynamo-run-store\\.ts$',
    reason:
      'the embedded runtime keeps runs in dynalite, an embedded DynamoDB, through the DynamoDB run store the AWS side uses, so one implementation (conditional writes, execution claims, task tokens) passes the run-store contract in both modes',
  },
  {
    rule: 'stacks-core-only',
    from: '^stacks/settings\\.ts$',
    to: '^src/audit/witness/config\\.ts$',
    reason:
      'the stack checks VERITRAIL_EXTERNAL_WITNESSES with the parser the functions use at run time (witnessesFrom), so a bad setting fails the deploy instead of the first checkpoint; nothing is sent anywhere at synth',
  },
];

const NODE_IO =
  '^(node:)?(fs|fs/promises|child_process|net|http|https|http2|tls|dgram|dns|dns/promises|cluster|worker_threads|os|process|readline|readline/promises|repl|inspector|vm|module|v8)$';
const CLOUD_PACKAGES =
  '(^|/)node_modules/(@aws-sdk|@smithy|@aws-lambda-powertools|@middy|sst|aws-cdk-lib|constructs|cdk-nag|dynalite|aws-local-stepfunctions)/';
const ADAPTERS = { aws: '^src/aws/', local: '^src/local/' };
const ENTRY_POINTS = {
  cli: '^src/cli/',
  library: '^src/index\\.ts$',
  functions: '^functions/',
  stacks: '^(stacks/|sst\\.config\\.ts$)',
  bin: '^bin/',
};

const any = (paths) => paths.map((p) => `(${p})`).join('|');

/**
 * A rule, split so that each exception to it lets exactly its own import through: the rule holds
 * for every other importer, and for the excepted importer towards every other path.
 */
function withExceptions(rule) {
  const excepted = EXCEPTIONS.filter((e) => e.rule === rule.name);
  if (excepted.length === 0) return [rule];
  return [
    { ...rule, from: { ...rule.from, pathNot: any(excepted.map((e) => e.from)) } },
    ...excepted.map((e) => ({
      ...rule,
      comment: `${rule.comment} Except ${e.from} → ${e.to}: ${e.reason}.`,
      from: { path: e.from },
      to: { ...rule.to, pathNot: any([rule.to.pathNot, e.to].filter(Boolean)) },
    })),
  ];
}

// src/core is the lowest layer: its rules are core-* below.
const layerRules = LAYERS.slice(1, -1).flatMap((layer, at) => {
  const i = at + 1;
  return withExceptions({
    name: `layer-${layer.name.replaceAll(' ', '-')}`,
    severity: 'error',
    comment: `${layer.name} (${layer.path}) imports only from its own layer and those below it (${LAYERS.slice(
      0,
      i,
    )
      .map((l) => l.name)
      .join(', ')}).`,
    from: { path: layer.path },
    to: { path: any(LAYERS.slice(i + 1).map((l) => l.path)) },
  });
});

const adapterRules = Object.entries(ADAPTERS).flatMap(([name, path]) =>
  withExceptions({
    name: `adapter-${name}-alone`,
    severity: 'error',
    comment: `The ${name} adapters (${path}) do not import the other mode's adapters.`,
    from: { path },
    to: { path: any(Object.entries(ADAPTERS).flatMap(([n, p]) => (n === name ? [] : [p]))) },
  }),
);

const entryRules = Object.entries(ENTRY_POINTS).flatMap(([name, path]) =>
  withExceptions({
    name: `entry-${name}-alone`,
    severity: 'error',
    comment: `An entry point (${name}: ${path}) does not import another entry point.`,
    from: { path },
    to: { path: any(Object.entries(ENTRY_POINTS).flatMap(([n, p]) => (n === name ? [] : [p]))) },
  }),
);

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    ...layerRules,
    ...adapterRules,
    ...entryRules,
    ...withExceptions({
      name: 'stacks-core-only',
      severity: 'error',
      comment:
        'The stacks import no runtime code: only src/core (pure; the rules, names and settings both sides share). A constant a stack needs lives in src/core.',
      from: { path: ENTRY_POINTS.stacks },
      to: { path: '^src/', pathNot: '^src/core/' },
    }),
    {
      name: 'core-no-io',
      severity: 'error',
      comment: 'src/core is pure: no file system, network, processes, threads, host or environment.',
      from: { path: '^src/core/' },
      to: { dependencyTypes: ['core'], path: NODE_IO },
    },
    {
      name: 'core-no-cloud',
      severity: 'error',
      comment:
        'src/core does not depend on AWS, SST, CDK, Powertools, middy, dynalite or aws-local-stepfunctions.',
      from: { path: '^src/core/' },
      to: { path: CLOUD_PACKAGES },
    },
    {
      name: 'core-only-core',
      severity: 'error',
      comment: 'src/core imports nothing of this repository outside src/core.',
      from: { path: '^src/core/' },
      to: { dependencyTypes: ['local'], pathNot: '^src/core/' },
    },
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'No module reaches itself through its imports (type-only imports included).',
      from: {},
      to: { circular: true },
    },
    {
      name: 'not-to-unresolvable',
      severity: 'error',
      comment: 'Every import resolves (a misspelt path, or a package missing from package.json).',
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: '(^|/)node_modules/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    moduleSystems: ['es6', 'cjs'],
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      mainFields: ['module', 'main', 'types', 'typings'],
    },
    reporterOptions: { text: { highlightFocused: true } },
  },
};

// The table itself, for test/unit/layers.test.ts (not enumerable: dependency-cruiser reads only the
// configuration's own keys).
Object.defineProperty(module.exports, 'layers', { value: LAYERS, enumerable: false });
