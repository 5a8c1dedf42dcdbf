// cgroup v1 metrics of a real cgroup made by the test: a busybox shell joins it,
// burns CPU and holds memory between two reads; the values move. The cgroup
// directories are removed even when the test fails.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, readSync, rmdirSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { SpawnedProcess } from '../../native/facade.js';
import { loadNative } from '../../native/index.js';
import { BUSYBOX, waitForExit } from '../../native/testing-support.js';
import { waitFor } from './fixture-tree.js';
import { cgroupOfPid, readStats } from './index.js';
import type { V1Metrics } from './metrics.js';

const CONTROLLERS = ['memory', 'cpu', 'cpuacct', 'pids', 'blkio'] as const;
const ROOT = '/sys/fs/cgroup';
const hasV1 = CONTROLLERS.every((c) => existsSync(join(ROOT, c, 'cgroup.procs')));
const isRoot = process.getuid?.() === 0;

/** Reads one line from a blocking pipe (the child writes whole short lines). */
function readLine(fd: number): string {
  let line = '';
  const byte = Buffer.alloc(1);
  while (readSync(fd, byte, 0, 1, null) === 1) {
    const c = byte.toString('latin1');
    if (c === '\n') return line;
    line += c;
  }
  throw new Error(`pipe closed after "${line}"`);
}

function metricsOf(stats: Awaited<ReturnType<typeof readStats>>): V1Metrics {
  assert.equal(stats.kind, 'v1');
  return stats.metrics as V1Metrics;
}

describe(
  'cgroup v1 metrics of a live cgroup',
  {
    skip: !isRoot
      ? 'needs root (makes cgroups)'
      : !hasV1 && 'this host has no cgroup v1 memory/cpu/cpuacct/pids/blkio hierarchies',
  },
  () => {
    test('read twice with CPU burnt and memory held in between: the values move', async (t) => {
      const native = loadNative();
      const name = `tsrun-test-${process.pid}-${Date.now()}`;
      const dirs = CONTROLLERS.map((c) => join(ROOT, c, name));
      const running: { child?: SpawnedProcess; exited?: Promise<unknown> } = {};
      const [stdinRead, stdinWrite] = native.pipe();
      const [stdoutRead, stdoutWrite] = native.pipe();
      // Each fd is closed exactly once: closing a number twice could hit a reused fd.
      const open = new Set([stdinRead, stdinWrite, stdoutRead, stdoutWrite]);
      const closeFd = (fd: number) => {
        if (open.delete(fd)) native.close(fd);
      };
      t.after(async () => {
        const { child, exited } = running;
        if (child !== undefined && exited !== undefined) {
          try {
            native.pidfdSendSignal(child.pidfd, 9);
          } catch {
            // already gone
          }
          await exited;
        }
        for (const fd of open) closeFd(fd);
        // No task is left in them: the directories can go.
        for (const dir of dirs) if (existsSync(dir)) rmdirSync(dir);
      });
      for (const dir of dirs) mkdirSync(dir);
      // A CFS quota so throttling statistics are kept; a pids limit so pids.max reads back.
      writeFileSync(join(ROOT, 'cpu', name, 'cpu.cfs_quota_us'), '50000');
      writeFileSync(join(ROOT, 'pids', name, 'pids.max'), '32');

      const script = [
        `for c in ${CONTROLLERS.join(' ')}; do echo $$ > ${ROOT}/$c/${name}/cgroup.procs || exit 1; done`,
        'echo joined',
        'read cmd',
        'i=0; while [ $i -lt 30000 ]; do i=$((i+1)); done',
        `x=$(${BUSYBOX} head -c 8000000 /dev/zero | ${BUSYBOX} tr '\\0' a)`,
        'echo worked',
        'read cmd',
      ].join('\n');
      const child = native.spawn({
        file: BUSYBOX,
        args: ['sh', '-c', script],
        env: ['PATH=/usr/bin:/bin'],
        fds: [stdinRead, stdoutWrite, 2],
      });
      const exited = waitForExit(native, child);
      Object.assign(running, { child, exited });
      closeFd(stdinRead);
      closeFd(stdoutWrite);

      assert.equal(readLine(stdoutRead), 'joined');
      const ref = cgroupOfPid(child.pid);
      assert.equal(ref.kind, 'v1');
      for (const c of CONTROLLERS) assert.equal(ref.paths.get(c), join(ROOT, c, name), `${c} directory`);

      const before = metricsOf(await readStats(ref));
      writeSync(stdinWrite, 'go\n');
      assert.equal(readLine(stdoutRead), 'worked');
      const after = metricsOf(await readStats(ref));

      const big = (v: number | string | undefined) => BigInt(v ?? -1);
      assert.equal(after.pids?.limit, 32);
      assert.ok(big(after.pids.current) >= 1n);
      assert.ok(
        big(after.cpu.usage.total) > big(before.cpu.usage.total),
        `cpu total ${before.cpu.usage.total} -> ${after.cpu.usage.total}`,
      );
      const perCpuSum = (m: V1Metrics) => m.cpu.usage.perCpu.reduce<bigint>((sum, v) => sum + big(v), 0n);
      assert.ok(perCpuSum(after) > perCpuSum(before), 'per-CPU usage moved');
      assert.ok(
        big(after.cpu.usage.user) + big(after.cpu.usage.kernel) >
          big(before.cpu.usage.user) + big(before.cpu.usage.kernel),
        'user+kernel ticks moved',
      );
      assert.ok(big(after.cpu.throttling.periods) > big(before.cpu.throttling.periods), 'CFS periods moved');
      // The shell holds an 8 MB string: usage, its maximum and rss grew by megabytes.
      assert.ok(
        big(after.memory?.usage.max) >= big(before.memory?.usage.max) + 8_000_000n,
        `memory max ${before.memory?.usage.max} -> ${after.memory?.usage.max}`,
      );
      assert.ok(
        big(after.memory?.rss) > big(before.memory?.rss) + 4_000_000n,
        `rss ${before.memory?.rss} -> ${after.memory?.rss}`,
      );
      assert.equal(
        after.memory?.usage.limit,
        '9223372036854771712',
        'no limit: the kernel page-counter maximum, as a string',
      );
      assert.ok(after.memoryOomControl !== undefined && after.blkio !== undefined);

      writeSync(stdinWrite, 'exit\n');
      assert.deepEqual(await exited, { kind: 'exited', code: 0 });
      await waitFor(() => readFileSync(join(ROOT, 'pids', name, 'cgroup.procs'), 'utf8') === '', 'the cgroup to empty');
    });
  },
);
