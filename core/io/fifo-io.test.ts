/**
 * Fifo stdio for real: processes started through the monitor with the runtime fds
 * as their 0/1/2, fifos made with mkfifo, readers and writers as containerd would
 * hold them. Every test leaves the fd count as it found it.
 */
import assert from 'node:assert/strict';
import { fstatSync, readFileSync, readSync, writeSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { RuntimeError } from '../errors.js';
import { createProcessIO } from './index.js';
import type { IoTestEnv } from './test-support.js';
import { createIoTestEnv, eventually, exitWithin, numberedLines, openFdCount, readFifo, within } from './test-support.js';

let env: IoTestEnv;

before(async () => {
  env = createIoTestEnv();
  // Warm up what Node opens lazily once (threadpool, fs.promises), so fd counts compare exactly.
  const io = await createProcessIO(env.options({ stdin: '', stdout: '', stderr: '', terminal: false }));
  await io.close();
  await env.mkfifo(join(env.dir, 'warm'));
  const reader = readFifo(env.native, join(env.dir, 'warm'));
  reader.close();
});

after(() => {
  env.close();
});

/** Runs `body` and asserts the fd count is back where it was. */
async function noFdLeak(body: () => Promise<void>): Promise<void> {
  const fds = openFdCount();
  await body();
  await eventually(() => openFdCount() === fds, `fd count back at ${fds} (now ${openFdCount()})`, 2000);
}

describe('null stdio', () => {
  test('gives the runtime /dev/null for 0, 1 and 2 and drains at once', async () => {
    await noFdLeak(async () => {
      const io = await createProcessIO(env.options({ stdin: '', stdout: '', stderr: '', terminal: false }));
      assert.deepEqual(io.runtimeFds, [-1, -1, -1]);
      assert.equal(io.consoleSocket, undefined);
      await io.started();
      assert.equal(await io.drain(100), true);
      io.resize({ width: 80, height: 24 });
      io.closeStdin();
      await io.close();
      await io.close();
    });
  });
});

describe('fifo stdio', () => {
  test('100,000 numbered lines reach the stdout fifo in order, stderr its own fifo; drain resolves true', async () => {
    await noFdLeak(async () => {
      const stdout = join(env.dir, 'lines-stdout');
      const stderr = join(env.dir, 'lines-stderr');
      await env.mkfifo(stdout, stderr);
      const io = await createProcessIO(env.options({ stdin: '', stdout, stderr, terminal: false }));
      assert.equal(io.runtimeFds[0], -1);
      assert.ok(io.runtimeFds[1] > 2 && io.runtimeFds[2] > 2);
      // A slow reader: when the process exits, output is still in flight in the pipes and the fifo.
      const out = readFifo(env.native, stdout, { pauseMs: 10 });
      const err = readFifo(env.native, stderr);
      const child = env.sh('seq 1 100000; seq 1 50 >&2', io.runtimeFds);
      await io.started();
      assert.deepEqual(await within(child.exited, 'the exit of the process'), { kind: 'exited', code: 0 });
      assert.equal(await io.drain(5000), true);
      // Drained means written out: closing at once loses nothing (the fifos keep what the readers did not read yet).
      await io.close();
      await within(Promise.all([out.ended, err.ended]), 'EOF on both fifos');
      assert.equal(out.text(), numberedLines(100_000));
      assert.equal(err.text(), numberedLines(50));
    });
  });

  test('a plain fifo:// URI works like a path, and an empty stderr gives the runtime /dev/null', async () => {
    await noFdLeak(async () => {
      const stdout = join(env.dir, 'uri-stdout');
      await env.mkfifo(stdout);
      const io = await createProcessIO(env.options({ stdin: '', stdout: `fifo://${stdout}`, stderr: '', terminal: false }));
      assert.equal(io.runtimeFds[2], -1);
      const out = readFifo(env.native, stdout);
      const child = env.sh('echo hello; echo lost >&2', io.runtimeFds);
      await io.started();
      await within(child.exited, 'the exit of the process');
      assert.equal(await io.drain(5000), true);
      await within(out.ended, 'EOF on the stdout fifo');
      assert.equal(out.text(), 'hello\n');
      await io.close();
    });
  });

  test('the reader going away mid-stream never SIGPIPEs the process, and later output reaches a new reader', async () => {
    await noFdLeak(async () => {
      const stdout = join(env.dir, 'away-stdout');
      const go1 = join(env.dir, 'away-go1');
      const go2 = join(env.dir, 'away-go2');
      await env.mkfifo(stdout);
      const io = await createProcessIO(env.options({ stdin: '', stdout, stderr: '', terminal: false }));
      const first = readFifo(env.native, stdout);
      // Phase A while the first reader reads; phase B while nobody reads; phase C for the new reader.
      const script = `seq 1 1000; while [ ! -e ${go1} ]; do sleep 0.01; done; seq 1001 2000; while [ ! -e ${go2} ]; do sleep 0.01; done; seq 2001 3000`;
      const child = env.sh(script, io.runtimeFds, []);
      await io.started();
      await eventually(() => first.text().endsWith('\n1000\n'), 'the first 1000 lines');
      first.close();
      await touch(go1);
      // Phase B lands in the fifo's buffer, kept alive by the read end the shim holds.
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.equal(await exitWithin(child, 0), 'running');
      const second = readFifo(env.native, stdout);
      await touch(go2);
      assert.deepEqual(await within(child.exited, 'the exit of the process'), { kind: 'exited', code: 0 }, 'no SIGPIPE (141) and no EPIPE');
      assert.equal(await io.drain(5000), true);
      await within(second.ended, 'EOF for the second reader');
      assert.equal(first.text(), numberedLines(1000));
      assert.equal(second.text(), numberedLines(2000, 1001));
      await io.close();
    });
  });

  test('stdin: data written into the stdin fifo reaches the process; EOF only after closeStdin and the client closed', async () => {
    await noFdLeak(async () => {
      const stdin = join(env.dir, 'in-stdin');
      const stdout = join(env.dir, 'in-stdout');
      await env.mkfifo(stdin, stdout);
      const io = await createProcessIO(env.options({ stdin, stdout, stderr: '', terminal: false }));
      assert.ok(io.runtimeFds[0] > 2);
      const out = readFifo(env.native, stdout);
      const client = env.native.openFifo(stdin, 'write');
      const child = env.sh('cat; echo "cat saw EOF"', io.runtimeFds);
      await io.started();
      writeSync(client, 'hello\n');
      await eventually(() => out.text() === 'hello\n', 'the echo of stdin');
      // The client going away alone is no EOF: the shim holds its own writer (CloseIO semantics).
      env.native.close(client);
      assert.equal(await exitWithin(child, 200), 'running');
      const again = env.native.openFifo(stdin, 'write');
      writeSync(again, 'again\n');
      await eventually(() => out.text() === 'hello\nagain\n', 'input of a reconnected client');
      io.closeStdin();
      io.closeStdin();
      assert.equal(await exitWithin(child, 200), 'running', 'the client still holds its writer');
      env.native.close(again);
      assert.deepEqual(await within(child.exited, 'the exit of the process'), { kind: 'exited', code: 0 });
      assert.equal(await io.drain(5000), true);
      await within(out.ended, 'EOF on the stdout fifo');
      assert.equal(out.text(), 'hello\nagain\ncat saw EOF\n');
      await io.close();
    });
  });

  test('drain resolves false after the bound while a grandchild holds stdout open, and logs the bound', async () => {
    await noFdLeak(async () => {
      const stdout = join(env.dir, 'grand-stdout');
      await env.mkfifo(stdout);
      const io = await createProcessIO(env.options({ stdin: '', stdout, stderr: '', terminal: false }));
      const out = readFifo(env.native, stdout);
      const child = env.sh('busybox sleep 30 & echo $!', io.runtimeFds);
      await io.started();
      await within(child.exited, 'the exit of the process');
      await eventually(() => out.text().endsWith('\n'), 'the grandchild pid');
      const grandchild = Number(out.text().trim());
      try {
        const started = Date.now();
        assert.equal(await io.drain(300), false);
        assert.ok(Date.now() - started >= 290, 'drain waited for its bound');
        assert.ok(
          env.logger.entries.some((e) => e.level === 'warn' && (e.obj as { timeoutMs?: number }).timeoutMs === 300),
          'the bound was logged',
        );
      } finally {
        process.kill(grandchild, 'SIGKILL');
      }
      await io.close();
      out.close();
    });
  });

  test('drain called before started (an exit reaped before runc exec returned) waits for started', async () => {
    await noFdLeak(async () => {
      const stdout = join(env.dir, 'early-stdout');
      await env.mkfifo(stdout);
      const io = await createProcessIO(env.options({ stdin: '', stdout, stderr: '', terminal: false }));
      const out = readFifo(env.native, stdout);
      const child = env.sh('echo early', io.runtimeFds);
      await within(child.exited, 'the exit of the process');
      const drained = io.drain(5000);
      await new Promise((resolve) => setTimeout(resolve, 50));
      await io.started();
      assert.equal(await drained, true);
      await io.close();
      await within(out.ended, 'EOF on the stdout fifo');
      assert.equal(out.text(), 'early\n');
    });
  });

  test('close before started releases everything (a failed runc create)', async () => {
    await noFdLeak(async () => {
      const stdin = join(env.dir, 'fail-stdin');
      const stdout = join(env.dir, 'fail-stdout');
      const stderr = join(env.dir, 'fail-stderr');
      await env.mkfifo(stdin, stdout, stderr);
      const io = await createProcessIO(env.options({ stdin, stdout, stderr, terminal: false }));
      await io.close();
      await assert.rejects(io.started(), (err: unknown) => err instanceof RuntimeError && err.code === 'FailedPrecondition');
    });
  });

  test('a stdout path that is a regular file is appended to, stdout and stderr through one writer', async () => {
    await noFdLeak(async () => {
      const path = join(env.dir, 'plain.log');
      await touch(path, 'before\n');
      const io = await createProcessIO(env.options({ stdin: '', stdout: path, stderr: path, terminal: false }));
      const child = env.sh('echo out; echo err >&2', io.runtimeFds);
      await io.started();
      await within(child.exited, 'the exit of the process');
      assert.equal(await io.drain(5000), true);
      const text = readFileSync(path, 'utf8');
      assert.ok(text.startsWith('before\n'));
      assert.deepEqual(text.split('\n').slice(1).sort(), ['', 'err', 'out']);
      await io.close();
    });
  });
});

/** A reader that takes at most `chunk` bytes every `everyMs` with read(2): `consumed` is what left the fifo. */
function slowReader(path: string, chunk: number, everyMs: number): { consumed(): number; close(): void } {
  const fd = env.native.openFifo(path, 'read');
  const buffer = Buffer.alloc(chunk);
  let consumed = 0;
  const timer = setInterval(() => {
    try {
      consumed += readSync(fd, buffer, 0, chunk, null);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
    }
  }, everyMs);
  return {
    consumed: () => consumed,
    close() {
      clearInterval(timer);
      env.native.close(fd);
    },
  };
}

function readerWaits(): { outcome: string; pendingAtStart: number }[] {
  return env.logger.entries
    .filter((e) => e.msg === 'waited for the client to read its fifo')
    .map((e) => e.obj as { outcome: string; pendingAtStart: number });
}

describe('waiting for the fifo reader before the exit', () => {
  test('a slow reader: drain resolves only after the reader took every byte out of the fifo', async () => {
    await noFdLeak(async () => {
      const stdout = join(env.dir, 'slow-stdout');
      await env.mkfifo(stdout);
      const total = 256 * 1024;
      // A wide stall window: the order is the point here, not how the reader is scheduled.
      const io = await createProcessIO(env.options({ stdin: '', stdout, stderr: '', terminal: false }, { readerStallMs: 10_000 }));
      const reader = slowReader(stdout, 4096, 2);
      try {
        const waitsBefore = readerWaits().length;
        const child = env.sh(`head -c ${total} /dev/zero`, io.runtimeFds);
        await io.started();
        assert.deepEqual(await within(child.exited, 'the exit of the process'), { kind: 'exited', code: 0 });
        assert.equal(await io.drain(20_000), true);
        // Same turn as drain's resolution: the reader had read everything before it.
        assert.equal(reader.consumed(), total, 'every byte was read from the fifo before drain resolved');
        const waits = readerWaits().slice(waitsBefore);
        assert.deepEqual(
          waits.map((w) => [w.outcome, w.pendingAtStart > 0]),
          [['read', true]],
          'one wait, for output still in the fifo when the copy ended',
        );
        await io.close();
      } finally {
        reader.close();
      }
    });
  });

  test('nobody reads the fifo: drain still resolves, after the no-progress window, and logs it', async () => {
    await noFdLeak(async () => {
      const stdout = join(env.dir, 'unread-stdout');
      await env.mkfifo(stdout);
      const io = await createProcessIO(env.options({ stdin: '', stdout, stderr: '', terminal: false }));
      const waitsBefore = readerWaits().length;
      const child = env.sh('head -c 10000 /dev/zero', io.runtimeFds);
      await io.started();
      await within(child.exited, 'the exit of the process');
      const started = Date.now();
      assert.equal(await io.drain(5000), true);
      assert.ok(Date.now() - started < 2000, `drain was not held by the unread fifo (${Date.now() - started} ms)`);
      assert.deepEqual(
        readerWaits()
          .slice(waitsBefore)
          .map((w) => [w.outcome, w.pendingAtStart]),
        [['stalled', 10_000]],
      );
      await io.close();
    });
  });

  test('file output is not waited for: no look at any unread count', async () => {
    await noFdLeak(async () => {
      let looks = 0;
      const native = {
        ...env.native,
        pendingBytes: (fd: number) => {
          looks += 1;
          return env.native.pendingBytes(fd);
        },
      };
      const path = join(env.dir, 'not-waited.log');
      for (const stdio of [
        { stdin: '', stdout: `file://${path}`, stderr: `file://${path}`, terminal: false },
        { stdin: '', stdout: path, stderr: path, terminal: false },
      ]) {
        const io = await createProcessIO(env.options(stdio, { native }));
        const child = env.sh('echo out; echo err >&2', io.runtimeFds);
        await io.started();
        await within(child.exited, 'the exit of the process');
        assert.equal(await io.drain(5000), true);
        await io.close();
      }
      assert.equal(looks, 0);
      assert.equal(readFileSync(path, 'utf8').length, 16);
    });
  });
});

describe('errors', () => {
  test('an unknown scheme is an InvalidArgument saying "unknown STDIO scheme", and nothing leaks', async () => {
    await noFdLeak(async () => {
      await assert.rejects(
        createProcessIO(env.options({ stdin: '', stdout: 'tcp://1.2.3.4:5', stderr: '', terminal: false })),
        (err: unknown) => err instanceof RuntimeError && err.code === 'InvalidArgument' && /unknown STDIO scheme 'tcp'/.test(err.message),
      );
    });
  });

  test('a missing stdout fifo fails after stdin was set up, and releases the stdin pipe and fifo', async () => {
    await noFdLeak(async () => {
      const stdin = join(env.dir, 'err-stdin');
      await env.mkfifo(stdin);
      await assert.rejects(
        createProcessIO(env.options({ stdin, stdout: join(env.dir, 'nope', 'stdout'), stderr: '', terminal: false })),
        (err: unknown) => err instanceof RuntimeError && err.code === 'InvalidArgument' && /stdout '.*nope\/stdout' cannot be opened/.test(err.message),
      );
    });
  });

  test('a stdin that is not a fifo is refused', async () => {
    await noFdLeak(async () => {
      const stdin = join(env.dir, 'regular-stdin');
      await touch(stdin);
      await assert.rejects(
        createProcessIO(env.options({ stdin, stdout: '', stderr: '', terminal: false })),
        (err: unknown) => err instanceof RuntimeError && err.code === 'InvalidArgument' && /is not a fifo/.test(err.message),
      );
    });
  });
});

describe('IoUid/IoGid', () => {
  test('the process ends of the pipes belong to IoUid/IoGid', async () => {
    await noFdLeak(async () => {
      const stdin = join(env.dir, 'uid-stdin');
      const stdout = join(env.dir, 'uid-stdout');
      await env.mkfifo(stdin, stdout);
      const io = await createProcessIO(env.options({ stdin, stdout, stderr: '', terminal: false }, { ioUid: 1234, ioGid: 5678 }));
      for (const fd of [io.runtimeFds[0], io.runtimeFds[1]]) {
        const stat = fstatSync(fd);
        assert.equal(stat.uid, 1234);
        assert.equal(stat.gid, 5678);
      }
      await io.close();
    });
  });
});

async function touch(path: string, content = ''): Promise<void> {
  await writeFile(path, content);
}
