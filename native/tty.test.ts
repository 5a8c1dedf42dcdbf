// Pseudo-terminals for real: both ends' flags, the window size set on one end
// read back on the other, and seen by a program running on the terminal.
import assert from 'node:assert/strict';
import { readlinkSync, readSync } from 'node:fs';
import { describe, test } from 'node:test';
import { loadNative } from './index.js';
import { BUSYBOX, fdFlags, O_CLOEXEC, O_NONBLOCK, openFdCount, waitForExit } from './testing-support.js';

const native = loadNative();

describe('pty', () => {
  test('openPty gives a non-blocking master and a blocking slave, both close-on-exec', () => {
    const fdsBefore = openFdCount();
    const pty = native.openPty();
    try {
      assert.match(pty.slavePath, /^\/dev\/pts\/\d+$/);
      assert.equal(readlinkSync(`/proc/self/fd/${pty.slave}`), pty.slavePath);
      assert.equal(fdFlags(pty.master) & (O_CLOEXEC | O_NONBLOCK), O_CLOEXEC | O_NONBLOCK);
      assert.equal(fdFlags(pty.slave) & (O_CLOEXEC | O_NONBLOCK), O_CLOEXEC);
    } finally {
      native.close(pty.master);
      native.close(pty.slave);
    }
    assert.equal(openFdCount(), fdsBefore);
  });

  test('a window size set on the master reads back on the slave, and a program on the terminal sees it', async () => {
    const pty = native.openPty();
    try {
      native.setWindowSize(pty.master, { rows: 40, cols: 120 });
      assert.deepEqual(native.getWindowSize(pty.slave), { rows: 40, cols: 120 });
      native.setWindowSize(pty.slave, { rows: 25, cols: 80 });
      assert.deepEqual(native.getWindowSize(pty.master), { rows: 25, cols: 80 });

      const child = native.spawn({
        file: BUSYBOX,
        args: ['stty', 'size'],
        env: [],
        fds: [pty.slave, pty.slave, pty.slave],
        setsid: true,
      });
      assert.deepEqual(await waitForExit(native, child), { kind: 'exited', code: 0 });
      const buffer = Buffer.alloc(256);
      assert.equal(buffer.toString('utf8', 0, readSync(pty.master, buffer)), '25 80\r\n');
    } finally {
      native.close(pty.master);
      native.close(pty.slave);
    }
  });

  test('window sizes on something that is not a terminal: ENOTTY; out of range: RangeError', () => {
    const fd = native.eventfd();
    try {
      assert.throws(() => native.getWindowSize(fd), { code: 'ENOTTY', syscall: 'ioctl' });
      assert.throws(
        () => {
          native.setWindowSize(fd, { rows: 1, cols: 1 });
        },
        { code: 'ENOTTY' },
      );
      assert.throws(
        () => {
          native.setWindowSize(fd, { rows: 70_000, cols: 1 });
        },
        { name: 'RangeError' },
      );
    } finally {
      native.close(fd);
    }
  });
});
