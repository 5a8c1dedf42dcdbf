// watchReadable for real: pidfds and eventfds on the loop, closing (twice, from
// inside the callback, before a queued event), errors, and environment teardown
// with watchers still open (a worker, a process exiting) that must not crash.
import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, readSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { loadNative } from './index.js';
import { BUSYBOX, readToEnd, until, waitForExit } from './testing-support.js';

const native = loadNative();
const INDEX_URL = new URL('./index.js', import.meta.url).href;

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

function signalEventfd(fd: number): void {
  const one = Buffer.alloc(8);
  one.writeBigUInt64LE(1n);
  writeSync(fd, one);
}

/** Runs an ES module script in a fresh node process; its stdout and exit status. */
async function runNode(script: string): Promise<{ stdout: string; status: unknown }> {
  const [readEnd, writeEnd] = native.pipe();
  const child = native.spawn({
    file: process.execPath,
    args: ['node', '--input-type=module', '-e', script],
    env: [],
    fds: [-1, writeEnd, writeEnd],
  });
  native.close(writeEnd);
  const stdout = readToEnd(readEnd);
  return { stdout, status: await waitForExit(native, child) };
}

describe('watchReadable', () => {
  test('fires for a pidfd when the process exits; close is idempotent', async () => {
    const child = native.spawn({ file: BUSYBOX, args: ['sleep', '0.05'], env: [], fds: [-1, -1, -1] });
    let calls = 0;
    const status = await new Promise((resolve) => {
      const watcher = native.watchReadable(child.pidfd, () => {
        calls++;
        resolve(native.pidfdWait(child.pidfd));
        watcher.close();
        watcher.close();
      });
    });
    assert.deepEqual(status, { kind: 'exited', code: 0 });
    await turns(5);
    assert.equal(calls, 1);
    native.close(child.pidfd);
  });

  test('fires for an eventfd after a write, level-triggered until read', async () => {
    const fd = native.eventfd();
    let calls = 0;
    const watcher = native.watchReadable(fd, () => {
      calls++;
    });
    try {
      await turns(5);
      assert.equal(calls, 0, 'nothing written yet');
      signalEventfd(fd);
      await until(() => calls >= 3, 'repeated readiness while unread');
      readSync(fd, Buffer.alloc(8));
      await turns(2);
      const settled = calls;
      await turns(5);
      assert.equal(calls, settled, 'quiet once read');
    } finally {
      watcher.close();
      native.close(fd);
    }
  });

  test('a watcher closed before its queued event never calls back', async () => {
    const fd = native.eventfd();
    let calls = 0;
    const watcher = native.watchReadable(fd, () => {
      calls++;
    });
    signalEventfd(fd);
    watcher.close();
    await turns(10);
    assert.equal(calls, 0);
    native.close(fd);
  });

  test('a callback may close its own watcher', async () => {
    const fd = native.eventfd();
    signalEventfd(fd);
    let calls = 0;
    const watcher = native.watchReadable(fd, () => {
      calls++;
      watcher.close();
    });
    await until(() => calls === 1, 'the first callback');
    await turns(10);
    assert.equal(calls, 1, 'still readable, but closed');
    native.close(fd);
  });

  test('two watchers on one fd: EEXIST; a regular file: EPERM; a closed fd: EBADF', () => {
    const fd = native.eventfd();
    const watcher = native.watchReadable(fd, () => undefined);
    try {
      assert.throws(() => native.watchReadable(fd, () => undefined), { code: 'EEXIST', syscall: 'uv_poll_init' });
    } finally {
      watcher.close();
    }
    // Closed: the same fd can be watched again.
    native.watchReadable(fd, () => undefined).close();
    native.close(fd);
    assert.throws(() => native.watchReadable(fd, () => undefined), { code: 'EBADF' });

    const dir = mkdtempSync(join(tmpdir(), 'tsrun-native-poll-'));
    try {
      writeFileSync(join(dir, 'file'), 'x');
      const file = openSync(join(dir, 'file'), 'r');
      try {
        assert.throws(() => native.watchReadable(file, () => undefined), { code: 'EPERM' });
      } finally {
        closeSync(file);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a callback that throws raises uncaughtException, like any Node callback', async () => {
    const { stdout, status } = await runNode(`
      import { loadNative } from ${JSON.stringify(INDEX_URL)};
      import { writeSync } from 'node:fs';
      const native = loadNative();
      const fd = native.eventfd();
      process.on('uncaughtException', (error) => { console.log('caught: ' + error.message); process.exit(42); });
      native.watchReadable(fd, () => { throw new Error('boom'); });
      writeSync(fd, Buffer.from([1, 0, 0, 0, 0, 0, 0, 0]));
    `);
    assert.equal(stdout, 'caught: boom\n');
    assert.deepEqual(status, { kind: 'exited', code: 42 });
  });

  test('a process may exit with watchers open (teardown closes them)', async () => {
    const { stdout, status } = await runNode(`
      import { loadNative } from ${JSON.stringify(INDEX_URL)};
      const native = loadNative();
      const watchers = [0, 1, 2].map(() => native.watchReadable(native.eventfd(), () => {}));
      setTimeout(() => { console.log('exiting'); process.exit(7); }, 10);
    `);
    assert.equal(stdout, 'exiting\n');
    assert.deepEqual(status, { kind: 'exited', code: 7 });
  });

  test('in a worker: watches on the worker loop, and a terminated worker with open watchers does not crash', async () => {
    const fd = native.eventfd();
    const worker = new Worker(
      `
      const { parentPort, workerData } = require('node:worker_threads');
      import(workerData.index).then(({ loadNative }) => {
        const native = loadNative();
        const open = native.watchReadable(native.eventfd(), () => {}); // never readable: stays open
        const watcher = native.watchReadable(workerData.fd, () => {
          watcher.close();
          parentPort.postMessage('fired');
        });
        parentPort.postMessage('ready');
        void open;
      });
      `,
      { eval: true, workerData: { index: INDEX_URL, fd } },
    );
    const messages: unknown[] = [];
    worker.on('message', (message) => messages.push(message));
    await until(() => messages.includes('ready'), 'the worker to be ready');
    signalEventfd(fd);
    await until(() => messages.includes('fired'), 'the worker watcher to fire');
    assert.equal(await worker.terminate(), 1);
    native.close(fd);
    // Still alive and well after the worker environment went away.
    const check = native.eventfd();
    native.watchReadable(check, () => undefined).close();
    native.close(check);
  });
});
