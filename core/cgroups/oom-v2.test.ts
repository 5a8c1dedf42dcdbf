// cgroup v2 OOM watch against a scratch copy of a recorded cgroup tree whose
// memory.events / cgroup.events the test rewrites as the kernel would.
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { RuntimeError } from '../errors.js';
import { openFdCount } from '../../native/testing-support.js';
import { copyFixture, createRecordingLogger, waitFor } from './fixture-tree.js';
import { watchOomV2 } from './oom-v2.js';

function memoryEvents(oomKill: number, oom = oomKill): string {
  return `low 0\nhigh 0\nmax ${oomKill * 100 + 3}\noom ${oom}\noom_kill ${oomKill}\noom_group_kill 0\n`;
}

/** A scratch copy of the recorded container cgroup, removed after the test. */
function scratchCgroup(t: TestContext): string {
  const fixture = copyFixture('v2/container');
  t.after(() => {
    fixture.dispose();
  });
  return fixture.dir;
}

/** Long enough for inotify to deliver and a re-read to finish on a loaded 2-core box. */
const SETTLE_MS = 300;
const settle = () => new Promise((resolve) => setTimeout(resolve, SETTLE_MS));

describe('cgroup v2 OOM watch (memory.events)', () => {
  test('one onOom per increment of oom_kill; kills before the watch are not reported; close stops it', async (t) => {
    const dir = scratchCgroup(t);
    // The fixture already counts 2 kills: those happened before we watched.
    let ooms = 0;
    const watcher = watchOomV2(dir, () => ooms++, createRecordingLogger());
    try {
      await settle();
      assert.equal(ooms, 0);

      writeFileSync(join(dir, 'memory.events'), memoryEvents(3));
      await waitFor(() => ooms === 1, 'the first OOM kill');

      // Two kills between two reads: both reported.
      writeFileSync(join(dir, 'memory.events'), memoryEvents(5));
      await waitFor(() => ooms === 3, 'two more OOM kills');

      // Other counters moving (memory.high hits, an OOM without a kill) report nothing.
      writeFileSync(join(dir, 'memory.events'), memoryEvents(5, 9));
      await settle();
      assert.equal(ooms, 3);
    } finally {
      watcher.close();
    }
    writeFileSync(join(dir, 'memory.events'), memoryEvents(6));
    await settle();
    assert.equal(ooms, 3, 'no OOM reported after close');
    watcher.close();
  });

  test('check() reports a kill before inotify delivers it, once', async (t) => {
    const dir = scratchCgroup(t);
    let ooms = 0;
    const watcher = watchOomV2(dir, () => ooms++, createRecordingLogger());
    try {
      writeFileSync(join(dir, 'memory.events'), memoryEvents(3));
      watcher.check();
      assert.equal(ooms, 1, 'reported at once');
      await settle(); // inotify's event for the same write arrives and re-reads
      assert.equal(ooms, 1, 'the same kill is not reported again');
    } finally {
      watcher.close();
    }
    writeFileSync(join(dir, 'memory.events'), memoryEvents(4));
    watcher.check();
    assert.equal(ooms, 1, 'a no-op once closed');
  });

  test('the watch ends quietly when cgroup.events says the cgroup is empty, after reporting the kill that emptied it', async (t) => {
    const dir = scratchCgroup(t);
    const logger = createRecordingLogger();
    let ooms = 0;
    const watcher = watchOomV2(dir, () => ooms++, logger);
    try {
      writeFileSync(join(dir, 'memory.events'), memoryEvents(3));
      writeFileSync(join(dir, 'cgroup.events'), 'populated 0\nfrozen 0\n');
      await waitFor(() => logger.entries.some((e) => e.msg === 'OOM watch ends'), 'the watch to end');
      assert.equal(ooms, 1);
      writeFileSync(join(dir, 'memory.events'), memoryEvents(4));
      await settle();
      assert.equal(ooms, 1, 'an ended watch reports nothing');
      assert.deepEqual(
        logger.entries.filter((e) => e.level === 'warn' || e.level === 'error'),
        [],
      );
    } finally {
      watcher.close();
    }
  });

  test('the watch ends quietly when the cgroup directory is removed', async (t) => {
    const dir = scratchCgroup(t);
    const logger = createRecordingLogger();
    let ooms = 0;
    const watcher = watchOomV2(dir, () => ooms++, logger);
    rmSync(dir, { recursive: true });
    await waitFor(() => logger.entries.some((e) => e.msg === 'OOM watch ends'), 'the watch to end');
    assert.equal(ooms, 0);
    assert.deepEqual(
      logger.entries.filter((e) => e.level === 'warn' || e.level === 'error'),
      [],
    );
    watcher.close();
    watcher.close();
  });

  test('a throwing onOom is logged and the watch goes on', async (t) => {
    const dir = scratchCgroup(t);
    const logger = createRecordingLogger();
    let calls = 0;
    const watcher = watchOomV2(
      dir,
      () => {
        calls++;
        throw new Error('callback failure');
      },
      logger,
    );
    try {
      writeFileSync(join(dir, 'memory.events'), memoryEvents(4));
      await waitFor(() => calls === 2, 'two callbacks');
      assert.equal(logger.entries.filter((e) => e.level === 'error').length, 2);
    } finally {
      watcher.close();
    }
  });

  test('close while a change is being read leaves no fd open', async (t) => {
    const dir = scratchCgroup(t);
    for (let round = 0; round < 20; round++) {
      const fdsBefore = openFdCount();
      let ooms = 0;
      const watcher = watchOomV2(dir, () => ooms++, createRecordingLogger());
      const watching = openFdCount();
      writeFileSync(join(dir, 'memory.events'), memoryEvents(3 + round));
      // Close as soon as the watch reacts: its read caught open, or its report made.
      for (let turn = 0; turn < 2000 && ooms === 0 && openFdCount() === watching; turn++) {
        await new Promise((resolve) => setImmediate(resolve));
      }
      watcher.close();
      assert.equal(openFdCount(), fdsBefore, `round ${round}: an fd outlived close()`);
    }
  });

  test('a cgroup without memory.events (memory controller off, or gone) is NotFound', (t) => {
    const fixture = copyFixture('v2/recorded');
    t.after(() => {
      fixture.dispose();
    });
    assert.throws(
      () => watchOomV2(fixture.dir, () => undefined, createRecordingLogger()),
      (error: unknown) => error instanceof RuntimeError && error.code === 'NotFound',
    );
  });
});
