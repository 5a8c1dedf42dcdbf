/**
 * Terminal stdio for real: a pty from native.openPty, handed over a real console
 * socket by a test peer doing what runc does (connect, sendmsg the master with
 * SCM_RIGHTS, the pty's name as the bytes), a process on the slave.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { MonitoredChild } from '../process-monitor.js';
import { RuntimeError } from '../errors.js';
import { pipeWriter, socketFd } from './fd-stream.js';
import type { ProcessIO } from './index.js';
import { createProcessIO } from './index.js';
import type { IoTestEnv } from './test-support.js';
import { BUSYBOX, createIoTestEnv, eventually, exitWithin, openFdCount, readFifo, within } from './test-support.js';

let env: IoTestEnv;

before(() => {
  env = createIoTestEnv();
});

after(() => {
  env.close();
});

async function noFdLeak(body: () => Promise<void>): Promise<void> {
  const fds = openFdCount();
  await body();
  await eventually(() => openFdCount() === fds, `fd count back at ${fds} (now ${openFdCount()})`, 2000);
}

/** A process on a new pty, as runc starts a terminal container. The caller closes `slave`. */
function startOnPty(script: string): { child: MonitoredChild; master: number; slave: number; slavePath: string } {
  const pty = env.native.openPty();
  const child = env.monitor.spawn({
    file: BUSYBOX,
    args: ['sh', '-c', script],
    env: ['PATH=/usr/bin:/bin'],
    fds: [pty.slave, pty.slave, pty.slave],
    setsid: true,
  });
  return { child, ...pty };
}

/** What runc does with --console-socket: connect, send the master (and the pty's name), close. Closes our master. */
async function sendMaster(io: ProcessIO, master: number, slavePath: string): Promise<void> {
  const path = io.consoleSocket;
  assert.ok(path !== undefined);
  const peer = net.createConnection(path);
  try {
    await new Promise<void>((resolve, reject) => {
      peer.once('connect', resolve);
      peer.once('error', reject);
    });
    env.native.sendFds(socketFd(peer), Buffer.from(slavePath), [master]);
  } finally {
    env.native.close(master);
    peer.destroy();
  }
}

describe('terminal stdio', () => {
  test('the pty master arrives over the console socket; input and output are copied; resize reaches the terminal', async () => {
    await noFdLeak(async () => {
      const stdin = join(env.dir, 'tty-stdin');
      const stdout = join(env.dir, 'tty-stdout');
      await env.mkfifo(stdin, stdout);
      const io = await createProcessIO(env.options({ stdin, stdout, stderr: '', terminal: true }));
      assert.deepEqual(io.runtimeFds, [-1, -1, -1]);
      const socketPath = io.consoleSocket;
      assert.ok(socketPath?.startsWith(env.dir) === true);
      const out = readFifo(env.native, stdout);
      const client = env.native.openFifo(stdin, 'write');
      const { child, master, slave, slavePath } = startOnPty('read line; echo "got:$line"; stty size');
      try {
        await sendMaster(io, master, slavePath);
        await io.started();
        assert.equal(existsSync(socketPath), false, 'the console socket is removed once the master arrived');
        io.resize({ width: 100, height: 40 });
        assert.deepEqual(env.native.getWindowSize(slave), { rows: 40, cols: 100 });
        writeSync(client, 'hello\n');
        assert.deepEqual(await within(child.exited, 'the exit of the shell'), { kind: 'exited', code: 0 });
      } finally {
        env.native.close(slave);
        env.native.close(client);
      }
      // The last slave fd is closed: the master reads EIO, which is the terminal's end of file.
      assert.equal(await io.drain(5000), true);
      await within(out.ended, 'EOF on the stdout fifo');
      // The terminal echoes the input and turns \n into \r\n.
      assert.equal(out.text(), 'hello\r\ngot:hello\r\n40 100\r\n');
      io.resize({ width: 10, height: 10 });
      await io.close();
    });
  });

  test('stdin closed (closeStdin and the client gone) hangs up the terminal, as the Go shim does', async () => {
    await noFdLeak(async () => {
      const stdin = join(env.dir, 'hup-stdin');
      const stdout = join(env.dir, 'hup-stdout');
      await env.mkfifo(stdin, stdout);
      const io = await createProcessIO(env.options({ stdin, stdout, stderr: '', terminal: true }));
      const out = readFifo(env.native, stdout);
      const client = env.native.openFifo(stdin, 'write');
      const { child, master, slave, slavePath } = startOnPty('while read line; do echo "line:$line"; done');
      env.native.close(slave);
      await sendMaster(io, master, slavePath);
      await io.started();
      writeSync(client, 'one\n');
      await eventually(() => out.text().includes('line:one'), 'the echo of the first line');
      env.native.close(client);
      assert.equal(await exitWithin(child, 200), 'running', 'our own writer keeps stdin open');
      io.closeStdin();
      await within(child.exited, 'the exit of the shell after the hang-up');
      assert.equal(await io.drain(5000), true);
      await io.close();
      await within(out.ended, 'EOF on the stdout fifo');
    });
  });

  // With a tty.ReadStream over the master (libuv's blocking-writes mode for a pty master)
  // this test does not fail but hangs: the loop spins in write(), so no timer can fire.
  test('a process that never reads its terminal input does not block the event loop (regression: tty.ReadStream writes block)', { timeout: 20_000 }, async () => {
    await noFdLeak(async () => {
      const stdin = join(env.dir, 'full-stdin');
      await env.mkfifo(stdin);
      const io = await createProcessIO(env.options({ stdin, stdout: '', stderr: '', terminal: true }));
      const client = pipeWriter(env.native, env.native.openFifo(stdin, 'write'));
      client.on('error', () => undefined);
      const { child, master, slave, slavePath } = startOnPty('sleep 0.6');
      env.native.close(slave);
      await sendMaster(io, master, slavePath);
      await io.started();
      // Far more than a pty's input queue holds, in complete lines (canonical mode drops the
      // excess of an over-long line instead of queueing it): the master's writes must wait.
      client.write(Buffer.from('a'.repeat(63).concat('\n').repeat(8 * 1024)));
      let last = Date.now();
      let worstLag = 0;
      const ticker = setInterval(() => {
        const now = Date.now();
        worstLag = Math.max(worstLag, now - last);
        last = now;
      }, 10);
      try {
        await within(child.exited, 'the exit of the process');
      } finally {
        clearInterval(ticker);
      }
      assert.ok(worstLag < 250, `the event loop stalled for ${worstLag} ms`);
      client.destroy();
      io.closeStdin();
      assert.equal(await io.drain(5000), true);
      await io.close();
    });
  });

  test('terminal output to a binary:// logger (fd 4 is at EOF at once: a terminal has no stderr)', async () => {
    await noFdLeak(async () => {
      const dir = join(env.dir, 'tty-logger.d');
      mkdirSync(dir);
      const logger = join(env.dir, 'tty-logger');
      writeFileSync(logger, `#!${BUSYBOX} sh\nexec 5>&-\ncat <&4 > "$2/err"\ncat <&3 > "$2/out"\n`, { mode: 0o755 });
      const uri = `binary://${logger}?dir=${encodeURIComponent(dir)}`;
      const io = await createProcessIO(env.options({ stdin: '', stdout: uri, stderr: uri, terminal: true }));
      const { child, master, slave, slavePath } = startOnPty('echo through the terminal');
      env.native.close(slave);
      await sendMaster(io, master, slavePath);
      await io.started();
      await within(child.exited, 'the exit of the process');
      assert.equal(await io.drain(5000), true);
      await io.close();
      assert.equal(readFileSync(join(dir, 'out'), 'utf8'), 'through the terminal\r\n');
      assert.equal(readFileSync(join(dir, 'err'), 'utf8'), '');
    });
  });

  test('no runtime ever connects: started() fails with DeadlineExceeded after the bound, and nothing leaks', async () => {
    await noFdLeak(async () => {
      const io = await createProcessIO(env.options({ stdin: '', stdout: '', stderr: '', terminal: true }, { consoleTimeoutMs: 150 }));
      const socket = io.consoleSocket ?? '';
      await assert.rejects(io.started(), (err: unknown) => err instanceof RuntimeError && err.code === 'DeadlineExceeded');
      await io.close();
      assert.equal(existsSync(socket), false);
    });
  });

  test('a runtime that connects and closes without sending a master fails started() with a sentence', async () => {
    await noFdLeak(async () => {
      const io = await createProcessIO(env.options({ stdin: '', stdout: '', stderr: '', terminal: true }));
      const peer = net.createConnection(io.consoleSocket ?? '');
      await new Promise((resolve) => peer.once('connect', resolve));
      peer.end();
      await assert.rejects(io.started(), (err: unknown) => err instanceof RuntimeError && /without sending the pty master/.test(err.message));
      peer.destroy();
      await io.close();
    });
  });

  test('a runtime that sends two fds fails started(), and both received fds are closed', async () => {
    await noFdLeak(async () => {
      const io = await createProcessIO(env.options({ stdin: '', stdout: '', stderr: '', terminal: true }));
      const [a, b] = env.native.pipe();
      const peer = net.createConnection(io.consoleSocket ?? '');
      await new Promise((resolve) => peer.once('connect', resolve));
      env.native.sendFds(socketFd(peer), Buffer.from('/dev/pts/x'), [a, b]);
      env.native.close(a);
      env.native.close(b);
      await assert.rejects(io.started(), (err: unknown) => err instanceof RuntimeError && /sent 2 fds/.test(err.message));
      peer.destroy();
      await io.close();
    });
  });

  test('close() while started() waits for the master rejects started() at once', async () => {
    await noFdLeak(async () => {
      const io = await createProcessIO(env.options({ stdin: '', stdout: '', stderr: '', terminal: true }));
      const starting = io.started();
      await io.close();
      await assert.rejects(within(starting, 'started() to reject', 1000), (err: unknown) => err instanceof RuntimeError && /closed/.test(err.message));
    });
  });

  test('a work directory too long for a socket address is refused with a sentence', async () => {
    await noFdLeak(async () => {
      const longDir = join(env.dir, 'x'.repeat(100));
      mkdirSync(longDir);
      await assert.rejects(
        createProcessIO(env.options({ stdin: '', stdout: '', stderr: '', terminal: true }, { workDir: longDir })),
        (err: unknown) => err instanceof RuntimeError && err.code === 'InvalidArgument' && /shorter work directory/.test(err.message),
      );
    });
  });
});
