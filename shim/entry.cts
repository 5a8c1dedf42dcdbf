/**
 * The shim's process entry point on containerd's path: the native launcher runs
 * `node build/shim/entry.cjs ...` (a manager, or the Node CLI as its fallback), and
 * daemons and spares are started the same way (run-process.ts).
 *
 * Why a CommonJS file and a bundle: every Node boot on containerd's path counts (the very
 * first start boots the manager and a daemon). Measured on this 2-core box, node 20:
 * an empty .cjs runs in about 80 ms and an empty .mjs in 120 ms (the ES module loader);
 * the daemon's ES module tree loads in 170-280 ms, the same code as one CommonJS bundle
 * in about 110 ms, and with V8's code cache (bundle-loader.cts) in about 90 ms.
 *
 * Without a bundle (a tree built by `tsc` alone), or when it fails to load, this runs
 * the same code from the module tree (as main.ts does): slower, the same behaviour.
 */
import fs = require('node:fs');
import path = require('node:path');
import codeCache = require('./code-cache.cjs');

type RunShimProcess = (entryScript: string, options?: { readonly saveCodeCache?: (() => void) | undefined }) => Promise<number>;

/** The bundle made by scripts/bundle-shim.mjs, and V8's code cache for it. */
const BUNDLE = path.join(__dirname, 'bundle', 'shim.cjs');
const CODE_CACHE = `${BUNDLE}.v8cache`;
/** Where managers and daemons keep the runtime code caches (the manager's control socket directory). */
const RUNTIME_CACHE_DIR = '/run/tsrun';

function fromBundle(): ((entryScript: string) => Promise<number>) | undefined {
  if (!fs.existsSync(BUNDLE)) return undefined;
  try {
    const { exports, saveRuntimeCache } = codeCache.loadWithCodeCache(BUNDLE, CODE_CACHE, process.argv.slice(2), RUNTIME_CACHE_DIR);
    const run = (exports as { runShimProcess?: unknown } | undefined)?.runShimProcess;
    if (typeof run === 'function') return (entryScript) => (run as RunShimProcess)(entryScript, { saveCodeCache: saveRuntimeCache });
    process.stderr.write(`tsrun: ${BUNDLE} exports no runShimProcess: running from the module tree (rebuild with \`npm run build\`)\n`);
  } catch (error) {
    process.stderr.write(`tsrun: ${BUNDLE} failed to load (${error instanceof Error ? error.message : String(error)}): running from the module tree (rebuild with \`npm run build\`)\n`);
  }
  return undefined;
}

async function main(): Promise<number> {
  const run = fromBundle() ?? (await import('./run-process.js')).runShimProcess;
  return run(__filename);
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`containerd-shim-tsrun-v1: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
