/**
 * waitForReader's rules on scripted counts of unread bytes (what FIONREAD would say
 * at each look) and on the fake facade: when it stops, what it logs, that it never
 * looks at an fd after the signal was aborted. Real fifos: fifo-io.test.ts and
 * core/runtime-io-reader.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createFakeNative, nativeError } from '../../native/fake.js';
import type { Native } from '../../native/facade.js';
import { createTestLogger } from '../test-logger.js';
import type { TestLogger } from '../test-logger.js';
import { READER_STALL_MS, waitForReader } from './reader-wait.js';

/** A native whose pendingBytes answers from `counts`, one per look (the last one repeats). */
function scripted(counts: readonly number[], onLook: (look: number) => void = () => undefined): Pick<Native, 'pendingBytes'> & { looks: number } {
  const script = {
    looks: 0,
    pendingBytes(): number {
      onLook(script.looks);
      const count = counts[Math.min(script.looks, counts.length - 1)];
      script.looks += 1;
      if (count === undefined) throw new Error('empty script');
      return count;
    },
  };
  return script;
}

function waitLines(log: TestLogger): object[] {
  return log.entries.filter((e) => e.msg === 'waited for the client to read its fifo').map((e) => e.obj);
}

describe('waitForReader', () => {
  test('an empty fifo: one look, no wait, no log line', async () => {
    const log = createTestLogger();
    const native = scripted([0]);
    const wait = await waitForReader(native, 7, { log, stream: 'stdout', signal: new AbortController().signal });
    assert.deepEqual({ outcome: wait.outcome, looks: wait.looks, pendingAtStart: wait.pendingAtStart }, { outcome: 'read', looks: 1, pendingAtStart: 0 });
    assert.deepEqual(waitLines(log), []);
  });

  test('a reader taking bytes at every look: waits until 0, however long, and logs one line', async () => {
    const log = createTestLogger();
    const counts = [50_000, 40_000, 30_000, 20_000, 10_000, 5000, 1, 0];
    const native = scripted(counts);
    const wait = await waitForReader(native, 7, { log, stream: 'stderr', signal: new AbortController().signal });
    assert.deepEqual(
      { outcome: wait.outcome, looks: wait.looks, pendingAtStart: wait.pendingAtStart, pendingAtEnd: wait.pendingAtEnd },
      { outcome: 'read', looks: counts.length, pendingAtStart: 50_000, pendingAtEnd: 0 },
    );
    const lines = waitLines(log);
    assert.equal(lines.length, 1);
    assert.deepEqual({ ...lines[0], waitedMs: 0 }, { stream: 'stderr', outcome: 'read', pendingAtStart: 50_000, pendingAtEnd: 0, looks: counts.length, waitedMs: 0 });
  });

  test('a reader that pauses between reads is still waited for while it pauses less than the stall window', async () => {
    // A generous window: this test is about the rule, not about timing.
    const native = scripted([900, 900, 900, 900, 600, 600, 600, 600, 300, 300, 300, 0]);
    const wait = await waitForReader(native, 7, { log: createTestLogger(), stream: 'stdout', signal: new AbortController().signal, stallMs: 10_000 });
    assert.equal(wait.outcome, 'read');
    assert.equal(wait.looks, 12);
  });

  test('no reader (the count never falls): stops after the stall window, backing off between looks', async () => {
    const log = createTestLogger();
    const fake = createFakeNative();
    const fd = fake.openFifo('/run/c1/stdout', 'read');
    fake.setPendingBytes(fd, 10_000);
    const wait = await waitForReader(fake, fd, { log, stream: 'stdout', signal: new AbortController().signal });
    assert.equal(wait.outcome, 'stalled');
    assert.equal(wait.pendingAtEnd, 10_000);
    assert.ok(wait.waitedMs >= READER_STALL_MS - 1, `waited the window (${wait.waitedMs} ms)`);
    // 1, 2, 4, 8, 8... ms apart: about 7 looks in 25 ms, where a fixed 1 ms poll would make 25.
    const looks = fake.calls.filter((c) => c.method === 'pendingBytes').length;
    assert.equal(looks, wait.looks);
    assert.ok(looks <= 15, `backed off (${looks} looks)`);
    assert.deepEqual(waitLines(log).map((l) => (l as { outcome: string }).outcome), ['stalled']);
    fake.close(fd);
  });

  test('a rising count (another writer of the same fifo) is no progress', async () => {
    const native = scripted([100, 200, 300, 300]);
    const wait = await waitForReader(native, 7, { log: createTestLogger(), stream: 'stdout', signal: new AbortController().signal, stallMs: 20 });
    assert.equal(wait.outcome, 'stalled');
    assert.equal(wait.pendingAtEnd, 300);
  });

  test('an aborted signal stops the wait before the next look: the fd is never asked about again', async () => {
    const controller = new AbortController();
    const native = scripted([5000, 4000, 3000, 2000], (look) => {
      if (look === 2) {
        queueMicrotask(() => {
          controller.abort();
        });
      }
    });
    const wait = await waitForReader(native, 7, { log: createTestLogger(), stream: 'stdout', signal: controller.signal, stallMs: 10_000 });
    assert.equal(wait.outcome, 'stopped');
    assert.equal(native.looks, 3, 'no look after the abort');
    const before = scripted([5000]);
    assert.equal((await waitForReader(before, 7, { log: createTestLogger(), stream: 'stdout', signal: AbortSignal.abort() })).outcome, 'stopped');
    assert.equal(before.looks, 0);
  });

  test('a failing ioctl ends the wait with a warning, never a rejection', async () => {
    const log = createTestLogger();
    const fake = createFakeNative();
    fake.failNext('pendingBytes', nativeError('EBADF', 'ioctl'));
    const wait = await waitForReader(fake, 1000, { log, stream: 'stdout', signal: new AbortController().signal });
    assert.equal(wait.outcome, 'failed');
    assert.ok(log.entries.some((e) => e.level === 'warn' && /cannot count the unread bytes/.test(e.msg ?? '')));
  });
});
