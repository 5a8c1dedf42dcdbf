/**
 * The runtime code caches (code-cache.cts) with a real V8: which role a command line is,
 * that a manager or daemon writes its role's cache once, that the next process of that
 * role loads it (and V8 accepts it), that a cache V8 rejects is written again, and that
 * a newer bundle's cache replaces an older one's.
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

interface CodeCacheModule {
  roleOf(argv: readonly string[]): 'manager' | 'daemon' | undefined;
  loadWithCodeCache(bundle: string, buildCache: string, argv: readonly string[], dir: string): { exports: unknown; saveRuntimeCache: (() => void) | undefined };
}
interface BundleLoaderModule {
  loadBundle(file: string, cachePath?: string): { cacheRejected: boolean | undefined };
}

const require = createRequire(import.meta.url);
const codeCache = require('./code-cache.cjs') as CodeCacheModule;
const bundleLoader = require('./bundle-loader.cjs') as BundleLoaderModule;

const root = mkdtempSync(join(tmpdir(), 'tsrun-code-cache-'));
after(() => {
  rmSync(root, { recursive: true, force: true });
});

/** A small CommonJS "bundle" with a function that only runs when called. */
function writeBundle(name: string, body: string): string {
  const file = join(root, name);
  writeFileSync(file, `exports.answer = function answer(n) { let s = 0; for (let i = 0; i < n; i++) s += i * ${body}; return s; };\n`);
  return file;
}

test('roles from the command line: manager, daemon (spare or no action), none for the one-shot CLI', () => {
  assert.equal(codeCache.roleOf(['-manager', '-address', '/a']), 'manager');
  assert.equal(codeCache.roleOf(['-spare', '-address', '/a']), 'daemon');
  assert.equal(codeCache.roleOf(['-namespace', 'n', '-id', 'x', '-address', '/a']), 'daemon');
  assert.equal(codeCache.roleOf(['-namespace', 'n', '-id', 'x', 'start']), undefined);
  assert.equal(codeCache.roleOf(['-id', 'x', '-bundle', '/b', 'delete']), undefined);
  assert.equal(codeCache.roleOf(['-v']), undefined);
  assert.equal(codeCache.roleOf(['-info']), undefined);
});

test('the one-shot CLI loads the build cache and never writes one', () => {
  const dir = join(root, 'cli');
  const bundle = writeBundle('cli.cjs', '1');
  const loaded = codeCache.loadWithCodeCache(bundle, `${bundle}.v8cache`, ['-id', 'x', 'start'], dir);
  assert.equal(loaded.saveRuntimeCache, undefined);
  assert.equal((loaded.exports as { answer(n: number): number }).answer(3), 3);
});

test('a daemon writes its cache once; the next daemon loads it and V8 accepts it', () => {
  const dir = join(root, 'daemon');
  const bundle = writeBundle('daemon.cjs', '2');
  const first = codeCache.loadWithCodeCache(bundle, `${bundle}.v8cache`, ['-spare', '-address', '/a'], dir);
  assert.equal((first.exports as { answer(n: number): number }).answer(4), 12);
  first.saveRuntimeCache?.();
  const written = readdirSync(dir);
  assert.equal(written.length, 1);
  assert.match(written[0] ?? '', /^code-cache-daemon-[0-9a-f]{12}-\d+-\d+-\d+\.v8cache$/);
  first.saveRuntimeCache?.(); // once per process: nothing more
  assert.deepEqual(readdirSync(dir), written);

  const second = codeCache.loadWithCodeCache(bundle, `${bundle}.v8cache`, ['-namespace', 'n', '-address', '/a'], dir);
  assert.equal(bundleLoader.loadBundle(bundle, join(dir, written[0] ?? '')).cacheRejected, false, 'V8 accepted the runtime cache');
  second.saveRuntimeCache?.(); // it loaded a valid cache: nothing to write
  assert.deepEqual(readdirSync(dir), written);
  // The manager's role has a cache of its own.
  codeCache.loadWithCodeCache(bundle, `${bundle}.v8cache`, ['-manager', '-address', '/a'], dir).saveRuntimeCache?.();
  assert.equal(readdirSync(dir).filter((name) => name.startsWith('code-cache-manager-')).length, 1);
});

test('a cache V8 rejects is written again, and a new bundle replaces the old one\'s cache', () => {
  const dir = join(root, 'rejected');
  const bundle = writeBundle('rejected.cjs', '3');
  codeCache.loadWithCodeCache(bundle, `${bundle}.v8cache`, ['-spare'], dir).saveRuntimeCache?.();
  const [name] = readdirSync(dir);
  assert.ok(name !== undefined);
  writeFileSync(join(dir, name), 'not a V8 cache');
  const again = codeCache.loadWithCodeCache(bundle, `${bundle}.v8cache`, ['-spare'], dir);
  again.saveRuntimeCache?.();
  assert.equal(bundleLoader.loadBundle(bundle, join(dir, name)).cacheRejected, false, 'rewritten with a valid cache');

  // A rebuilt bundle (other size and mtime): its cache is written and the old one removed.
  writeFileSync(bundle, '// rebuilt\nexports.answer = () => 42;\n');
  utimesSync(bundle, new Date(), new Date(Date.now() + 5000));
  codeCache.loadWithCodeCache(bundle, `${bundle}.v8cache`, ['-spare'], dir).saveRuntimeCache?.();
  const now = readdirSync(dir);
  assert.equal(now.length, 1);
  assert.notEqual(now[0], name);
});

test('a cache in a directory others may write, or a file others may write, is not loaded', () => {
  const dir = join(root, 'untrusted');
  const bundle = writeBundle('untrusted.cjs', '4');
  codeCache.loadWithCodeCache(bundle, `${bundle}.v8cache`, ['-spare'], dir).saveRuntimeCache?.();
  const [name] = readdirSync(dir);
  assert.ok(name !== undefined);
  const file = join(dir, name);
  // Trusted: loaded, so nothing to write again (the file keeps its inode).
  const inode = statSync(file).ino;
  codeCache.loadWithCodeCache(bundle, `${bundle}.v8cache`, ['-spare'], dir).saveRuntimeCache?.();
  assert.equal(statSync(file).ino, inode);
  // Group-writable file: not loaded, so this process writes its own (a new inode).
  chmodSync(file, 0o620);
  codeCache.loadWithCodeCache(bundle, `${bundle}.v8cache`, ['-spare'], dir).saveRuntimeCache?.();
  assert.notEqual(statSync(file).ino, inode);
  assert.equal(statSync(file).mode & 0o777, 0o600);
  // World-writable directory: neither read nor written.
  chmodSync(dir, 0o777);
  const loaded = codeCache.loadWithCodeCache(bundle, `${bundle}.v8cache`, ['-spare'], dir);
  assert.throws(() => loaded.saveRuntimeCache?.(), /is not owned by uid/);
  chmodSync(dir, 0o700);
});

test('two installs (bundles at two paths) keep a cache each', () => {
  const dir = join(root, 'installs');
  const one = writeBundle('one.cjs', '5');
  const two = writeBundle('two.cjs', '5');
  codeCache.loadWithCodeCache(one, `${one}.v8cache`, ['-spare'], dir).saveRuntimeCache?.();
  codeCache.loadWithCodeCache(two, `${two}.v8cache`, ['-spare'], dir).saveRuntimeCache?.();
  assert.equal(readdirSync(dir).length, 2);
});
