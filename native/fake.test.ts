// The fake facade: it must type-check as a Native (the contract test), and behave
// like the addon where core/ relies on it: exactly-once exits through pidfdWait or
// the sweep, readiness on later turns, errno-shaped errors, fd accounting.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createFakeNative, nativeError } from './fake.js';
import type { FakeNative } from './fake.js';
import { loadNative } from './index.js';
import type { Native, NativeError, WaitStatus } from './index.js';

const fakeIsANative: Native = createFakeNative();

function turns(count: number): Promise<void> {
  return new Promise((resolve) => {
    const step = (left: number): void => {
      if (left === 0) resolve();
      else
        setImmediate(() => {
          step(left - 1);
        });
    };
    step(count);
  });
}

const spawnTrue = (fake: Native): { pid: number; pidfd: number } =>
  fake.spawn({ file: '/bin/true', args: ['true'], env: [], fds: [-1, -1, -1] });

describe('createFakeNative', () => {
  test('is a Native', () => {
    assert.equal(typeof fakeIsANative.spawn, 'function');
  });

  test('a spawned process exits when told: the watcher fires on a later turn, pidfdWait gives the status once', async () => {
    const fake = createFakeNative();
    const child = spawnTrue(fake);
    const statuses: (WaitStatus | undefined)[] = [];
    const watcher = fake.watchReadable(child.pidfd, () => {
      statuses.push(fake.pidfdWait(child.pidfd));
      watcher.close();
    });
    await turns(3);
    assert.deepEqual(statuses, [], 'running: not readable');
    assert.equal(fake.pidfdWait(child.pidfd), undefined);
    fake.exit(child.pid, { kind: 'exited', code: 3 });
    assert.deepEqual(statuses, [], 'never inside exit()');
    await turns(3);
    assert.deepEqual(statuses, [{ kind: 'exited', code: 3 }]);
    assert.throws(() => fake.pidfdWait(child.pidfd), { code: 'ECHILD' });
    assert.deepEqual(fake.reapOrphans(), [], 'the sweep never takes a tracked child');
    fake.close(child.pidfd);
    assert.deepEqual(fake.openFds(), []);
  });

  test('untracked children go to reapOrphans; pidfdOpen tracks a child; strangers cannot be waited for', () => {
    let sigchld = 0;
    const fake = createFakeNative({ onChildExit: () => sigchld++ });
    const init = fake.addProcess({ child: true }); // reparented container init, pid file not read yet
    const orphan = fake.addProcess({ child: true });
    const stranger = fake.addProcess();
    const initPidfd = fake.pidfdOpen(init.pid);
    assert.ok(fake.isTracked(init.pid));
    fake.exit(init.pid, { kind: 'exited', code: 0 });
    fake.exit(orphan.pid, { kind: 'signaled', signal: 9, coreDumped: false });
    assert.deepEqual(fake.reapOrphans(), [
      { pid: orphan.pid, status: { kind: 'signaled', signal: 9, coreDumped: false } },
    ]);
    assert.deepEqual(fake.reapOrphans(), []);
    assert.deepEqual(fake.pidfdWait(initPidfd), { kind: 'exited', code: 0 });
    const strangerPidfd = fake.pidfdOpen(stranger.pid);
    assert.throws(() => fake.pidfdWait(strangerPidfd), { code: 'ECHILD' });
    assert.throws(() => fake.pidfdOpen(orphan.pid), { code: 'ESRCH' });
    return turns(2).then(() => {
      assert.equal(sigchld, 2);
    });
  });

  test('signals: default kill, ESRCH once reaped, or scripted by onSignal', () => {
    const fake = createFakeNative({
      onSignal: (process, signal, self) => {
        if (signal === 15) self.exit(process.pid, { kind: 'exited', code: 143 });
      },
    });
    const child = spawnTrue(fake);
    fake.pidfdSendSignal(child.pidfd, 0);
    fake.pidfdSendSignal(child.pidfd, 15);
    assert.deepEqual(fake.processes.get(child.pid)?.signals, [0, 15]);
    assert.deepEqual(fake.pidfdWait(child.pidfd), { kind: 'exited', code: 143 });
    assert.throws(
      () => {
        fake.pidfdSendSignal(child.pidfd, 9);
      },
      { code: 'ESRCH', errno: -3 },
    );

    const plain = createFakeNative();
    const other = spawnTrue(plain);
    plain.pidfdSendSignal(other.pidfd, 9);
    assert.deepEqual(plain.pidfdWait(other.pidfd), { kind: 'signaled', signal: 9, coreDumped: false });
  });

  test('onSpawn can fail a spawn like a failed exec: nothing left behind', () => {
    const fake = createFakeNative({
      onSpawn: (process) => {
        if (process.options?.file === '/missing') throw nativeError('ENOENT', 'execve', '/missing');
      },
    });
    assert.throws(() => fake.spawn({ file: '/missing', args: ['missing'], env: [], fds: [] }), {
      message: "ENOENT: no such file or directory, execve '/missing'",
      code: 'ENOENT',
      errno: -2,
      path: '/missing',
    });
    assert.deepEqual(fake.openFds(), []);
    assert.throws(() => fake.spawn({ file: '/bin/true', args: ['true'], env: [], fds: [12345] }), { code: 'EBADF' });
  });

  test('failNext queues errors for one method', () => {
    const fake: FakeNative = createFakeNative();
    fake.failNext('eventfd', nativeError('EMFILE', 'eventfd'));
    assert.throws(() => fake.eventfd(), { code: 'EMFILE' });
    fake.close(fake.eventfd());
    assert.deepEqual(
      fake.calls.map((call) => call.method),
      ['eventfd', 'eventfd', 'close'],
    );
  });

  test('socket pairs carry bytes and fds; received fds are new numbers; end of stream is empty', async () => {
    const fake = createFakeNative();
    const [a, b] = fake.socketPair();
    assert.throws(() => fake.receiveFds(b, 16, 4), { code: 'EAGAIN' });
    let readable = 0;
    const watcher = fake.watchReadable(b, () => readable++);
    const eventfd = fake.eventfd();
    fake.sendFds(a, new TextEncoder().encode('hello'), [eventfd]);
    await turns(2);
    assert.ok(readable > 0);
    const message = fake.receiveFds(b, 16, 4);
    assert.equal(new TextDecoder().decode(message.data), 'hello');
    assert.equal(message.fds.length, 1);
    assert.notEqual(message.fds[0], eventfd);
    watcher.close();
    fake.close(a);
    assert.equal(fake.receiveFds(b, 16, 4).data.length, 0);
    for (const fd of [b, eventfd, ...message.fds]) fake.close(fd);
    assert.deepEqual(fake.openFds(), []);
  });

  test('pty sizes, mounts, listening paths and eventfd readiness', async () => {
    const fake = createFakeNative();
    const pty = fake.openPty();
    fake.setWindowSize(pty.master, { rows: 10, cols: 20 });
    assert.deepEqual(fake.getWindowSize(pty.slave), { rows: 10, cols: 20 });
    fake.mount('tmpfs', '/t', 'tmpfs', 0, '');
    assert.ok(fake.mounts.has('/t'));
    fake.umount2('/t', 0);
    assert.throws(
      () => {
        fake.umount2('/t', 0);
      },
      { code: 'EINVAL' },
    );
    const listener = fake.listenUnix('/run/s.sock', 16);
    fake.close(listener);
    assert.throws(() => fake.listenUnix('/run/s.sock', 16), { code: 'EADDRINUSE' });
    fake.socketPaths.delete('/run/s.sock');
    fake.close(fake.listenUnix('/run/s.sock', 16));
    const eventfd = fake.eventfd();
    let fired = 0;
    const watcher = fake.watchReadable(eventfd, () => fired++);
    fake.setReadable(eventfd, true);
    await turns(3);
    watcher.close();
    assert.ok(fired >= 2, 'level-triggered');
  });

  test('pendingBytes: pipe ends and the fds of one fifo path share a buffer; other kinds fail as the kernel does', () => {
    const fake = createFakeNative();
    const [readEnd, writeEnd] = fake.pipe();
    fake.setPendingBytes(writeEnd, 12);
    assert.deepEqual([fake.pendingBytes(readEnd), fake.pendingBytes(writeEnd)], [12, 12]);
    const ours = fake.openFifo('/run/out', 'read');
    const client = fake.openFifo('/run/out', 'read');
    const other = fake.openFifo('/run/err', 'read');
    fake.setPendingBytes(client, 300);
    assert.deepEqual([fake.pendingBytes(ours), fake.pendingBytes(other)], [300, 0]);
    const [a, b] = fake.socketPair();
    fake.sendFds(a, new Uint8Array(5), []);
    assert.equal(fake.pendingBytes(b), 5);
    const eventfd = fake.eventfd();
    assert.throws(() => fake.pendingBytes(eventfd), { code: 'ENOTTY', syscall: 'ioctl' });
    assert.throws(() => {
      fake.setPendingBytes(eventfd, 1);
    }, /no pipe buffer/);
    for (const fd of [readEnd, writeEnd, ours, client, other, a, b, eventfd]) fake.close(fd);
    assert.throws(() => fake.pendingBytes(eventfd), { code: 'EBADF', syscall: 'ioctl' });
    assert.deepEqual(fake.openFds(), []);
  });

  test("nativeError has the real addon's shape", () => {
    let real: NativeError | undefined;
    try {
      loadNative().pidfdSendSignal(1 << 29, 0);
    } catch (error) {
      real = error as NativeError;
    }
    const fake = nativeError('EBADF', 'pidfd_send_signal');
    assert.ok(real !== undefined);
    assert.deepEqual(
      { message: fake.message, code: fake.code, errno: fake.errno, syscall: fake.syscall },
      { message: real.message, code: real.code, errno: real.errno, syscall: real.syscall },
    );
    assert.equal(nativeError('ECHILD', 'waitid').message, 'ECHILD: no child processes, waitid');
  });
});
