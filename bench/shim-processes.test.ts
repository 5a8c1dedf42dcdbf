import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { cpuTicks, parseSmapsRollup, processMemory, roleOf, shimOf } from './shim-processes.js';

test('tells the two shims apart from their command lines', () => {
  assert.equal(shimOf(['/usr/bin/containerd-shim-runc-v2', '-namespace', 'n', '-id', 'x', '-address', '/a']), 'runcV2');
  assert.equal(shimOf(['/usr/bin/node', '/work/main/build/shim/entry.cjs', '-namespace', 'n', '-id', 'x']), 'tsrun');
  assert.equal(shimOf(['/usr/bin/node', '/work/main/build/shim/main.js', '-namespace', 'n', '-id', 'x']), 'tsrun');
  assert.equal(shimOf(['/usr/bin/node', '/work/main/bin/containerd-shim-tsrun-v1', '-id', 'x', 'start']), 'tsrun');
  assert.equal(shimOf(['sleep', '1000000']), undefined);
  assert.equal(shimOf(['runc', '--root', '/run/containerd/runc/n', 'create']), undefined);
  assert.equal(shimOf([]), undefined);
});

test('roles: actions, manager, spares, daemons', () => {
  assert.equal(roleOf(['/x/bin/containerd-shim-tsrun-v1', '-namespace', 'n', '-address', '/a', '-id', 'x', 'start']), 'action');
  assert.equal(roleOf(['/usr/bin/containerd-shim-runc-v2', '-id', 'x', '-bundle', '/b', 'delete']), 'action');
  assert.equal(roleOf(['/usr/bin/node', '/x/build/shim/entry.cjs', '-manager', '-address', '/a']), 'manager');
  assert.equal(roleOf(['/usr/bin/node', '/x/build/shim/entry.cjs', '-spare', '-address', '/a']), 'spare');
  assert.equal(roleOf(['/usr/bin/node', '/x/build/shim/main.js', '-spare', '-address', '/a']), 'spare');
  assert.equal(roleOf(['/usr/bin/node', '/x/build/shim/main.js', '-namespace', 'n', '-id', 'x', '-address', '/a']), 'daemon');
  assert.equal(roleOf(['/usr/bin/containerd-shim-runc-v2', '-namespace', 'n', '-id', 'x', '-address', '/a']), 'daemon');
  assert.equal(shimOf(['containerd-shim-tsrun-v1', '-id', 'x', 'start']), 'tsrun');
});

test('parses Pss, Rss and the private pages of smaps_rollup', () => {
  const text = ['5581c79be000-7ffc15e70000 ---p 00000000 00:00 0  [rollup]', 'Rss:  1672 kB', 'Pss:  239 kB', 'Pss_Dirty: 112 kB', 'Shared_Clean: 1520 kB', 'Private_Clean: 40 kB', 'Private_Dirty: 112 kB'].join('\n');
  assert.deepEqual(parseSmapsRollup(text), { pssKiB: 239, ussKiB: 152, rssKiB: 1672 });
  assert.throws(() => parseSmapsRollup('Rss: 1 kB\n'), /no Pss line/);
});

test('reads this process, and nothing for a pid that does not exist', async () => {
  const own = await processMemory(process.pid);
  assert.ok(own !== undefined && own.pssKiB > 0 && own.pssKiB <= own.rssKiB);
  // pid_max is at most 2^22: this pid cannot exist.
  assert.equal(await processMemory(2 ** 23), undefined);
  assert.ok(readFileSync('/proc/self/smaps_rollup', 'utf8').includes('Pss:'));
});

test('CPU ticks grow with work, and are 0 for a pid that does not exist', async () => {
  const before = await cpuTicks(process.pid);
  const until = performance.now() + 60;
  while (performance.now() < until) {
    // Burn CPU: at 100 ticks per second, 60 ms is several ticks.
  }
  assert.ok((await cpuTicks(process.pid)) > before);
  assert.equal(await cpuTicks(2 ** 23), 0);
});
