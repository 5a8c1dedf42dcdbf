// The subreaper sweep for real: reparented grandchildren are reaped, tracked
// children never are, and SIGCHLD reaches Node so the caller knows when to sweep.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { loadNative } from './index.js';
import type { ReapedExit, SpawnedProcess, WaitStatus } from './index.js';
import { BUSYBOX, openFdCount, procStat, readToEnd, until, waitForExit, zombieChildren } from './testing-support.js';

const native = loadNative();

function shell(script: string, stdout = -1): SpawnedProcess {
  return native.spawn({ file: BUSYBOX, args: ['sh', '-c', script], env: [], fds: [-1, stdout, -1] });
}

// A shell that prints the pid of a background subshell and exits 0 at once. The
// subshell outlives it for sure (it polls until the shell is gone: had it exited
// first, the shell could reap it itself), so it is orphaned to us, then exits 0.
const LEAVE_ORPHAN = '( while kill -0 $$ 2>/dev/null; do usleep 1000; done ) >/dev/null & echo $!';

describe('reapOrphans', () => {
  let sigchld = 0;
  const onSigchld = (): void => {
    sigchld++;
  };
  before(() => {
    native.setChildSubreaper();
    process.on('SIGCHLD', onSigchld);
  });
  after(() => {
    process.off('SIGCHLD', onSigchld);
  });

  test('reaps a grandchild orphaned to the subreaper, told by SIGCHLD', async () => {
    // Sweeps run only from process.on('SIGCHLD'): this also proves Node delivers it.
    const orphans: ReapedExit[] = [];
    const signalsBefore = sigchld;
    const sweep = (): void => {
      orphans.push(...native.reapOrphans());
    };
    process.on('SIGCHLD', sweep);
    try {
      const [readEnd, writeEnd] = native.pipe();
      const parent = shell(LEAVE_ORPHAN, writeEnd);
      native.close(writeEnd);
      const grandchild = Number(readToEnd(readEnd).trim());
      assert.deepEqual(await waitForExit(native, parent), { kind: 'exited', code: 0 });
      await until(() => orphans.length > 0, 'the orphan to be reaped on SIGCHLD');
      assert.ok(sigchld > signalsBefore, 'process.on("SIGCHLD") fired in Node');
      assert.deepEqual(orphans, [{ pid: grandchild, status: { kind: 'exited', code: 0 } }]);
      assert.deepEqual(zombieChildren(), []);
    } finally {
      process.off('SIGCHLD', sweep);
    }
  });

  test('a tracked zombie at the head of the children list hides nothing and is not taken', async () => {
    // The tracked child exits first and is left unwaited, so waitid(P_ALL) sees it first.
    const tracked = shell('exit 5');
    await until(() => procStat(tracked.pid)?.state === 'Z', 'the tracked child to be a zombie');
    const [readEnd, writeEnd] = native.pipe();
    const parent = shell(LEAVE_ORPHAN, writeEnd);
    native.close(writeEnd);
    const orphan = Number(readToEnd(readEnd).trim());
    assert.deepEqual(await waitForExit(native, parent), { kind: 'exited', code: 0 });
    await until(() => procStat(orphan)?.state === 'Z', 'the orphan to exit');

    assert.deepEqual(native.reapOrphans(), [{ pid: orphan, status: { kind: 'exited', code: 0 } }]);
    assert.equal(procStat(tracked.pid)?.state, 'Z', 'the tracked zombie is still there');
    assert.deepEqual(native.reapOrphans(), []);
    assert.deepEqual(native.pidfdWait(tracked.pidfd), { kind: 'exited', code: 5 });
    native.close(tracked.pidfd);
    assert.deepEqual(zombieChildren(), []);
  });

  test('racing a tight sweep loop: every tracked status arrives exactly once, every orphan is reaped', async () => {
    const fdsBefore = openFdCount();
    const trackedCount = 150;
    const trackedPids = new Set<number>();
    const statuses = new Map<number, WaitStatus[]>();
    const expected = new Map<number, WaitStatus>();
    const orphans: ReapedExit[] = [];

    let sweeping = true;
    const sweep = (): void => {
      orphans.push(...native.reapOrphans());
    };
    const loop = (): void => {
      if (!sweeping) return;
      sweep();
      setImmediate(loop);
    };
    process.on('SIGCHLD', sweep);
    setImmediate(loop);

    const [readEnd, writeEnd] = native.pipe();
    const waits: Promise<void>[] = [];
    const track = (child: SpawnedProcess, status: WaitStatus): void => {
      trackedPids.add(child.pid);
      expected.set(child.pid, status);
      // Not waitForExit: record every status pidfdWait ever returns, to catch duplicates.
      waits.push(
        new Promise((resolve, reject) => {
          const watcher = native.watchReadable(child.pidfd, () => {
            try {
              const status = native.pidfdWait(child.pidfd);
              if (status === undefined) return;
              statuses.set(child.pid, [...(statuses.get(child.pid) ?? []), status]);
              watcher.close();
              native.close(child.pidfd);
              resolve();
            } catch (error) {
              reject(error instanceof Error ? error : new Error(String(error)));
            }
          });
        }),
      );
    };
    try {
      for (let i = 0; i < trackedCount; i++) {
        track(shell(`exit ${i % 256}`), { kind: 'exited', code: i % 256 });
        if (i % 4 === 0) {
          // A producer: tracked itself, it leaves an orphan that exits soon after.
          track(shell(`${LEAVE_ORPHAN}; exit ${(i + 1) % 256}`, writeEnd), { kind: 'exited', code: (i + 1) % 256 });
        }
        if (i % 8 === 0) await new Promise((resolve) => setImmediate(resolve));
      }
    } finally {
      native.close(writeEnd);
    }
    const orphanPids = readToEnd(readEnd).split('\n').filter(Boolean).map(Number);
    assert.equal(orphanPids.length, Math.ceil(trackedCount / 4));
    try {
      await Promise.all(waits);
      await until(() => orphans.length >= orphanPids.length, 'every orphan to be reaped', 10_000);
    } finally {
      sweeping = false;
      process.off('SIGCHLD', sweep);
    }

    for (const [pid, got] of statuses) assert.deepEqual(got, [expected.get(pid)], `pid ${pid} got exactly its status`);
    assert.equal(statuses.size, trackedPids.size);
    assert.deepEqual(
      orphans.map((exit) => exit.pid).sort((a, b) => a - b),
      [...orphanPids].sort((a, b) => a - b),
    );
    for (const exit of orphans) assert.deepEqual(exit.status, { kind: 'exited', code: 0 });
    assert.ok(!orphans.some((exit) => trackedPids.has(exit.pid)), 'the sweep took a tracked child');
    assert.deepEqual(zombieChildren(), []);
    assert.equal(openFdCount(), fdsBefore);
  });
});
