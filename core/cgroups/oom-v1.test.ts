// cgroup v1 OOM watch: eventfd + cgroup.event_control + memory.oom_control's oom_kill.
// First against a scratch copy of a recorded tree with a real eventfd, the test playing
// the kernel (signal the eventfd, move the counters); then a real OOM kill in a real v1
// memory cgroup.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, rmSync, rmdirSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { loadNative } from '../../native/index.js';
import { BUSYBOX, openFdCount, waitForExit } from '../../native/testing-support.js';
import { RuntimeError } from '../errors.js';
import { copyFixture, createRecordingLogger, waitFor } from './fixture-tree.js';
import { watchOom } from './index.js';
import { watchOomV1 } from './oom-v1.js';

const native = loadNative();

function oomControl(oomKill: number, { disabled = 0, underOom = 0 } = {}): string {
  return `oom_kill_disable ${disabled}\nunder_oom ${underOom}\noom_kill ${oomKill}\n`;
}

/** The eventfd the watcher registered, from what it wrote to cgroup.event_control. */
function registeredEventFd(dir: string): number {
  const [eventFd, controlFd] = readFileSync(join(dir, 'cgroup.event_control'), 'utf8').split(' ').map(Number);
  assert.ok(
    Number.isInteger(eventFd) && Number.isInteger(controlFd),
    'cgroup.event_control holds "<eventfd> <oom_control fd>"',
  );
  return eventFd ?? -1;
}

/** What the kernel does on an OOM or a removal: add 1 to the eventfd counter. */
function signal(eventFd: number): void {
  const one = Buffer.alloc(8);
  one.writeBigUInt64LE(1n);
  writeSync(eventFd, one);
}

/** The memory cgroup of a scratch copy of the recorded v1 tree, removed after the test. */
function scratchMemoryCgroup(t: TestContext): string {
  const fixture = copyFixture('v1');
  t.after(() => {
    fixture.dispose();
  });
  return join(fixture.dir, 'memory');
}

const SETTLE_MS = 200;
const settle = () => new Promise((resolve) => setTimeout(resolve, SETTLE_MS));

describe('cgroup v1 OOM watch, kernel played by the test', () => {
  test('one onOom per kill counted by oom_kill; wakeups without a kill report nothing', async (t) => {
    const dir = scratchMemoryCgroup(t);
    writeFileSync(join(dir, 'memory.oom_control'), oomControl(4)); // 4 kills before the watch
    let ooms = 0;
    const watcher = watchOomV1(dir, native, () => ooms++, createRecordingLogger());
    try {
      const eventFd = registeredEventFd(dir);
      signal(eventFd);
      await settle();
      assert.equal(ooms, 0, 'a wakeup without a new kill');

      writeFileSync(join(dir, 'memory.oom_control'), oomControl(5));
      signal(eventFd);
      await waitFor(() => ooms === 1, 'one kill');

      writeFileSync(join(dir, 'memory.oom_control'), oomControl(7));
      signal(eventFd);
      signal(eventFd);
      await waitFor(() => ooms === 3, 'two more kills');
      await settle();
      assert.equal(ooms, 3);
    } finally {
      watcher.close();
    }
  });

  test('the notification comes before the kill (kernel order): the kill is still reported, once', async (t) => {
    const dir = scratchMemoryCgroup(t);
    let ooms = 0;
    const watcher = watchOomV1(dir, native, () => ooms++, createRecordingLogger());
    try {
      signal(registeredEventFd(dir));
      await new Promise((resolve) => setTimeout(resolve, 15));
      writeFileSync(join(dir, 'memory.oom_control'), oomControl(1));
      await waitFor(() => ooms === 1, 'the late-counted kill');
      await settle();
      assert.equal(ooms, 1);
    } finally {
      watcher.close();
    }
  });

  test('check() reports a kill counted before its notification arrived, once; a removed cgroup ends the watch', async (t) => {
    const dir = scratchMemoryCgroup(t);
    const fdsBefore = openFdCount();
    const logger = createRecordingLogger();
    let ooms = 0;
    const watcher = watchOomV1(dir, native, () => ooms++, logger);
    writeFileSync(join(dir, 'memory.oom_control'), oomControl(1));
    watcher.check();
    assert.equal(ooms, 1, 'reported at once, before any wakeup');
    watcher.check();
    signal(registeredEventFd(dir)); // the notification, late
    await settle();
    assert.equal(ooms, 1, 'the same kill is not reported again');

    rmSync(dir, { recursive: true });
    watcher.check();
    assert.equal(openFdCount(), fdsBefore, 'the watch ended with its cgroup');
    assert.deepEqual(
      logger.entries.filter((e) => e.level === 'warn' || e.level === 'error'),
      [],
    );
    watcher.check(); // a no-op once closed
    watcher.close();
  });

  test('with the OOM killer disabled, a wakeup under OOM is the OOM (containerd reports it)', async (t) => {
    const dir = scratchMemoryCgroup(t);
    writeFileSync(join(dir, 'memory.oom_control'), oomControl(0, { disabled: 1 }));
    let ooms = 0;
    const watcher = watchOomV1(dir, native, () => ooms++, createRecordingLogger());
    try {
      writeFileSync(join(dir, 'memory.oom_control'), oomControl(0, { disabled: 1, underOom: 1 }));
      signal(registeredEventFd(dir));
      await waitFor(() => ooms === 1, 'the OOM under a disabled killer');
      await settle();
      assert.equal(ooms, 1);
    } finally {
      watcher.close();
    }
  });

  test('removal of the cgroup (which also signals) ends the watch quietly and releases the eventfd', async (t) => {
    const dir = scratchMemoryCgroup(t);
    const fdsBefore = openFdCount();
    const logger = createRecordingLogger();
    let ooms = 0;
    const watcher = watchOomV1(dir, native, () => ooms++, logger);
    assert.equal(openFdCount(), fdsBefore + 1, 'the watch holds one fd: its eventfd');
    const eventFd = registeredEventFd(dir);
    rmSync(dir, { recursive: true });
    signal(eventFd);
    await waitFor(() => openFdCount() === fdsBefore, 'the eventfd to be closed');
    assert.equal(ooms, 0);
    assert.deepEqual(
      logger.entries.filter((e) => e.level === 'warn' || e.level === 'error'),
      [],
    );
    watcher.close(); // idempotent after the watch ended by itself
    assert.equal(openFdCount(), fdsBefore);
  });

  test('close releases the eventfd, is idempotent, and nothing is reported after it', async (t) => {
    const dir = scratchMemoryCgroup(t);
    const fdsBefore = openFdCount();
    let ooms = 0;
    const watcher = watchOomV1(dir, native, () => ooms++, createRecordingLogger());
    const eventFd = registeredEventFd(dir);
    signal(eventFd); // a pending wakeup with a re-check scheduled
    watcher.close();
    watcher.close();
    assert.equal(openFdCount(), fdsBefore);
    writeFileSync(join(dir, 'memory.oom_control'), oomControl(1));
    await settle();
    assert.equal(ooms, 0);
  });

  test('close right after a wakeup was taken leaves no fd open, not even for a moment', async (t) => {
    const dir = scratchMemoryCgroup(t);
    const fdsBefore = openFdCount();
    for (let round = 0; round < 20; round++) {
      const watcher = watchOomV1(dir, native, () => undefined, createRecordingLogger());
      signal(registeredEventFd(dir));
      // The wakeup's check reads memory.oom_control; close() as soon as a read shows an
      // fd of its own (an asynchronous read would keep it past close), or after 20 ms.
      const deadline = Date.now() + 20;
      while (openFdCount() === fdsBefore + 1 && Date.now() < deadline) {
        await new Promise((resolve) => setImmediate(resolve));
      }
      watcher.close();
      assert.equal(openFdCount(), fdsBefore, `round ${round}: an fd outlived close()`);
    }
  });

  test('a missing memory cgroup is NotFound and leaves no fd open', () => {
    const fdsBefore = openFdCount();
    assert.throws(
      () => watchOomV1('/sys/fs/cgroup/memory/tsrun-no-such-cgroup', native, () => undefined, createRecordingLogger()),
      (error: unknown) => error instanceof RuntimeError && error.code === 'NotFound',
    );
    assert.equal(openFdCount(), fdsBefore);
  });
});

const MEMORY_ROOT = '/sys/fs/cgroup/memory';

describe(
  'cgroup v1 OOM watch, real OOM kill',
  {
    skip:
      process.getuid?.() !== 0
        ? 'needs root (makes cgroups)'
        : !existsSync(join(MEMORY_ROOT, 'cgroup.event_control')) && 'no cgroup v1 memory controller on this host',
  },
  () => {
    test('an allocation over memory.limit_in_bytes: one onOom per kill the kernel counted; close releases the eventfd', async (t) => {
      const dir = join(MEMORY_ROOT, `tsrun-test-oom-${process.pid}-${Date.now()}`);
      mkdirSync(dir);
      t.after(() => {
        // The killed processes have left; a cgroup with no tasks can be removed.
        if (existsSync(dir)) rmdirSync(dir);
      });
      writeFileSync(join(dir, 'memory.limit_in_bytes'), String(8 * 1024 * 1024));
      const kernelKills = () => Number(/^oom_kill (\d+)$/m.exec(readFileSync(join(dir, 'memory.oom_control'), 'utf8'))?.[1]);

      const fdsBefore = openFdCount();
      const logger = createRecordingLogger();
      let ooms = 0;
      const watcher = watchOom({ kind: 'v1', paths: new Map([['memory', dir]]) }, native, () => ooms++, logger);
      try {
        // The shell joins the cgroup itself, then holds 64 MB of 'a's in a variable.
        const hog = `echo $$ > ${dir}/cgroup.procs && x=$(${BUSYBOX} head -c 64000000 /dev/zero | ${BUSYBOX} tr '\\0' a) && echo survived`;
        for (let run = 1; run <= 2; run++) {
          const child = native.spawn({
            file: BUSYBOX,
            args: ['sh', '-c', hog],
            env: ['PATH=/usr/bin:/bin'],
            fds: [-1, -1, -1],
          });
          const status = await waitForExit(native, child);
          assert.deepEqual(status, { kind: 'signaled', signal: 9, coreDumped: false }, 'the OOM killer took the shell');
          // One run can cost two kills (seen here in 4 of 150 runs: the shell, then tr or
          // head while the shell's memory was still being freed): follow the kernel's count.
          assert.ok(kernelKills() >= run, 'the kernel counted the kill before the shell died');
          await waitFor(() => ooms === kernelKills(), `onOom for every kill after run ${run}`);
        }
        await settle();
        assert.equal(ooms, kernelKills(), 'one onOom per kill, no more');
      } finally {
        watcher.close();
      }
      assert.equal(openFdCount(), fdsBefore, 'the eventfd is closed');
      assert.deepEqual(
        logger.entries.filter((e) => e.level === 'warn' || e.level === 'error'),
        [],
      );
    });

    test('rmdir of a watched cgroup signals the eventfd: the watch ends quietly, no OOM reported', async (t) => {
      const dir = join(MEMORY_ROOT, `tsrun-test-oom-rm-${process.pid}-${Date.now()}`);
      mkdirSync(dir);
      t.after(() => {
        if (existsSync(dir)) rmdirSync(dir);
      });
      const fdsBefore = openFdCount();
      const logger = createRecordingLogger();
      let ooms = 0;
      const watcher = watchOomV1(dir, native, () => ooms++, logger);
      rmdirSync(dir);
      await waitFor(
        () => logger.entries.some((e) => e.msg === 'memory cgroup removed: OOM watch ends'),
        'the watch to end',
      );
      assert.equal(ooms, 0);
      assert.equal(openFdCount(), fdsBefore);
      watcher.close();
    });
  },
);
