// cgroup v1 metrics parsing, pinned against recorded cgroupfs trees (testdata/README.md):
// what containerd's cgroup1 Stat(IgnoreNotExist) would report for the same files.
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { RuntimeError } from '../errors.js';
import { TESTDATA, copyFixture } from './fixture-tree.js';
import type { V1Metrics } from './metrics.js';
import { readV1Metrics } from './v1-stats.js';

const V1 = join(TESTDATA, 'v1');
const EXTRA = join(TESTDATA, 'v1-extra');
const UNLIMITED = '9223372036854771712';

function pathsUnder(root: string, controllers: readonly string[]): Map<string, string> {
  return new Map(controllers.map((c) => [c, join(root, c)]));
}

/** The cpu message as containerd starts it, when neither cpu nor cpuacct was read. */
const RECORDED_EMPTY_CPU = {
  usage: { total: 0, kernel: 0, user: 0, perCpu: [] },
  throttling: { periods: 0, throttledPeriods: 0, throttledTime: 0 },
};

const RECORDED_CONTROLLERS = ['memory', 'cpu', 'cpuacct', 'pids', 'blkio'] as const;

/** Exactly what testdata/v1 holds, field by field. */
const RECORDED: V1Metrics = {
  hugetlb: [],
  pids: { current: 2, limit: 64 },
  cpu: {
    usage: {
      total: 763808252,
      // cpuacct.stat: user 12, system 63 ticks at USER_HZ 100 -> nanoseconds.
      user: 120000000,
      kernel: 630000000,
      perCpu: [481829070, 281979182],
    },
    throttling: { periods: 20, throttledPeriods: 14, throttledTime: 381732039 },
  },
  memory: {
    cache: 17305600,
    rss: 106496,
    rssHuge: 0,
    mappedFile: 4096,
    dirty: 16384,
    writeback: 0,
    pgPgIn: 2755,
    pgPgOut: 2414,
    pgFault: 2685,
    pgMajFault: 2,
    inactiveAnon: 98304,
    activeAnon: 8192,
    inactiveFile: 17166336,
    activeFile: 139264,
    unevictable: 0,
    hierarchicalMemoryLimit: 268435456,
    hierarchicalSwapLimit: UNLIMITED,
    totalCache: 17305600,
    totalRss: 106496,
    totalRssHuge: 0,
    totalMappedFile: 4096,
    totalDirty: 16384,
    totalWriteback: 0,
    totalPgPgIn: 2755,
    totalPgPgOut: 2414,
    totalPgFault: 2685,
    totalPgMajFault: 2,
    totalInactiveAnon: 98304,
    totalActiveAnon: 8192,
    totalInactiveFile: 17166336,
    totalActiveFile: 139264,
    totalUnevictable: 0,
    usage: { limit: 268435456, usage: 17551360, max: 17817600, failcnt: 0 },
    swap: { limit: UNLIMITED, usage: 17551360, max: 17817600, failcnt: 0 },
    kernel: { limit: UNLIMITED, usage: 118784, max: 466944, failcnt: 0 },
    kernelTcp: { limit: UNLIMITED, usage: 0, max: 0, failcnt: 0 },
  },
  memoryOomControl: { oomKillDisable: 0, underOom: 0, oomKill: 0 },
  blkio: {
    // No CFQ files on this kernel: the throttle files, non-recursive, as containerd reads them.
    ioServiceBytesRecursive: [
      { op: 'Read', device: '/dev/vda', major: 254, minor: 0, value: 17289216 },
      { op: 'Write', device: '/dev/vda', major: 254, minor: 0, value: 16777216 },
      { op: 'Sync', device: '/dev/vda', major: 254, minor: 0, value: 34066432 },
      { op: 'Async', device: '/dev/vda', major: 254, minor: 0, value: 0 },
      { op: 'Discard', device: '/dev/vda', major: 254, minor: 0, value: 0 },
      { op: 'Total', device: '/dev/vda', major: 254, minor: 0, value: 34066432 },
    ],
    ioServicedRecursive: [
      { op: 'Read', device: '/dev/vda', major: 254, minor: 0, value: 49 },
      { op: 'Write', device: '/dev/vda', major: 254, minor: 0, value: 32 },
      { op: 'Sync', device: '/dev/vda', major: 254, minor: 0, value: 81 },
      { op: 'Async', device: '/dev/vda', major: 254, minor: 0, value: 0 },
      { op: 'Discard', device: '/dev/vda', major: 254, minor: 0, value: 0 },
      { op: 'Total', device: '/dev/vda', major: 254, minor: 0, value: 81 },
    ],
    ioQueuedRecursive: [],
    ioServiceTimeRecursive: [],
    ioWaitTimeRecursive: [],
    ioMergedRecursive: [],
    ioTimeRecursive: [],
    sectorsRecursive: [],
  },
  network: [],
};

describe('cgroup v1 metrics from a recorded tree', () => {
  test('memory.stat, oom_control, memory entries, cpu, cpuacct, pids and blkio parse exactly', async () => {
    const metrics = await readV1Metrics(pathsUnder(V1, RECORDED_CONTROLLERS), {
      procRoot: join(V1, 'proc'),
      hugePageSizes: [],
    });
    assert.deepEqual(metrics, RECORDED);
  });

  test('controllers that are not in the paths map are not read', async () => {
    const metrics = await readV1Metrics(pathsUnder(V1, ['memory']), { procRoot: join(V1, 'proc'), hugePageSizes: [] });
    assert.deepEqual(metrics, {
      hugetlb: [],
      cpu: RECORDED_EMPTY_CPU,
      memory: RECORDED.memory,
      memoryOomControl: RECORDED.memoryOomControl,
      network: [],
    });
  });

  test('without swap accounting (no memory.memsw.*), reading memory stops at the missing file, as IgnoreNotExist does', async () => {
    const fixture = copyFixture('v1');
    try {
      for (const name of ['usage_in_bytes', 'max_usage_in_bytes', 'failcnt', 'limit_in_bytes']) {
        rmSync(join(fixture.dir, 'memory', `memory.memsw.${name}`));
      }
      const metrics = await readV1Metrics(pathsUnder(fixture.dir, RECORDED_CONTROLLERS), {
        procRoot: join(fixture.dir, 'proc'),
        hugePageSizes: [],
      });
      const zero = { limit: 0, usage: 0, max: 0, failcnt: 0 };
      assert.deepEqual(metrics.memory, { ...RECORDED.memory, swap: zero, kernel: zero, kernelTcp: zero });
      assert.deepEqual(metrics.cpu, RECORDED.cpu);
    } finally {
      fixture.dispose();
    }
  });

  test('a missing memory.stat leaves memory and memoryOomControl absent', async () => {
    const fixture = copyFixture('v1');
    try {
      rmSync(join(fixture.dir, 'memory', 'memory.stat'));
      const metrics = await readV1Metrics(pathsUnder(fixture.dir, RECORDED_CONTROLLERS), {
        procRoot: join(fixture.dir, 'proc'),
        hugePageSizes: [],
      });
      assert.equal(metrics.memory, undefined);
      assert.equal(metrics.memoryOomControl, undefined);
      assert.deepEqual(metrics.pids, RECORDED.pids);
    } finally {
      fixture.dispose();
    }
  });

  test('pids.max "max" and negative values read as 0, as containerd reports them', async () => {
    const fixture = copyFixture('v1');
    try {
      writeFileSync(join(fixture.dir, 'pids', 'pids.max'), 'max\n');
      writeFileSync(join(fixture.dir, 'cpuacct', 'cpuacct.usage'), '-1\n');
      const metrics = await readV1Metrics(pathsUnder(fixture.dir, ['pids', 'cpuacct']), { hugePageSizes: [] });
      assert.deepEqual(metrics.pids, { current: 2, limit: 0 });
      assert.equal(metrics.cpu.usage.total, 0);
    } finally {
      fixture.dispose();
    }
  });

  test('a malformed cpu.stat fails the read with Internal', async () => {
    const fixture = copyFixture('v1');
    try {
      writeFileSync(join(fixture.dir, 'cpu', 'cpu.stat'), 'nr_periods 1 2\n');
      await assert.rejects(
        readV1Metrics(pathsUnder(fixture.dir, RECORDED_CONTROLLERS), {
          procRoot: join(fixture.dir, 'proc'),
          hugePageSizes: [],
        }),
        (error: unknown) =>
          error instanceof RuntimeError && error.code === 'Internal' && /nr_periods 1 2/.test(error.message),
      );
    } finally {
      fixture.dispose();
    }
  });

  test('a deleted cgroup (no directory exists) is NotFound', async () => {
    await assert.rejects(
      readV1Metrics(pathsUnder(join(TESTDATA, 'no-such-tree'), RECORDED_CONTROLLERS)),
      (error: unknown) => error instanceof RuntimeError && error.code === 'NotFound',
    );
  });

  test('CFQ blkio files (recursive, with Total lines), hugetlb per page size and rdma', async () => {
    const metrics = await readV1Metrics(pathsUnder(EXTRA, ['blkio', 'hugetlb', 'rdma']), {
      procRoot: join(EXTRA, 'proc'),
      hugePageSizes: ['1GB', '2MB'],
    });
    const entry = (major: number, minor: number, op: string, value: number) => ({
      op,
      device: minor === 0 ? '/dev/sda' : '/dev/sdb',
      major,
      minor,
      value,
    });
    const ops = (major: number, minor: number, read: number, write: number, sync: number, async: number) => [
      entry(major, minor, 'Read', read),
      entry(major, minor, 'Write', write),
      entry(major, minor, 'Sync', sync),
      entry(major, minor, 'Async', async),
      entry(major, minor, 'Total', sync + async),
    ];
    assert.deepEqual(metrics, {
      hugetlb: [
        { usage: 0, max: 0, failcnt: 0, pagesize: '1GB' },
        { usage: 4194304, max: 6291456, failcnt: 1, pagesize: '2MB' },
      ],
      cpu: RECORDED_EMPTY_CPU,
      blkio: {
        ioServiceBytesRecursive: [...ops(8, 0, 51195904, 1351680, 52547584, 0), ...ops(8, 16, 28672, 0, 28672, 0)],
        ioServicedRecursive: [...ops(8, 0, 1250, 330, 1400, 180), ...ops(8, 16, 7, 0, 7, 0)],
        ioQueuedRecursive: ops(8, 0, 0, 0, 0, 0),
        ioServiceTimeRecursive: ops(8, 0, 1811211345, 60423911, 1871635256, 0),
        ioWaitTimeRecursive: ops(8, 0, 3711098871, 2088234, 3713187105, 0),
        ioMergedRecursive: ops(8, 0, 12, 40, 52, 0),
        ioTimeRecursive: [entry(8, 0, '', 1873), entry(8, 16, '', 2)],
        sectorsRecursive: [entry(8, 0, '', 102632), entry(8, 16, '', 56)],
      },
      rdma: {
        current: [
          { device: 'mlx4_0', hcaHandles: 1, hcaObjects: 20 },
          { device: 'ocrdma1', hcaHandles: 1, hcaObjects: 23 },
        ],
        limit: [
          { device: 'mlx4_0', hcaHandles: 2, hcaObjects: 2000 },
          { device: 'ocrdma1', hcaHandles: 3, hcaObjects: 4294967295 },
        ],
      },
      network: [],
    });
  });
});
