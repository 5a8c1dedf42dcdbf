import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { afterEach, describe, test } from 'node:test';
import type { FakeNative } from '../native/fake.js';
import { createFakeNative } from '../native/fake.js';
import type { WaitStatus } from '../native/facade.js';
import type { ProcessMonitor } from './process-monitor.js';
import { UNCLAIMED_EXITS_MAX_ENTRIES, UNKNOWN_EXIT, createProcessMonitor, exitStatusOf } from './process-monitor.js';
import { createTestLogger } from './test-logger.js';

const SPAWN = { file: '/bin/true', args: ['true'], env: [], fds: [-1, -1, -1] } as const;

/** A fake whose child exits raise SIGCHLD, as the kernel would. */
function fakeWithSigchld(): FakeNative {
  return createFakeNative({
    onChildExit: () => {
      process.emit('SIGCHLD', 'SIGCHLD');
    },
  });
}

const turn = (): Promise<void> =>
  new Promise((resolve) => {
    setImmediate(resolve);
  });

async function settled<T>(promise: Promise<T>): Promise<{ value: T } | 'pending'> {
  let result: { value: T } | 'pending' = 'pending';
  void promise.then((value) => {
    result = { value };
  });
  for (let i = 0; i < 5; i++) await turn();
  return result;
}

describe('process monitor (fake native)', () => {
  let monitors: ProcessMonitor[] = [];
  const make = (native: FakeNative): ProcessMonitor => {
    const m = createProcessMonitor(native, createTestLogger());
    monitors.push(m);
    return m;
  };
  afterEach(() => {
    for (const m of monitors) m.close();
    monitors = [];
  });

  test('exit status: the code, or 128 + signal', () => {
    assert.equal(exitStatusOf({ kind: 'exited', code: 0 }), 0);
    assert.equal(exitStatusOf({ kind: 'exited', code: 1 }), 1);
    assert.equal(exitStatusOf({ kind: 'exited', code: 255 }), 255);
    assert.equal(exitStatusOf({ kind: 'signaled', signal: 15, coreDumped: false }), 143);
    assert.equal(exitStatusOf({ kind: 'signaled', signal: 9, coreDumped: true }), 137);
  });

  test('a spawned child: its exit resolves once, through pidfdWait, and its pidfd is closed', async () => {
    const native = fakeWithSigchld();
    const monitor = make(native);
    const child = monitor.spawn(SPAWN);
    assert.ok(native.openFds().includes(child.pidfd));
    assert.equal(await settled(child.exited), 'pending');
    native.exit(child.pid, { kind: 'exited', code: 7 });
    assert.deepEqual(await child.exited, { kind: 'exited', code: 7 });
    assert.ok(!native.openFds().includes(child.pidfd), 'pidfd closed after the reap');
    assert.equal(native.processes.get(child.pid)?.state, 'reaped');
    const sweeps = native.calls.filter((c) => c.method === 'reapOrphans').length;
    assert.ok(sweeps >= 1, 'SIGCHLD ran the orphan sweep');
  });

  test('a child that exited before the watcher existed is still delivered', async () => {
    const native = createFakeNative({
      onSpawn: (p, fake) => {
        fake.exit(p.pid, { kind: 'exited', code: 3 });
      },
    });
    const child = make(native).spawn(SPAWN);
    assert.deepEqual(await child.exited, { kind: 'exited', code: 3 });
  });

  test('early exit: an untracked child swept before its pid was known delivers its real status on adopt', async () => {
    const native = fakeWithSigchld();
    const monitor = make(native);
    const startedAt = performance.now();
    const init = native.addProcess({ child: true });
    native.exit(init.pid, { kind: 'signaled', signal: 9, coreDumped: false });
    await turn();
    await turn();
    assert.equal(native.processes.get(init.pid)?.state, 'reaped', 'the sweep reaped it');
    const adopted = monitor.adopt(init.pid, { startedAfter: startedAt });
    assert.equal(adopted.pidfd, -1);
    assert.deepEqual(await adopted.exited, { kind: 'signaled', signal: 9, coreDumped: false });
    // Claimed once: a second adopt of the same pid no longer finds it.
    assert.deepEqual(await monitor.adopt(init.pid).exited, UNKNOWN_EXIT);
  });

  test('an adopted running child is tracked: the sweep never takes its status', async () => {
    const native = fakeWithSigchld();
    const monitor = make(native);
    const init = native.addProcess({ child: true });
    const adopted = monitor.adopt(init.pid);
    assert.ok(native.isTracked(init.pid));
    native.exit(init.pid, { kind: 'exited', code: 0 });
    process.emit('SIGCHLD', 'SIGCHLD');
    assert.deepEqual(await adopted.exited, { kind: 'exited', code: 0 });
  });

  test('pid reuse: an unclaimed exit older than the process that reported the pid is not delivered', async () => {
    const native = fakeWithSigchld();
    const monitor = make(native);
    const old = native.addProcess({ child: true });
    native.exit(old.pid, { kind: 'exited', code: 99 });
    await turn();
    await turn();
    const startedAt = performance.now();
    native.addProcess({ pid: old.pid, child: true }); // the pid, recycled
    const adopted = monitor.adopt(old.pid, { startedAfter: startedAt });
    assert.equal(await settled(adopted.exited), 'pending', 'the live process is watched');
    native.exit(old.pid, { kind: 'exited', code: 4 });
    assert.deepEqual(await adopted.exited, { kind: 'exited', code: 4 });
  });

  test('a process that is not our child: exit known by pidfd readability only, reported as 255', async () => {
    const native = fakeWithSigchld();
    const logger = createTestLogger();
    const monitor = createProcessMonitor(native, logger);
    monitors.push(monitor);
    const stranger = native.addProcess({ child: false });
    const adopted = monitor.adopt(stranger.pid);
    assert.equal(await settled(adopted.exited), 'pending', 'ECHILD while it runs is not an exit');
    native.exit(stranger.pid, { kind: 'exited', code: 0 });
    assert.deepEqual(await adopted.exited, UNKNOWN_EXIT);
    assert.ok(logger.entries.some((e) => e.level === 'warn' && e.msg?.includes('not our child') === true));
  });

  test('adopting a pid that is gone without a recorded exit reports 255 and warns', async () => {
    const native = fakeWithSigchld();
    const logger = createTestLogger();
    const monitor = createProcessMonitor(native, logger);
    monitors.push(monitor);
    const adopted = monitor.adopt(31337);
    assert.deepEqual(await adopted.exited, UNKNOWN_EXIT);
    assert.ok(logger.entries.some((e) => e.level === 'warn'));
  });

  test('the unclaimed table is bounded: the oldest exits are evicted first', async () => {
    const native = fakeWithSigchld();
    const monitor = make(native);
    const pids: number[] = [];
    for (let i = 0; i < UNCLAIMED_EXITS_MAX_ENTRIES + 5; i++) {
      const p = native.addProcess({ child: true });
      pids.push(p.pid);
      native.exit(p.pid, { kind: 'exited', code: i % 256 });
    }
    await turn();
    await turn();
    const first = pids[0]!;
    const last = pids[pids.length - 1]!;
    assert.deepEqual(await monitor.adopt(first).exited, UNKNOWN_EXIT, 'evicted');
    assert.deepEqual(await monitor.adopt(last).exited, { kind: 'exited', code: (pids.length - 1) % 256 });
  });

  test('two monitors on one native share one sweep: neither loses the other one\'s early exit', async () => {
    const native = fakeWithSigchld();
    const a = make(native);
    const b = make(native);
    const p = native.addProcess({ child: true });
    native.exit(p.pid, { kind: 'exited', code: 12 });
    await turn();
    await turn();
    assert.deepEqual(await b.adopt(p.pid).exited, { kind: 'exited', code: 12 });
    a.close();
    const q = native.addProcess({ child: true });
    native.exit(q.pid, { kind: 'exited', code: 13 });
    await turn();
    await turn();
    assert.deepEqual(await b.adopt(q.pid).exited, { kind: 'exited', code: 13 }, 'the sweep outlives the first monitor');
  });

  test('close releases every pidfd and watcher, and stops listening for SIGCHLD', async () => {
    const native = fakeWithSigchld();
    const before = process.listenerCount('SIGCHLD');
    const monitor = createProcessMonitor(native, createTestLogger());
    assert.equal(process.listenerCount('SIGCHLD'), before + 1);
    const children = [monitor.spawn(SPAWN), monitor.adopt(native.addProcess({ child: true }).pid)];
    monitor.close();
    monitor.close();
    assert.deepEqual(native.openFds(), []);
    assert.equal(process.listenerCount('SIGCHLD'), before);
    assert.throws(() => monitor.spawn(SPAWN), /closed/);
    const statuses: (WaitStatus | undefined)[] = [];
    for (const c of children) {
      const s = await settled(c.exited);
      statuses.push(s === 'pending' ? undefined : s.value);
    }
    assert.deepEqual(statuses, [undefined, undefined], 'pending exits stay pending');
  });
});
