// Exit statuses through pidfds, for real: every code and signal exact, nothing
// left behind, and a pidfd that outlives its process never signals anyone else.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { loadNative } from './index.js';
import type { SpawnedProcess, WaitStatus } from './index.js';
import { BUSYBOX, openFdCount, procStat, readToEnd, until, waitForExit, zombieChildren } from './testing-support.js';

const native = loadNative();
const SIGKILL = 9;
const SIGSEGV = 11;
const SIGTERM = 15;

function shell(script: string): SpawnedProcess {
  return native.spawn({ file: BUSYBOX, args: ['sh', '-c', script], env: [], fds: [-1, -1, -1] });
}

describe('pidfd exits', () => {
  test('200 exit codes and 30 signal deaths arrive exact, with no zombie and no fd left', async () => {
    const fdsBefore = openFdCount();
    const expected = new Map<number, WaitStatus>();
    const waits: Promise<[number, WaitStatus]>[] = [];
    const track = (child: SpawnedProcess, status: WaitStatus): void => {
      expected.set(child.pid, status);
      waits.push(waitForExit(native, child).then((got) => [child.pid, got]));
    };
    for (let code = 0; code < 200; code++) track(shell(`exit ${code}`), { kind: 'exited', code });
    for (let i = 0; i < 10; i++) {
      // The shell kills itself; ulimit -c 0 makes "no core dump" certain.
      track(shell('ulimit -c 0; kill -SEGV $$'), { kind: 'signaled', signal: SIGSEGV, coreDumped: false });
      for (const signal of [SIGTERM, SIGKILL]) {
        const child = native.spawn({ file: BUSYBOX, args: ['sleep', '30'], env: [], fds: [-1, -1, -1] });
        track(child, { kind: 'signaled', signal, coreDumped: false });
        native.pidfdSendSignal(child.pidfd, signal);
      }
    }
    const results = await Promise.all(waits);
    assert.equal(results.length, 230);
    for (const [pid, status] of results) assert.deepEqual(status, expected.get(pid), `pid ${pid}`);
    assert.deepEqual(zombieChildren(), []);
    assert.equal(openFdCount(), fdsBefore);
  });

  test('pidfdWait is undefined while the child runs, then the status, then ECHILD', async () => {
    const child = native.spawn({ file: BUSYBOX, args: ['sleep', '30'], env: [], fds: [-1, -1, -1] });
    assert.equal(native.pidfdWait(child.pidfd), undefined);
    native.pidfdSendSignal(child.pidfd, SIGKILL);
    assert.deepEqual(await waitForExit(native, child, true), { kind: 'signaled', signal: SIGKILL, coreDumped: false });
    assert.throws(() => native.pidfdWait(child.pidfd), { code: 'ECHILD', syscall: 'waitid', errno: -10 });
    native.close(child.pidfd);
  });

  test('after the process is reaped, its old pidfd throws ESRCH and signals nobody', async () => {
    const child = shell('exit 3');
    assert.deepEqual(await waitForExit(native, child, true), { kind: 'exited', code: 3 });
    // Even if the pid number is recycled meanwhile, the pidfd still names the dead process.
    const error = (() => {
      try {
        native.pidfdSendSignal(child.pidfd, SIGKILL);
      } catch (caught) {
        return caught as Error & { code: string; errno: number; syscall: string };
      }
      return assert.fail('pidfd_send_signal to a reaped process succeeded');
    })();
    assert.equal(error.message, 'ESRCH: no such process, pidfd_send_signal');
    assert.deepEqual([error.code, error.errno, error.syscall], ['ESRCH', -3, 'pidfd_send_signal']);
    native.close(child.pidfd);
  });

  test('signal 0 probes a live process', async () => {
    const child = native.spawn({ file: BUSYBOX, args: ['sleep', '30'], env: [], fds: [-1, -1, -1] });
    native.pidfdSendSignal(child.pidfd, 0);
    native.pidfdSendSignal(child.pidfd, SIGKILL);
    await waitForExit(native, child);
  });

  test('pidfdOpen on a process that is not our child: signals work, waiting throws ECHILD', () => {
    const pidfd = native.pidfdOpen(process.ppid);
    try {
      native.pidfdSendSignal(pidfd, 0);
      assert.throws(() => native.pidfdWait(pidfd), { code: 'ECHILD' });
    } finally {
      native.close(pidfd);
    }
  });

  test('pidfdOpen of a pid that does not exist throws ESRCH', () => {
    // pid_max is at most 2^22; a pid above it can never exist.
    assert.throws(() => native.pidfdOpen(1 << 23), { code: 'ESRCH', syscall: 'pidfd_open' });
  });

  test('pidfdOpen of a reparented grandchild tracks it: the sweep leaves it to pidfdWait', async () => {
    native.setChildSubreaper();
    const [readEnd, writeEnd] = native.pipe();
    const parent = native.spawn({
      file: BUSYBOX,
      args: ['sh', '-c', 'sleep 0.3 >/dev/null & echo $!'],
      env: [],
      fds: [-1, writeEnd, -1],
    });
    native.close(writeEnd);
    const grandchild = Number(readToEnd(readEnd).trim());
    assert.deepEqual(await waitForExit(native, parent), { kind: 'exited', code: 0 });
    await until(() => procStat(grandchild)?.ppid === process.pid, 'the grandchild to be reparented to us');
    const pidfd = native.pidfdOpen(grandchild);
    // Sweep while it runs and after it exits: it must never show up.
    const swept: number[] = [];
    await until(() => {
      swept.push(...native.reapOrphans().map((exit) => exit.pid));
      return procStat(grandchild)?.state === 'Z';
    }, 'the grandchild to exit');
    swept.push(...native.reapOrphans().map((exit) => exit.pid));
    assert.ok(!swept.includes(grandchild), 'the sweep took a tracked child');
    assert.deepEqual(native.pidfdWait(pidfd), { kind: 'exited', code: 0 });
    native.close(pidfd);
    assert.deepEqual(zombieChildren(), []);
  });

  test('argument errors are TypeErrors and RangeErrors, not syscalls on garbage', () => {
    assert.throws(() => native.pidfdWait(Number.NaN), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
    assert.throws(
      () => {
        native.pidfdSendSignal(-1, 0);
      },
      { name: 'RangeError' },
    );
    assert.throws(() => native.pidfdWait('3' as unknown as number), {
      name: 'TypeError',
      code: 'ERR_INVALID_ARG_TYPE',
    });
  });
});
