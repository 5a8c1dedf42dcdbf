import { test } from 'node:test';
import assert from 'node:assert/strict';
import { int64FromBigInt, int64ToBigInt, io, packAny, unpackAnyAs } from './index.js';
import { assertRoundTrip, counters, fromHex, hex } from './testing.js';

const v2 = io.containerd.cgroups.v2;

const psi = (base: number) => ({
  some: { avg10: base + 0.25, avg60: base + 0.5, avg300: base + 0.75, total: base * 1000 + 1 },
  full: { avg10: base + 0.125, avg60: base + 0.375, avg300: base + 0.625, total: base * 1000 + 2 },
});

const metrics = {
  pids: { current: 7, limit: 4096 },
  cpu: {
    ...counters(
      [
        'usageUsec',
        'userUsec',
        'systemUsec',
        'nrPeriods',
        'nrThrottled',
        'throttledUsec',
        'nrBursts',
        'burstUsec',
      ] as const,
      100,
    ),
    psi: psi(1),
  },
  memory: {
    ...counters(
      [
        'anon',
        'file',
        'kernelStack',
        'slab',
        'sock',
        'shmem',
        'fileMapped',
        'fileDirty',
        'fileWriteback',
        'anonThp',
        'inactiveAnon',
        'activeAnon',
        'inactiveFile',
        'activeFile',
        'unevictable',
        'slabReclaimable',
        'slabUnreclaimable',
        'pgfault',
        'pgmajfault',
        'workingsetRefault',
        'workingsetActivate',
        'workingsetNodereclaim',
        'pgrefill',
        'pgscan',
        'pgsteal',
        'pgactivate',
        'pgdeactivate',
        'pglazyfree',
        'pglazyfreed',
        'thpFaultAlloc',
        'thpCollapseAlloc',
        'usage',
        'swapUsage',
        'maxUsage',
        'swapMaxUsage',
      ] as const,
      4096,
    ),
    // "max" in memory.max / memory.swap.max is reported as math.MaxUint64.
    usageLimit: int64FromBigInt(18446744073709551615n),
    swapLimit: int64FromBigInt(18446744073709551615n),
    psi: psi(2),
  },
  rdma: {
    current: [{ device: 'mlx5_0', hcaHandles: 1, hcaObjects: 2 }],
    limit: [{ device: 'mlx5_0', hcaHandles: 10, hcaObjects: 20 }],
  },
  io: {
    usage: [{ major: 254, minor: 16, rbytes: 4096, wbytes: 8192, rios: 1, wios: 2 }],
    psi: psi(3),
  },
  hugetlb: [{ current: 1, max: 2, pagesize: '2MB' }],
  memoryEvents: { low: 1, high: 2, max: 3, oom: 4, oomKill: 5 },
  network: [
    {
      name: 'eth0',
      ...counters(
        ['rxBytes', 'rxPackets', 'rxErrors', 'rxDropped', 'txBytes', 'txPackets', 'txErrors', 'txDropped'] as const,
        1,
      ),
    },
  ],
};

test('io.containerd.cgroups.v2.Metrics round-trips with every sub-message and field set', () => {
  assertRoundTrip(v2.Metrics, metrics);
});

test('v2 Metrics travel as io.containerd.cgroups.v2.Metrics and keep math.MaxUint64 exact', () => {
  const any = packAny('io.containerd.cgroups.v2.Metrics', metrics);
  assert.equal(any.type_url, 'io.containerd.cgroups.v2.Metrics');
  const back = unpackAnyAs(any, 'io.containerd.cgroups.v2.Metrics');
  assert.equal(int64ToBigInt(back.memory?.usageLimit), 18446744073709551615n);
  assert.equal(back.cpu?.psi?.some?.avg10, 1.25);
});

test('PSI averages are doubles (fixed64 wire type) and MemoryStat.psi is field 38', () => {
  // PSIData{avg10: 1.5}: tag 0x09 (field 1, wire type 1), then the IEEE-754 little-endian double.
  assert.equal(hex(v2.PSIData.encode({ avg10: 1.5 }).finish()), '09000000000000f83f');
  // MemoryStat{psi: {}}: field 38, wire type 2 -> tag varint b2 02, length 0.
  assert.equal(hex(v2.MemoryStat.encode({ psi: {} }).finish()), 'b20200');
  assert.deepEqual(v2.MemoryStat.decode(fromHex('b2 02 00')).psi, v2.PSIStats.create());
});
