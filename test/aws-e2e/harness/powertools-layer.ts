/**
 * The Powertools for AWS Lambda (TypeScript) layer every function has (stacks/bundling.ts
 * `powertoolsLayer`), laid out as Lambda mounts it: `<dir>/nodejs/node_modules`, the folder Lambda
 * puts on NODE_PATH as /opt/nodejs/node_modules. It holds the installed @aws-lambda-powertools/*
 * packages (the release `POWERTOOLS_VERSION` names) and every package they depend on, copied from
 * node_modules with their layout (nested copies stay nested), and nothing else: a bundle that
 * needed any other package from outside itself fails to load here as on Lambda.
 *
 * Not identical to the published layer: that one also carries the utilities veritrail does not
 * use (event handler, parameters, idempotency, batch, parser, zod), none of which a bundle imports,
 * and leaves out `@types/*` as this copy does.
 */
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

const ROOT = path.resolve(import.meta.dirname, '..', '..', '..');
const SCOPE = '@aws-lambda-powertools';

interface Manifest {
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
}

/** Where Node finds `dep` from the package at `from`: the nearest node_modules/<dep> up to `root`. */
function locate(dep: string, from: string, root: string): string | undefined {
  for (let dir = from; dir.startsWith(root); dir = path.dirname(dir)) {
    if (path.basename(dir) === 'node_modules') continue;
    const candidate = path.join(dir, 'node_modules', dep);
    if (existsSync(path.join(candidate, 'package.json'))) return candidate;
    if (dir === root) break;
  }
  return undefined;
}

/** The installed Powertools packages and their dependency closure, as folders under root/node_modules. */
export function powertoolsLayerPackages(root: string = ROOT): string[] {
  const scopeDir = path.join(root, 'node_modules', SCOPE);
  const queue = readdirSync(scopeDir).map((name) => path.join(scopeDir, name));
  const found = new Set<string>();
  while (queue.length > 0) {
    const dir = queue.shift() as string;
    if (found.has(dir)) continue;
    found.add(dir);
    const manifest = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as Manifest;
    const optional = new Set(Object.keys(manifest.optionalDependencies ?? {}));
    for (const dep of [...Object.keys(manifest.dependencies ?? {}), ...optional]) {
      if (dep.startsWith('@types/')) continue;
      const at = locate(dep, dir, root);
      if (at) queue.push(at);
      else if (!optional.has(dep)) throw new Error(`${dir}: dependency ${dep} is not installed`);
    }
  }
  return [...found].sort();
}

/**
 * Writes the layer under `dir` and returns its `nodejs/node_modules` folder (what NODE_PATH names).
 * A package inside another copied one (its own node_modules) comes with it.
 */
export function buildPowertoolsLayer(dir: string, root: string = ROOT): string {
  const source = path.join(root, 'node_modules');
  const target = path.join(dir, 'nodejs', 'node_modules');
  mkdirSync(target, { recursive: true });
  const packages = powertoolsLayerPackages(root);
  for (const pkg of packages) {
    if (packages.some((other) => other !== pkg && pkg.startsWith(`${other}${path.sep}`))) continue;
    cpSync(pkg, path.join(target, path.relative(source, pkg)), { recursive: true, dereference: true });
  }
  return target;
}
