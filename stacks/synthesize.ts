/**
 * Offline synthesis of the SST v2 app: no AWS credentials, no network, no bootstrap lookup.
 * `sst deploy` resolves the account with STS first; here the account and region are given, and
 * function bundling (esbuild, SST's deferred build tasks) runs only when asked for.
 */
import path from 'node:path';
import type { App } from 'sst/constructs';

export interface SynthOptions {
  stage: string;
  /** Default: a placeholder account; the templates only use it in ARNs built at synth time. */
  account?: string;
  region?: string;
  /** Bundle the Lambda handlers with esbuild as `sst deploy` does. Default false: placeholder code. */
  bundle?: boolean;
  /** Where CDK writes the cloud assembly. */
  outdir?: string;
  root?: string;
}

/** Builds the app from sst.config.ts, runs SST's finishing steps and returns the App (call synth()). */
export async function synthesizeApp(options: SynthOptions): Promise<App> {
  const root = options.root ?? process.cwd();
  const { initProject } = await import('sst/project.js');
  await initProject({ stage: options.stage, root });
  const outdir = options.outdir ?? path.join(root, '.sst', 'synth');
  // SST keeps its generated types, build artifacts, cache and debug log under one `.sst` per project,
  // and `new App` deletes and rewrites `.sst/types`: two synths at once (a test suite's, a CI job's)
  // removed each other's files (ENOENT on .sst/types/index.ts), and two bundling synths would rebuild
  // each other's function artifacts. Each cloud assembly gets its own working folder beside it.
  const { useProject } = await import('sst/project.js');
  const paths = useProject().paths;
  paths.out = `${outdir}.work`;
  paths.artifacts = path.join(paths.out, 'artifacts');
  const { App: SstApp } = await import('sst/constructs');
  if (options.bundle) {
    // SST's own synth registers the runtime handlers before building functions.
    const { useNodeHandler } = await import('sst/runtime/handlers/node.js');
    await useNodeHandler();
  }
  const app = new SstApp(
    {
      mode: 'deploy',
      stage: options.stage,
      name: 'veritrail',
      region: options.region ?? 'eu-west-1',
      account: options.account ?? '123456789012',
      // An inactive stack gets placeholder code instead of a deferred esbuild build (SST Stack.isActive);
      // every other property of every resource is the same.
      ...(options.bundle ? {} : { isActiveStack: () => false }),
    },
    { outdir },
  );
  const config = (await import('../sst.config.js')).default;
  await config.stacks(app);
  // SST 2.49's App.finish looks up its bootstrap stack over the network for every stack (to grant
  // a sourcemap uploader, which veritrail does not use) unless it believes it runs under a test
  // (App.isRunningSSTTest: NODE_ENV=test). Offline synthesis has no account to ask; the flag changes
  // nothing else in the constructs veritrail uses (Function reads it only in `sst dev` mode).
  const nodeEnv = process.env.NODE_ENV;
  process.env.NODE_ENV = 'test';
  try {
    await app.finish();
  } finally {
    if (nodeEnv === undefined) delete process.env.NODE_ENV;
    else process.env.NODE_ENV = nodeEnv;
  }
  return app;
}
