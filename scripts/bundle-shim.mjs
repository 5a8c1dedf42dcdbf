// Build step (after tsc): the shim as one CommonJS file, and V8's code cache for it.
//
// build/shim/bundle/shim.cjs is build/shim/run-process.js with everything it imports
// (core, native's loader, ttrpc, protos, pino, protobufjs, ...), bundled by esbuild.
// build/shim/entry.cjs (shim/entry.cts) runs it: the launcher starts managers, spares,
// daemons and the Node CLI that way, because one CommonJS file with a code cache boots
// in about half the time of the ES module tree (measured in shim/entry.cts).
//
// The code cache is taken here, after the bundle's modules of every mode were evaluated
// (preloadModes), by the node that runs the build, which is the node the launcher runs.
// Both files are written beside their final names, then renamed over them.
import { build } from 'esbuild';
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const shimDir = fileURLToPath(new URL('../build/shim/', import.meta.url));
const outDir = `${shimDir}bundle/`;
const bundle = `${outDir}shim.cjs`;
const temporary = `${bundle}.${process.pid}.tmp`;

mkdirSync(outDir, { recursive: true });
await build({
  entryPoints: [`${shimDir}run-process.js`],
  outfile: temporary,
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  // The modules read import.meta.url (native/index.ts finds the addon from it): in the
  // bundle it is the bundle's own URL, and build/shim/bundle/ is as deep as build/native/.
  define: { 'import.meta.url': '__tsrunBundleUrl' },
  banner: { js: "const __tsrunBundleUrl = require('node:url').pathToFileURL(__filename).href;" },
  sourcemap: 'linked',
  legalComments: 'none',
  logLevel: 'warning',
});
renameSync(`${temporary}.map`, `${bundle}.map`);
renameSync(temporary, bundle);

// Load it exactly as entry.cjs will, evaluate every mode's modules, take the cache.
const { loadBundle } = createRequire(import.meta.url)('../build/shim/bundle-loader.cjs');
const { exports, script } = loadBundle(bundle);
if (typeof exports.runShimProcess !== 'function' || typeof exports.preloadModes !== 'function') {
  rmSync(bundle);
  throw new Error(`bundle-shim: ${bundle} does not export runShimProcess and preloadModes`);
}
await exports.preloadModes();
const cache = `${bundle}.v8cache`;
writeFileSync(`${cache}.${process.pid}.tmp`, script.createCachedData());
renameSync(`${cache}.${process.pid}.tmp`, cache);
