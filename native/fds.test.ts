// Plain fd syscalls and mounts for real: fifos, dup2, close, eventfd, pipe,
// pendingBytes (FIONREAD), mount and umount2, and the errno shape of what they throw.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { loadNative } from './index.js';
import { BUSYBOX, fdFlags, O_CLOEXEC, O_NONBLOCK, openFdCount, run, until } from './testing-support.js';

const native = loadNative();
const MS_BIND = 4096;
const MNT_DETACH = 2;

function mounted(path: string): boolean {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((line) => line.split(' ')[4] === path);
}

describe('fds', () => {
  const scratch = mkdtempSync(join(tmpdir(), 'tsrun-native-fds-'));
  after(() => {
    for (const target of [join(scratch, 'tmpfs'), join(scratch, 'bind')]) {
      if (mounted(target)) native.umount2(target, MNT_DETACH);
    }
    rmSync(scratch, { recursive: true, force: true });
  });

  test('openFifo: write with no reader is ENXIO; read then write opens both non-blocking and close-on-exec', async () => {
    const fifo = join(scratch, 'fifo');
    assert.deepEqual((await run(native, [BUSYBOX, 'mkfifo', fifo])).status, { kind: 'exited', code: 0 });
    const error = (() => {
      try {
        native.openFifo(fifo, 'write');
      } catch (caught) {
        return caught as Error & { code: string; errno: number; syscall: string; path: string };
      }
      return assert.fail('opened a fifo for writing without a reader');
    })();
    assert.equal(error.message, `ENXIO: no such device or address, open '${fifo}'`);
    assert.deepEqual([error.code, error.errno, error.syscall, error.path], ['ENXIO', -6, 'open', fifo]);

    const readEnd = native.openFifo(fifo, 'read');
    const writeEnd = native.openFifo(fifo, 'write');
    for (const fd of [readEnd, writeEnd]) assert.equal(fdFlags(fd) & (O_CLOEXEC | O_NONBLOCK), O_CLOEXEC | O_NONBLOCK);
    writeSync(writeEnd, 'through the fifo');
    const buffer = Buffer.alloc(64);
    assert.equal(buffer.toString('utf8', 0, readSync(readEnd, buffer)), 'through the fifo');
    native.close(writeEnd);
    native.close(readEnd);
    const both = native.openFifo(fifo, 'readwrite');
    native.close(both);
    assert.throws(() => native.openFifo(fifo, 'append' as 'read'), { name: 'TypeError' });
    assert.throws(() => native.openFifo(join(scratch, 'missing'), 'read'), {
      code: 'ENOENT',
      path: join(scratch, 'missing'),
    });
  });

  test('dup2 places a copy that is not close-on-exec; close twice is EBADF', () => {
    const fdsBefore = openFdCount();
    const fd = native.eventfd();
    assert.equal(fdFlags(fd) & (O_CLOEXEC | O_NONBLOCK), O_CLOEXEC | O_NONBLOCK);
    native.dup2(fd, 70);
    assert.equal(fdFlags(70) & O_CLOEXEC, 0);
    native.dup2(70, 70); // dup2 semantics: same fd is fine
    native.close(70);
    native.close(fd);
    assert.throws(
      () => {
        native.close(fd);
      },
      { code: 'EBADF', syscall: 'close', errno: -9, message: 'EBADF: bad file descriptor, close' },
    );
    assert.throws(
      () => {
        native.dup2(fd, 71);
      },
      { code: 'EBADF', syscall: 'dup2' },
    );
    assert.equal(openFdCount(), fdsBefore);
  });

  test('an eventfd becomes readable after a write', async () => {
    const fd = native.eventfd();
    let readable = false;
    const watcher = native.watchReadable(fd, () => {
      readable = true;
    });
    try {
      const one = Buffer.alloc(8);
      one.writeBigUInt64LE(5n);
      writeSync(fd, one);
      await until(() => readable, 'the eventfd to be readable');
      const value = Buffer.alloc(8);
      readSync(fd, value);
      assert.equal(value.readBigUInt64LE(), 5n);
    } finally {
      watcher.close();
      native.close(fd);
    }
  });

  test('pipe: both ends close-on-exec and blocking', () => {
    const [readEnd, writeEnd] = native.pipe();
    assert.equal(fdFlags(readEnd) & (O_CLOEXEC | O_NONBLOCK), O_CLOEXEC);
    assert.equal(fdFlags(writeEnd) & (O_CLOEXEC | O_NONBLOCK), O_CLOEXEC);
    native.close(readEnd);
    native.close(writeEnd);
  });

  test('pendingBytes: a pipe and a fifo report their unread bytes through either end; ENOTTY and EBADF otherwise', async () => {
    const fdsBefore = openFdCount();
    const [readEnd, writeEnd] = native.pipe();
    assert.deepEqual([native.pendingBytes(readEnd), native.pendingBytes(writeEnd)], [0, 0]);
    writeSync(writeEnd, 'twelve bytes');
    assert.deepEqual([native.pendingBytes(readEnd), native.pendingBytes(writeEnd)], [12, 12], 'one buffer, seen from both ends');
    assert.equal(readSync(readEnd, Buffer.alloc(5)), 5);
    assert.equal(native.pendingBytes(writeEnd), 7, 'what the reader took is gone from the count');
    native.close(readEnd);
    native.close(writeEnd);

    // What core/io does: a writer and a read end that never reads, while another reader drains the fifo.
    const fifo = join(scratch, 'pending-fifo');
    assert.deepEqual((await run(native, [BUSYBOX, 'mkfifo', fifo])).status, { kind: 'exited', code: 0 });
    const heldRead = native.openFifo(fifo, 'read');
    const writer = native.openFifo(fifo, 'write');
    const client = native.openFifo(fifo, 'read');
    writeSync(writer, Buffer.alloc(3000, 'x'));
    native.close(writer);
    assert.equal(native.pendingBytes(heldRead), 3000, 'the held read end sees the bytes after the writer is closed');
    assert.equal(readSync(client, Buffer.alloc(1000)), 1000);
    assert.equal(native.pendingBytes(heldRead), 2000);
    assert.equal(readSync(client, Buffer.alloc(4096)), 2000);
    assert.equal(native.pendingBytes(heldRead), 0);
    native.close(client);
    native.close(heldRead);

    const eventfd = native.eventfd();
    assert.throws(() => native.pendingBytes(eventfd), {
      code: 'ENOTTY',
      syscall: 'ioctl',
      message: 'ENOTTY: inappropriate ioctl for device, ioctl',
    });
    native.close(eventfd);
    assert.throws(() => native.pendingBytes(eventfd), { code: 'EBADF', syscall: 'ioctl' });
    assert.throws(() => native.pendingBytes(-1), { name: 'RangeError' });
    assert.equal(openFdCount(), fdsBefore);
  });

  test('mount a tmpfs and a bind mount, then umount2 them', () => {
    const tmpfs = join(scratch, 'tmpfs');
    const bind = join(scratch, 'bind');
    mkdirSync(tmpfs);
    mkdirSync(bind);
    native.mount('tmpfs', tmpfs, 'tmpfs', 0, 'size=1m,mode=0700');
    assert.ok(mounted(tmpfs));
    writeFileSync(join(tmpfs, 'file'), 'on tmpfs');
    native.mount(tmpfs, bind, '', MS_BIND, '');
    assert.equal(readFileSync(join(bind, 'file'), 'utf8'), 'on tmpfs');
    native.umount2(bind, 0);
    native.umount2(tmpfs, MNT_DETACH);
    assert.ok(!mounted(tmpfs) && !mounted(bind));
    assert.ok(!existsSync(join(tmpfs, 'file')));
    assert.throws(
      () => {
        native.umount2(tmpfs, 0);
      },
      { code: 'EINVAL', syscall: 'umount2', path: tmpfs },
    );
    assert.throws(
      () => {
        native.mount('tmpfs', join(scratch, 'missing'), 'tmpfs', 0, '');
      },
      {
        code: 'ENOENT',
        syscall: 'mount',
        path: join(scratch, 'missing'),
      },
    );
  });
});
