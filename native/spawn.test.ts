// spawn() for real: fd tables, environment, cwd, sessions, signal state, and
// failures that must leave neither a zombie nor an fd behind.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { loadNative } from './index.js';
import type { NativeError } from './index.js';
import {
  BUSYBOX,
  fdFlags,
  O_CLOEXEC,
  O_NONBLOCK,
  openFdCount,
  procStat,
  readToEnd,
  run,
  waitForExit,
  zombieChildren,
} from './testing-support.js';

const native = loadNative();

describe('spawn', () => {
  const scratch = mkdtempSync(join(tmpdir(), 'tsrun-native-spawn-'));
  after(() => {
    rmSync(scratch, { recursive: true, force: true });
  });

  test('maps our fds onto child fds 3, 4 and 5', async () => {
    const pipes = [native.pipe(), native.pipe(), native.pipe()];
    const child = native.spawn({
      file: BUSYBOX,
      args: ['sh', '-c', 'echo three >&3; echo four >&4; echo five >&5'],
      env: [],
      fds: [-1, -1, -1, pipes[0]![1], pipes[1]![1], pipes[2]![1]],
    });
    for (const [, writeEnd] of pipes) native.close(writeEnd);
    assert.deepEqual(
      pipes.map(([readEnd]) => readToEnd(readEnd)),
      ['three\n', 'four\n', 'five\n'],
    );
    assert.deepEqual(await waitForExit(native, child), { kind: 'exited', code: 0 });
  });

  test('swaps overlapping fds: child 50 <- our 51 and child 51 <- our 50', async () => {
    const [readA, writeA] = native.pipe();
    const [readB, writeB] = native.pipe();
    native.dup2(writeA, 50);
    native.dup2(writeB, 51);
    native.close(writeA);
    native.close(writeB);
    const fds: number[] = new Array<number>(52).fill(-1);
    fds[50] = 51;
    fds[51] = 50;
    const child = native.spawn({ file: BUSYBOX, args: ['sh', '-c', 'echo to-50 >&50; echo to-51 >&51'], env: [], fds });
    native.close(50);
    native.close(51);
    assert.equal(readToEnd(readA), 'to-51\n', 'our fd 50 (pipe A) became child fd 51');
    assert.equal(readToEnd(readB), 'to-50\n', 'our fd 51 (pipe B) became child fd 50');
    assert.deepEqual(await waitForExit(native, child), { kind: 'exited', code: 0 });
  });

  test('passes no fd that is not listed, not even one without O_CLOEXEC', async () => {
    // dup2 makes fd 60 inheritable: only close_range in the child keeps it out.
    const [readEnd, writeEnd] = native.pipe();
    native.dup2(writeEnd, 60);
    try {
      const { stdout, status } = await run(native, [BUSYBOX, 'ls', '/proc/self/fd']);
      assert.deepEqual(status, { kind: 'exited', code: 0 });
      // 0-2 as given, and the one ls opened to read the directory.
      assert.deepEqual(stdout.trim().split(/\s+/), ['0', '1', '2', '3']);
    } finally {
      native.close(60);
      native.close(writeEnd);
      native.close(readEnd);
    }
  });

  test('gives exactly the environment it was given', async () => {
    const env = ['A=1', 'B=two words', 'EMPTY=', 'UNICODE=h\u00e9'];
    const { stdout } = await run(native, [BUSYBOX, 'env'], { env });
    assert.deepEqual(stdout.split('\n').filter(Boolean), env);
  });

  test('runs in cwd', async () => {
    const { stdout } = await run(native, [BUSYBOX, 'pwd'], { cwd: scratch });
    assert.equal(stdout, `${scratch}\n`);
  });

  test('setsid starts a new session, setpgid a new group, neither keeps ours', async () => {
    const ours = procStat(process.pid)!;
    for (const mode of ['setsid', 'setpgid', 'none'] as const) {
      const child = native.spawn({
        file: BUSYBOX,
        args: ['sleep', '10'],
        env: [],
        fds: [-1, -1, -1],
        ...(mode === 'setsid' ? { setsid: true } : mode === 'setpgid' ? { setpgid: true } : {}),
      });
      try {
        const stat = procStat(child.pid)!;
        assert.equal(stat.ppid, process.pid);
        if (mode === 'setsid') assert.deepEqual([stat.session, stat.pgrp], [child.pid, child.pid]);
        if (mode === 'setpgid') assert.deepEqual([stat.session, stat.pgrp], [ours.session, child.pid]);
        if (mode === 'none') assert.deepEqual([stat.session, stat.pgrp], [ours.session, ours.pgrp]);
      } finally {
        native.pidfdSendSignal(child.pidfd, 9);
      }
      assert.deepEqual(await waitForExit(native, child), { kind: 'signaled', signal: 9, coreDumped: false });
    }
  });

  test('starts with no signal blocked or ignored (Node ignores SIGPIPE)', async () => {
    const { stdout } = await run(native, [BUSYBOX, 'grep', '-E', '^Sig(Blk|Ign)', '/proc/self/status']);
    assert.deepEqual(stdout.split('\n').filter(Boolean), ['SigBlk:\t0000000000000000', 'SigIgn:\t0000000000000000']);
  });

  test('a missing program throws ENOENT from execve and leaves no zombie and no fd', () => {
    const fds = openFdCount();
    const error = captureError(() =>
      native.spawn({ file: '/nonexistent/program', args: ['program'], env: [], fds: [-1, -1, -1] }),
    );
    assert.equal(error.message, "ENOENT: no such file or directory, execve '/nonexistent/program'");
    assert.deepEqual(
      [error.code, error.errno, error.syscall, error.path],
      ['ENOENT', -2, 'execve', '/nonexistent/program'],
    );
    assert.deepEqual(zombieChildren(), []);
    assert.equal(openFdCount(), fds);
  });

  test('a missing cwd throws ENOENT from chdir with the path, and leaves nothing behind', () => {
    const fds = openFdCount();
    const missing = join(scratch, 'missing');
    const error = captureError(() =>
      native.spawn({ file: BUSYBOX, args: ['true'], env: [], cwd: missing, fds: [-1, -1, -1] }),
    );
    assert.deepEqual([error.code, error.syscall, error.path], ['ENOENT', 'chdir', missing]);
    assert.deepEqual(zombieChildren(), []);
    assert.equal(openFdCount(), fds);
  });

  test('a bad fd in the map throws EBADF', () => {
    const error = captureError(() => native.spawn({ file: BUSYBOX, args: ['true'], env: [], fds: [-1, 999_999] }));
    assert.deepEqual([error.code, error.syscall], ['EBADF', 'fcntl']);
    assert.deepEqual(zombieChildren(), []);
  });

  test('refuses a relative file and strings with NUL bytes before starting anything', () => {
    assert.throws(() => native.spawn({ file: 'busybox', args: ['true'], env: [], fds: [] }), { name: 'TypeError' });
    assert.throws(() => native.spawn({ file: BUSYBOX, args: ['true', 'a\0b'], env: [], fds: [] }), {
      code: 'ERR_INVALID_ARG_VALUE',
    });
    assert.throws(() => native.spawn({ file: BUSYBOX, args: [], env: [], fds: [] }), { name: 'TypeError' });
  });

  test('returns a non-blocking, close-on-exec pidfd for the child', async () => {
    const child = native.spawn({ file: BUSYBOX, args: ['true'], env: [], fds: [] });
    const flags = fdFlags(child.pidfd);
    assert.equal(flags & O_NONBLOCK, O_NONBLOCK);
    assert.equal(flags & O_CLOEXEC, O_CLOEXEC);
    assert.deepEqual(await waitForExit(native, child), { kind: 'exited', code: 0 });
  });

  test('stdin from a pipe reaches the child', async () => {
    const [readEnd, writeEnd] = native.pipe();
    const [outRead, outWrite] = native.pipe();
    const child = native.spawn({ file: BUSYBOX, args: ['tr', 'a-z', 'A-Z'], env: [], fds: [readEnd, outWrite, -1] });
    native.close(readEnd);
    native.close(outWrite);
    writeSync(writeEnd, 'shout\n');
    native.close(writeEnd);
    assert.equal(readToEnd(outRead), 'SHOUT\n');
    assert.deepEqual(await waitForExit(native, child), { kind: 'exited', code: 0 });
  });
});

function captureError(fn: () => unknown): NativeError {
  try {
    fn();
  } catch (error) {
    return error as NativeError;
  }
  assert.fail('expected a throw');
}
