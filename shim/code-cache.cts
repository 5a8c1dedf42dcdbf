/**
 * V8 code caches for the shim's bundle (build/shim/bundle/shim.cjs), as entry.cts loads it.
 *
 * V8 compiles a function the first time it runs. The build's cache (bundle/shim.cjs.v8cache,
 * scripts/bundle-shim.mjs) holds what evaluating every mode's modules compiled; what a
 * daemon runs for its first container (Create, Start, Wait, Delete: the runc driver, stdio,
 * mounts, cgroups) is compiled again by every new daemon on its first Task calls. So the
 * first manager and the first daemon of a bundle, once they have done that work (a
 * container deleted), write a cache of their own beside the control socket:
 * `/run/tsrun/code-cache-<role>-<install>-<bundle size>-<mtime>-<inode>.v8cache` (install:
 * a hash of the bundle's path, so two checkouts on one host keep their own), which later
 * managers, spares and daemons of that bundle load instead of the build's. Measured with
 * `npm run bench` here: a new daemon's own time for its first Create went from 18 to 13 ms,
 * Delete 9 to 7, Start 2.6 to 1.0; a start with no tsrun process running, 387 to 340 ms.
 *
 * Safety: V8 checks a cache against the source, its own version and flags, and rejects a
 * mismatch (then it compiles from source: only the time is lost). A rejected or missing
 * cache is written again; files of an older bundle are removed when a new one is written.
 * A cache is code this process will run: it is read only from a directory owned by this
 * process's euid and writable by nobody else (as the launcher checks /run/tsrun before it
 * trusts the control socket there), and only when the file is a regular one of that owner.
 */
import crypto = require('node:crypto');
import fs = require('node:fs');
import path = require('node:path');
import bundleLoader = require('./bundle-loader.cjs');

/** Which processes share a runtime cache: each compiles different code. */
type CacheRole = 'manager' | 'daemon';

/** What {@link loadWithCodeCache} gives back. */
interface CachedBundle {
  readonly exports: unknown;
  /**
   * Writes this role's runtime cache from what this process compiled so far, when it did
   * not load a valid one (once per process; later calls do nothing). Undefined for the
   * one-shot Node CLI. Throws the file system error.
   */
  readonly saveRuntimeCache: (() => void) | undefined;
}

/**
 * The role of a shim process from its argv: `-manager`, a spare or a daemon (no action),
 * or undefined for the one-shot CLI (`start`, `delete`, `-v`, `-info`). A flag value that
 * happens to read `start` makes a daemon look like the CLI: it then only skips the cache.
 */
function roleOf(argv: readonly string[]): CacheRole | undefined {
  if (argv.includes('-manager')) return 'manager';
  if (argv.includes('-spare')) return 'daemon';
  if (argv.some((arg) => arg === 'start' || arg === 'delete' || arg === '-v' || arg === '--v' || arg === '-info' || arg === '--info')) return undefined;
  return 'daemon';
}

/** Whether `dir` and, when given, `file` in it may be trusted (see the module comment). */
function trusted(dir: string, file?: string): boolean {
  const euid = process.geteuid?.() ?? 0;
  try {
    const d = fs.lstatSync(dir);
    if (!d.isDirectory() || d.uid !== euid || (d.mode & 0o022) !== 0) return false;
    if (file === undefined) return true;
    const f = fs.lstatSync(file);
    return f.isFile() && f.uid === euid && (f.mode & 0o022) === 0;
  } catch {
    return false;
  }
}

/**
 * Loads the bundle at `bundle` with the best cache there is for this process: the
 * runtime cache of its role in `dir` when present and trusted, else `buildCache`.
 * @throws Error when the bundle cannot be loaded (bundleLoader.loadBundle).
 */
function loadWithCodeCache(bundle: string, buildCache: string, argv: readonly string[], dir: string): CachedBundle {
  const role = roleOf(argv);
  if (role === undefined) return { exports: bundleLoader.loadBundle(bundle, buildCache).exports, saveRuntimeCache: undefined };
  const stat = fs.statSync(bundle);
  const install = crypto.createHash('sha256').update(bundle).digest('hex').slice(0, 12);
  const prefix = `code-cache-${role}-${install}-`;
  const runtimeCache = path.join(dir, `${prefix}${stat.size}-${Math.trunc(stat.mtimeMs)}-${stat.ino}.v8cache`);
  const haveRuntime = trusted(dir, runtimeCache);
  const loaded = bundleLoader.loadBundle(bundle, haveRuntime ? runtimeCache : buildCache);
  let saved = haveRuntime && loaded.cacheRejected !== true;
  return {
    exports: loaded.exports,
    saveRuntimeCache: () => {
      if (saved) return;
      saved = true;
      fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
      if (!trusted(dir)) throw new Error(`${dir} is not owned by uid ${process.geteuid?.() ?? 0} alone: no code cache written there`);
      const temporary = `${runtimeCache}.${process.pid}.tmp`;
      fs.writeFileSync(temporary, loaded.script.createCachedData(), { mode: 0o600 });
      fs.renameSync(temporary, runtimeCache);
      for (const name of fs.readdirSync(dir)) {
        if (name.startsWith(prefix) && name.endsWith('.v8cache') && path.join(dir, name) !== runtimeCache) fs.rmSync(path.join(dir, name), { force: true });
      }
    },
  };
}

export = { loadWithCodeCache, roleOf };
