// ES module resolution through NODE_PATH, as Lambda's Node.js runtimes (nodejs18.x and later) do it:
// a function's `import '@aws-lambda-powertools/logger'` that finds nothing next to the function is
// resolved from the layers on NODE_PATH (/opt/nodejs/node_modules). Stock Node resolves only
// CommonJS `require` through NODE_PATH, so the emulated Lambda (lambda-child.mjs) and the bundle
// tests register these hooks (module.register) before importing a handler.
//
// Only NODE_PATH entries that are node_modules folders are searched (the layer paths); a specifier
// found the ordinary way is never looked up here.
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const folders = (process.env.NODE_PATH ?? '')
  .split(path.delimiter)
  .filter((dir) => dir !== '' && path.basename(dir) === 'node_modules');

/** A package name (`pkg`, `@scope/pkg`, with a subpath or not): not relative, absolute, or a URL. */
function isBare(specifier) {
  return !/^(\.|\/|[a-zA-Z][a-zA-Z0-9+.-]*:)/.test(specifier);
}

export async function resolve(specifier, context, nextResolve) {
  try {
    return await nextResolve(specifier, context);
  } catch (error) {
    if (error?.code !== 'ERR_MODULE_NOT_FOUND' || !isBare(specifier)) throw error;
    for (const folder of folders) {
      // Resolved as if imported by a module next to the folder: Node looks in <folder> first.
      const parentURL = pathToFileURL(path.join(path.dirname(folder), 'node-path-import.mjs')).href;
      try {
        return await nextResolve(specifier, { ...context, parentURL });
      } catch (again) {
        if (again?.code !== 'ERR_MODULE_NOT_FOUND') throw again;
      }
    }
    throw error;
  }
}
