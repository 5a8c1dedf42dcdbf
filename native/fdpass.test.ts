// Unix socket syscalls for real: SCM_RIGHTS round trips over a socketpair,
// truncation, peer credentials of a connection from another process, and
// listening sockets the caller owns.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readSync, rmSync, writeSync } from 'node:fs';
import { createServer } from 'node:net';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { loadNative } from './index.js';
import { fdFlags, O_CLOEXEC, openFdCount, until, waitForExit } from './testing-support.js';

const native = loadNative();
const text = (bytes: Uint8Array): string => Buffer.from(bytes).toString('utf8');

describe('fd passing', () => {
  const scratch = mkdtempSync(join(tmpdir(), 'tsrun-native-fdpass-'));
  after(() => {
    rmSync(scratch, { recursive: true, force: true });
  });

  test('sends a pipe over a socketpair: bytes and both fds arrive, close-on-exec, and work', () => {
    const fdsBefore = openFdCount();
    const [a, b] = native.socketPair();
    const [readEnd, writeEnd] = native.pipe();
    native.sendFds(a, Buffer.from('hello'), [writeEnd, readEnd]);
    native.close(writeEnd);
    native.close(readEnd);
    const message = native.receiveFds(b, 64, 4);
    assert.equal(text(message.data), 'hello');
    assert.equal(message.fds.length, 2);
    const [receivedWrite, receivedRead] = message.fds as [number, number];
    for (const fd of message.fds) assert.equal(fdFlags(fd) & O_CLOEXEC, O_CLOEXEC);
    writeSync(receivedWrite, 'through the passed pipe');
    const buffer = Buffer.alloc(64);
    assert.equal(buffer.toString('utf8', 0, readSync(receivedRead, buffer)), 'through the passed pipe');
    for (const fd of [receivedWrite, receivedRead, a, b]) native.close(fd);
    assert.equal(openFdCount(), fdsBefore);
  });

  test('more fds than maxFds: EMSGSIZE, and the fds that did arrive are closed', () => {
    const fdsBefore = openFdCount();
    const [a, b] = native.socketPair();
    const eventfds = [native.eventfd(), native.eventfd(), native.eventfd()];
    native.sendFds(a, Buffer.from('x'), eventfds);
    for (const fd of eventfds) native.close(fd);
    assert.throws(() => native.receiveFds(b, 16, 1), { code: 'EMSGSIZE', syscall: 'recvmsg', errno: -90 });
    native.close(a);
    native.close(b);
    assert.equal(openFdCount(), fdsBefore);
  });

  test('no fds sent, none received; end of stream reads as empty', () => {
    const [a, b] = native.socketPair();
    native.sendFds(a, Buffer.from('plain'), []);
    assert.deepEqual(native.receiveFds(b, 16, 0), { data: new Uint8Array(Buffer.from('plain')), fds: [] });
    native.close(a);
    const end = native.receiveFds(b, 16, 4);
    assert.deepEqual([end.data.length, end.fds], [0, []]);
    native.close(b);
  });

  test('a non-blocking socket with nothing to read throws EAGAIN', () => {
    const [a, b] = native.socketPair();
    // watchReadable leaves the fd non-blocking (uv_poll): the facade's documented way.
    native.watchReadable(b, () => undefined).close();
    assert.throws(() => native.receiveFds(b, 16, 4), { code: 'EAGAIN', syscall: 'recvmsg' });
    native.close(a);
    native.close(b);
  });

  test('fds with no data to carry them are refused', () => {
    const [a, b] = native.socketPair();
    assert.throws(
      () => {
        native.sendFds(a, new Uint8Array(0), [a]);
      },
      { name: 'RangeError' },
    );
    native.close(a);
    native.close(b);
  });

  test('peer credentials: our own across a socketpair', () => {
    const [a, b] = native.socketPair();
    assert.deepEqual(native.peerCredentials(a), { pid: process.pid, uid: process.getuid?.(), gid: process.getgid?.() });
    native.close(a);
    native.close(b);
    assert.throws(() => native.peerCredentials(native.eventfd()), { code: 'ENOTSOCK' });
  });

  test('listenUnix: a connection from another process, and its peer credentials', async () => {
    const path = join(scratch, 'listen.sock');
    const listenFd = native.listenUnix(path, 16);
    assert.throws(() => native.listenUnix(path, 16), { code: 'EADDRINUSE', syscall: 'bind', path });
    const server = createServer();
    const connections: Socket[] = [];
    server.on('connection', (socket) => connections.push(socket));
    await new Promise<void>((resolve) => server.listen({ fd: listenFd }, resolve));
    const client = native.spawn({
      file: process.execPath,
      args: ['node', '-e', `require('node:net').connect(${JSON.stringify(path)}).on('data', () => {})`],
      env: [],
      fds: [-1, -1, 2],
    });
    try {
      await until(() => connections.length === 1, 'the client to connect', 10_000);
      // Test-only: the accepted socket's fd through Node's private handle (what the shim's same-user check does too).
      const fd = (connections[0] as unknown as { _handle: { fd: number } })._handle.fd;
      assert.deepEqual(native.peerCredentials(fd), {
        pid: client.pid,
        uid: process.getuid?.(),
        gid: process.getgid?.(),
      });
    } finally {
      native.pidfdSendSignal(client.pidfd, 9);
      await waitForExit(native, client);
      for (const socket of connections) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    }
    // Closing the listening fd leaves the socket file to its owner.
    assert.ok(existsSync(path));
    rmSync(path);
  });
});
