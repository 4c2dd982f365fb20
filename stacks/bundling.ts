/**
 * How every Lambda in functions/ is bundled: the `nodejs` props of the SST Function, which SST v2
 * hands to its own esbuild (0.18, node_modules/sst/runtime/handlers/node.js: `format`, `minify`,
 * `sourcemap`, `install`, `loader`, `esbuild` spread over its options). Kept here so the stack, the
 * bundle test (test/infra/bundles.test.ts) and `npm run bench -- bundles` use the very same options.
 *
 * Sizes: each bundle's JS must stay ≤ 1 MiB (issue 10). What it takes:
 * - minify (SST's default is not to);
 * - each function composes only its own ports (functions/<name>.ts → src/aws/runtime.ts), so only
 *   those @aws-sdk/client-* packages are imported (they are `sideEffects: false`; esbuild drops the rest);
 * - zod's `locales` namespace: `import { z } from 'zod'` makes esbuild 0.18 keep every locale
 *   (≈ 260 KB minified; rollup and webpack shake it, see zod #6050). veritrail never switches
 *   locale, so the bundle's `z.locales` holds English only (`zodEnglishOnly`); zod's default
 *   messages are English either way (zod/v4/classic/schemas.js registers `en` itself).
 *
 * - Powertools for AWS Lambda (TypeScript) is not bundled: every function has the official
 *   Powertools Lambda layer (`powertoolsLayer`), and `@aws-lambda-powertools/*` is external, so the
 *   bundle imports it from the layer (/opt/nodejs/node_modules, on Lambda's NODE_PATH, which the
 *   nodejs18.x and later runtimes also use to resolve ES module imports). That keeps the Tracer
 *   with the X-Ray SDK it loads (≈ 131 KiB minified) out of every bundle, and the Logger and
 *   Metrics (≈ 32 KiB): measured in docs/deploy.md, "Logs, metrics and traces".
 *
 * Source maps are built (SST moves them out of the bundle into their own asset).
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import { Stack } from 'aws-cdk-lib';
import { type ILayerVersion, LayerVersion } from 'aws-cdk-lib/aws-lambda';
import { StringParameter } from 'aws-cdk-lib/aws-ssm';
import type { Construct } from 'constructs';
import { buildSync } from 'esbuild';
import type { FunctionCopyFilesProps, FunctionProps } from 'sst/constructs';
import { EVALUATE_PROCESSING_PROGRAM, PROCESSING_PROGRAM } from '../src/core/processing.js';

type NodeJsProps = NonNullable<FunctionProps['nodejs']>;
/** The esbuild plugin shape (esbuild's own type, not imported: SST's esbuild is 0.18, ours 0.28). */
interface EsbuildPlugin {
  name: string;
  setup(build: {
    onResolve(
      options: { filter: RegExp },
      callback: (args: { path: string; importer: string }) => { path: string; namespace: string } | undefined,
    ): void;
    onLoad(
      options: { filter: RegExp; namespace: string },
      callback: (args: { path: string }) => { contents: string; resolveDir: string; loader: 'js' },
    ): void;
  }): void;
}

const require = createRequire(import.meta.url);
const ZOD_LOCALES_NAMESPACE = 'veritrail-zod-locales';

/** Resolves zod's `locales/index.js` (every locale) to a module that exports English only. */
export const zodEnglishOnly: EsbuildPlugin = {
  name: 'veritrail-zod-english-only',
  setup(build) {
    const localesDir = path.dirname(require.resolve('zod/v4/locales/en.js'));
    build.onResolve({ filter: /\/locales\/index\.js$/ }, (args) =>
      args.importer.includes(`${path.sep}node_modules${path.sep}zod${path.sep}`)
        ? { path: 'locales', namespace: ZOD_LOCALES_NAMESPACE }
        : undefined,
    );
    build.onLoad({ filter: /.*/, namespace: ZOD_LOCALES_NAMESPACE }, () => ({
      contents: `export { default as en } from ${JSON.stringify(path.join(localesDir, 'en.js'))};`,
      resolveDir: localesDir,
      loader: 'js',
    }));
  },
};

const CREDENTIALS_NAMESPACE = 'veritrail-lambda-credentials';

/**
 * The credential providers a Lambda never reaches. The SDK's default chain
 * (@aws-sdk/credential-provider-node) tries the environment first, and Lambda always puts the
 * function role's credentials there (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN:
 * Lambda Developer Guide, "Defined runtime environment variables"). The chain imports the others
 * (SSO, shared ini files and the STS/SSO clients they carry, credential_process, web identity)
 * dynamically, which a single-file bundle inlines: ≈ 90 KB of every bundle that no invocation runs.
 * In the bundle each resolves to a provider that declines with the SDK's own
 * CredentialsProviderError (so the chain moves on, to container and instance metadata), naming the
 * missing environment variables. Local runs and tests use the unbundled sources and keep the full chain.
 */
export const lambdaCredentialsOnly: EsbuildPlugin = {
  name: 'veritrail-lambda-credentials-only',
  setup(build) {
    const providers: Record<string, string> = {
      '@aws-sdk/credential-provider-sso': 'fromSSO',
      '@aws-sdk/credential-provider-ini': 'fromIni',
      '@aws-sdk/credential-provider-process': 'fromProcess',
      '@aws-sdk/credential-provider-web-identity': 'fromTokenFile',
    };
    const propertyProvider = path.dirname(require.resolve('@smithy/property-provider/package.json'));
    build.onResolve({ filter: /^@aws-sdk\/credential-provider-(sso|ini|process|web-identity)$/ }, (args) =>
      args.importer.includes(`${path.sep}credential-provider-node${path.sep}`)
        ? { path: args.path, namespace: CREDENTIALS_NAMESPACE }
        : undefined,
    );
    build.onLoad({ filter: /.*/, namespace: CREDENTIALS_NAMESPACE }, (args) => {
      const name = providers[args.path] ?? 'fromUnavailable';
      return {
        contents:
          `import { CredentialsProviderError } from '@smithy/property-provider';\n` +
          `export const ${name} = (init = {}) => async () => { throw new CredentialsProviderError(` +
          `'veritrail Lambda bundle: only environment, container and instance credentials are built in ` +
          `(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN are missing)', ` +
          `{ logger: init.logger, tryNextLink: true }); };\n`,
        resolveDir: propertyProvider,
        loader: 'js',
      };
    });
  },
};

/**
 * The Powertools for AWS Lambda (TypeScript) release the functions run: the version of the
 * layer, and the version installed in node_modules (what the code is type-checked and tested
 * with; test/infra/bundles.test.ts fails when the two differ). Upgrade both together.
 */
export const POWERTOOLS_VERSION = '2.36.0';

/**
 * The public SSM parameter AWS publishes for each Powertools release, in every commercial region,
 * whose value is that release's layer version ARN,
 * `arn:aws:lambda:<region>:094274105915:layer:AWSLambdaPowertoolsTypeScriptV2:<n>` (Powertools
 * documentation, "Lambda layers": "Lookup Layer ARN via AWS SSM Parameter Store"). CloudFormation
 * resolves it at deploy time; layer versions are immutable, so the code is pinned to this release.
 */
export const POWERTOOLS_LAYER_PARAMETER = `/aws/service/powertools/typescript/generic/all/${POWERTOOLS_VERSION}`;

/** What the layer provides and the bundles therefore leave out (the layer's `nodejs/node_modules`). */
export const FROM_POWERTOOLS_LAYER: readonly string[] = ['@aws-lambda-powertools/*'];

/** The Powertools layer, one per stack, for every function's `layers`. */
export function powertoolsLayer(scope: Construct): ILayerVersion {
  const stack = Stack.of(scope);
  const id = 'PowertoolsLayer';
  return (
    (stack.node.tryFindChild(id) as ILayerVersion | undefined) ??
    LayerVersion.fromLayerVersionArn(
      stack,
      id,
      StringParameter.valueForStringParameter(stack, POWERTOOLS_LAYER_PARAMETER),
    )
  );
}

/** The `nodejs` props of every function. */
export const NODEJS_BUNDLING = {
  format: 'esm',
  minify: true,
  sourcemap: true,
  esbuild: {
    plugins: [zodEnglishOnly, lambdaCredentialsOnly] as never,
    external: [...FROM_POWERTOOLS_LAYER],
  },
} satisfies NodeJsProps;

/**
 * Cedar (@cedar-policy/cedar-wasm's Node.js build, used by src/core/gate/policy.ts) reads
 * `${__dirname}/cedar_wasm_bg.wasm` when its module loads. In SST's ESM bundle `__dirname` is the
 * bundle file's own folder (SST's banner defines it from `import.meta.url`), and the handler is
 * written to `functions/<name>.mjs`, so the wasm goes to `functions/cedar_wasm_bg.wasm`. It is
 * 4.3 MB (1.4 MB zipped), far above the 1 MiB JS budget; it cannot be made smaller here and is
 * reported on its own by the bundle test and `npm run bench -- bundles`.
 */
export const CEDAR_WASM_FILE = 'cedar_wasm_bg.wasm';
export function cedarWasmCopy(root: string): FunctionCopyFilesProps {
  const wasm = path.join(path.dirname(require.resolve('@cedar-policy/cedar-wasm/nodejs')), CEDAR_WASM_FILE);
  return { from: path.relative(root, wasm), to: `functions/${CEDAR_WASM_FILE}` };
}

/**
 * A processing job program (functions/processing/preprocess.ts, or evaluate.ts for Evaluate's
 * jobs), built into one ES module beside the step's handler (`functions/processing.mjs` or
 * `functions/evaluation.mjs` in its asset, which
 * src/aws/sagemaker-processor.ts reads from next to its own bundle and stores content-addressed for
 * each job). It runs on the processing image's Node 22 with nothing installed, so everything is
 * bundled; CommonJS dependencies get a `require` for Node's built-ins.
 */
export function processingProgramCopy(
  root: string,
  outDir: string,
  job: 'preprocess' | 'evaluate' = 'preprocess',
): FunctionCopyFilesProps {
  const file = job === 'preprocess' ? PROCESSING_PROGRAM : EVALUATE_PROCESSING_PROGRAM;
  const outfile = path.join(outDir, 'processing', file);
  buildSync({
    entryPoints: [path.join(root, 'functions', 'processing', `${job}.ts`)],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node22',
    minify: true,
    legalComments: 'none',
    banner: {
      js: "import { createRequire as __veritrailRequire } from 'node:module'; const require = __veritrailRequire(import.meta.url);",
    },
    logLevel: 'error',
  });
  return { from: path.relative(root, outfile), to: `functions/${file}` };
}

/** The functions whose bundle imports Cedar (test/infra/bundles.test.ts checks the list against the bundles). */
export const FUNCTIONS_WITH_CEDAR: readonly string[] = ['gate'];
