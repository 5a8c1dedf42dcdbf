import { test } from 'node:test';
import assert from 'node:assert/strict';
import { int64FromBigInt, int64ToBigInt, io, packAny, unpackAnyAs } from './index.js';
import { assertRoundTrip, counters } from './testing.js';

const v1 = io.containerd.cgroups.v1;

// What cgroup v1 reports as "no limit": PAGE_COUNTER_MAX * 4096, beyond Number.MAX_SAFE_INTEGER.
const unlimited = int64FromBigInt(9223372036854771712n);

const memoryEntry = (base: number) => ({ limit: unlimited, usage: base + 1, max: base + 2, failcnt: base + 3 });
const blkio = (op: string, value: number) => ({ op, device: '/dev/vda', major: 254, minor: 16, value });

const metrics = {
  hugetlb: [{ usage: 1, max: 2, failcnt: 3, pagesize: '2MB' }],
  pids: { current: 7, limit: 4096 },
  cpu: {
    usage: { total: 3_000_000_000, kernel: 1_000_000_000, user: 2_000_000_000, perCpu: [1_500_000_000, 1_500_000_000] },
    throttling: { periods: 100, throttledPeriods: 5, throttledTime: 123456 },
  },
  memory: {
    ...counters(
      [
        'cache',
        'rss',
        'rssHuge',
        'mappedFile',
        'dirty',
        'writeback',
        'pgPgIn',
        'pgPgOut',
        'pgFault',
        'pgMajFault',
        'inactiveAnon',
        'activeAnon',
        'inactiveFile',
        'activeFile',
        'unevictable',
        'hierarchicalSwapLimit',
        'totalCache',
        'totalRss',
        'totalRssHuge',
        'totalMappedFile',
        'totalDirty',
        'totalWriteback',
        'totalPgPgIn',
        'totalPgPgOut',
        'totalPgFault',
        'totalPgMajFault',
        'totalInactiveAnon',
        'totalActiveAnon',
        'totalInactiveFile',
        'totalActiveFile',
        'totalUnevictable',
      ] as const,
      4096,
    ),
    hierarchicalMemoryLimit: unlimited,
    usage: memoryEntry(10),
    swap: memoryEntry(20),
    kernel: memoryEntry(30),
    kernelTcp: memoryEntry(40),
  },
  blkio: {
    ioServiceBytesRecursive: [blkio('Read', 4096), blkio('Write', 8192)],
    ioServicedRecursive: [blkio('Read', 1)],
    ioQueuedRecursive: [blkio('Total', 2)],
    ioServiceTimeRecursive: [blkio('Total', 3)],
    ioWaitTimeRecursive: [blkio('Total', 4)],
    ioMergedRecursive: [blkio('Total', 5)],
    ioTimeRecursive: [blkio('Async', 6)],
    sectorsRecursive: [blkio('Sync', 7)],
  },
  rdma: {
    current: [{ device: 'mlx5_0', hcaHandles: 1, hcaObjects: 2 }],
    limit: [{ device: 'mlx5_0', hcaHandles: 10, hcaObjects: 20 }],
  },
  network: [
    {
      name: 'eth0',
      ...counters(
        ['rxBytes', 'rxPackets', 'rxErrors', 'rxDropped', 'txBytes', 'txPackets', 'txErrors', 'txDropped'] as const,
        1,
      ),
    },
  ],
  cgroupStats: counters(['nrSleeping', 'nrRunning', 'nrStopped', 'nrUninterruptible', 'nrIoWait'] as const, 1),
  memoryOomControl: { oomKillDisable: 1, underOom: 1, oomKill: 2 },
};

test('io.containerd.cgroups.v1.Metrics round-trips with every sub-message and field set', () => {
  assertRoundTrip(v1.Metrics, metrics);
});

test('v1 Metrics travel as io.containerd.cgroups.v1.Metrics and keep uint64 values beyond 2^53 exact', () => {
  const any = packAny('io.containerd.cgroups.v1.Metrics', metrics);
  assert.equal(any.type_url, 'io.containerd.cgroups.v1.Metrics');
  const back = unpackAnyAs(any, 'io.containerd.cgroups.v1.Metrics');
  assert.equal(int64ToBigInt(back.memory?.hierarchicalMemoryLimit), 9223372036854771712n);
  assert.equal(int64ToBigInt(back.memory?.usage?.limit), 9223372036854771712n);
  assert.deepEqual(
    (back.cpu?.usage?.perCpu ?? []).map((value) => int64ToBigInt(value)),
    [1_500_000_000n, 1_500_000_000n],
  );
});
