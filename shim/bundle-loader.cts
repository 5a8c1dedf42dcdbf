/**
 * Loads the shim's bundle (build/shim/bundle/shim.cjs, one CommonJS file made at build
 * time by scripts/bundle-shim.mjs) the way Node loads a CommonJS module, but through
 * `vm.Script` so that V8's code cache for it can be handed in (Node 20 has no compile
 * cache of its own for `require`). The build makes the cache with this same function,
 * so the wrapped source V8 checks the cache against is byte for byte the same.
 *
 * A cache V8 rejects (another node binary, other V8 flags, a rebuilt bundle) costs only
 * the compile it would have saved: V8 compiles the source as if there were none.
 */
import fs = require('node:fs');
import nodeModule = require('node:module');
import path = require('node:path');
import vm = require('node:vm');

/** A loaded bundle: its `module.exports` and the compiled script (to make a cache from). */
interface LoadedBundle {
  readonly exports: unknown;
  readonly script: vm.Script;
  /** True when a cache was given and V8 refused it; undefined without one. */
  readonly cacheRejected: boolean | undefined;
}

/**
 * Reads, compiles and evaluates the CommonJS file at `file` (absolute), with the code
 * cache at `cachePath` when that file can be read.
 * @throws Error when the bundle cannot be read, does not compile, or throws while evaluated.
 */
function loadBundle(file: string, cachePath?: string): LoadedBundle {
  const source = fs.readFileSync(file, 'utf8');
  let cachedData: Buffer | undefined;
  if (cachePath !== undefined) {
    try {
      cachedData = fs.readFileSync(cachePath);
    } catch {
      // No cache: compile from source.
    }
  }
  // Node's own CommonJS wrapper, on the first line so that line numbers stay the file's.
  const wrapped = `(function (exports, require, module, __filename, __dirname) { ${source}\n});`;
  const script = new vm.Script(wrapped, { filename: file, ...(cachedData === undefined ? {} : { cachedData }) });
  const module: { exports: unknown } = { exports: {} };
  const evaluate = script.runInThisContext() as (exports: unknown, require: NodeJS.Require, module: { exports: unknown }, filename: string, dirname: string) => void;
  evaluate.call(module.exports, module.exports, nodeModule.createRequire(file), module, file, path.dirname(file));
  return { exports: module.exports, script, cacheRejected: cachedData === undefined ? undefined : script.cachedDataRejected };
}

export = { loadBundle };
