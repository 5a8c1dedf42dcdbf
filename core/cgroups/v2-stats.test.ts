// cgroup v2 metrics parsing, pinned against recorded cgroupfs trees (testdata/README.md):
// what containerd's cgroup2 Manager.Stat would report for the same files.
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { RuntimeError } from '../errors.js';
import { TESTDATA, copyFixture } from './fixture-tree.js';
import type { V2Metrics } from './metrics.js';
import { readV2Metrics } from './v2-stats.js';

const MAX_UINT64 = '18446744073709551615';
const UNLIMITED = '9223372036854771712';

/** Exactly what testdata/v2/container holds. */
const CONTAINER: V2Metrics = {
  pids: { current: 2, limit: MAX_UINT64 },
  cpu: {
    usageUsec: 2839517,
    userUsec: 2012044,
    systemUsec: 827473,
    nrPeriods: 1186,
    nrThrottled: 212,
    throttledUsec: 9812345,
    nrBursts: 3,
    burstUsec: 41250,
    psi: {
      some: { avg10: 1.52, avg60: 0.87, avg300: 0.21, total: 3318852 },
      full: { avg10: 0.91, avg60: 0.44, avg300: 0.1, total: 1822461 },
    },
  },
  memory: {
    anon: 8404992,
    file: 21434368,
    kernelStack: 98304,
    slab: 1418736,
    sock: 4096,
    shmem: 4096,
    fileMapped: 10108928,
    fileDirty: 8192,
    fileWriteback: 0,
    anonThp: 2097152,
    inactiveAnon: 8339456,
    activeAnon: 69632,
    inactiveFile: 13217792,
    activeFile: 8212480,
    unevictable: 0,
    slabReclaimable: 1115008,
    slabUnreclaimable: 303728,
    pgfault: 24331,
    pgmajfault: 57,
    // Since Linux 5.9 memory.stat splits these into *_anon/*_file: containerd reads 0.
    workingsetRefault: 0,
    workingsetActivate: 0,
    workingsetNodereclaim: 0,
    pgrefill: 211,
    pgscan: 1024,
    pgsteal: 1003,
    pgactivate: 2161,
    pgdeactivate: 198,
    pglazyfree: 0,
    pglazyfreed: 0,
    thpFaultAlloc: 1,
    thpCollapseAlloc: 0,
    usage: 30380032,
    usageLimit: 536870912,
    swapUsage: 1048576,
    swapLimit: MAX_UINT64,
    maxUsage: 41943040,
    swapMaxUsage: 2097152,
    psi: {
      some: { avg10: 0, avg60: 0.31, avg300: 0.09, total: 514003 },
      full: { avg10: 0, avg60: 0.29, avg300: 0.08, total: 498713 },
    },
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
  io: {
    usage: [
      { major: 254, minor: 0, rbytes: 17289216, wbytes: 16777216, rios: 49, wios: 32 },
      { major: 7, minor: 0, rbytes: 1118208, wbytes: 0, rios: 89, wios: 0 },
    ],
    psi: {
      some: { avg10: 0, avg60: 0.12, avg300: 0.05, total: 220918 },
      full: { avg10: 0, avg60: 0.11, avg300: 0.04, total: 208112 },
    },
  },
  hugetlb: [
    { current: 0, max: UNLIMITED, pagesize: '1GB' },
    { current: 8388608, max: UNLIMITED, pagesize: '2MB' },
  ],
  memoryEvents: { low: 0, high: 0, max: 1203, oom: 2, oomKill: 2 },
  network: [],
};

const PSI_ZERO = { avg10: 0, avg60: 0, avg300: 0, total: 0 };

describe('cgroup v2 metrics from recorded trees', () => {
  test('a container cgroup with every controller parses exactly', async () => {
    const metrics = await readV2Metrics(join(TESTDATA, 'v2', 'container'), { hugePageSizes: ['1GB', '2MB'] });
    assert.deepEqual(metrics, CONTAINER);
  });

  test('a cgroup recorded on this host (only hugetlb enabled): cpu.stat is not read, missing files read as 0', async () => {
    const metrics = await readV2Metrics(join(TESTDATA, 'v2', 'recorded'), { hugePageSizes: ['1GB', '2MB'] });
    const zeroMemory = Object.fromEntries(
      Object.keys(CONTAINER.memory)
        .filter((k) => k !== 'psi')
        .map((k) => [k, 0]),
    );
    assert.deepEqual(metrics, {
      pids: { current: 0, limit: 0 },
      cpu: {
        // cpu.stat holds usage_usec 1111930 here, but "cpu" is not in cgroup.controllers:
        // containerd reads cpu.stat only for enabled controllers.
        usageUsec: 0,
        userUsec: 0,
        systemUsec: 0,
        nrPeriods: 0,
        nrThrottled: 0,
        throttledUsec: 0,
        nrBursts: 0,
        burstUsec: 0,
        psi: {
          some: { avg10: 0.14, avg60: 0.03, avg300: 0, total: 47741 },
          full: { avg10: 0.14, avg60: 0.03, avg300: 0, total: 47741 },
        },
      },
      memory: { ...zeroMemory, psi: { some: PSI_ZERO, full: PSI_ZERO } },
      rdma: { current: [], limit: [] },
      io: { usage: [], psi: { some: PSI_ZERO, full: PSI_ZERO } },
      hugetlb: [
        { current: 0, max: UNLIMITED, pagesize: '1GB' },
        { current: 0, max: UNLIMITED, pagesize: '2MB' },
      ],
      network: [],
    });
  });

  test('memoryEvents is absent without memory.events; psi is absent without pressure files', async () => {
    const fixture = copyFixture('v2/container');
    try {
      for (const name of ['memory.events', 'cpu.pressure', 'memory.pressure', 'io.pressure'])
        rmSync(join(fixture.dir, name));
      const metrics = await readV2Metrics(fixture.dir, { hugePageSizes: [] });
      assert.equal('memoryEvents' in metrics, false);
      assert.equal('psi' in metrics.cpu, false);
      assert.equal('psi' in metrics.memory, false);
      assert.equal('psi' in metrics.io, false);
      assert.deepEqual(metrics.hugetlb, []);
    } finally {
      fixture.dispose();
    }
  });

  test('single-value files: "max" is the largest uint64, garbage reads as 0', async () => {
    const fixture = copyFixture('v2/container');
    try {
      writeFileSync(join(fixture.dir, 'memory.max'), 'max\n');
      writeFileSync(join(fixture.dir, 'pids.current'), 'garbage\n');
      const metrics = await readV2Metrics(fixture.dir, { hugePageSizes: [] });
      assert.equal(metrics.memory.usageLimit, MAX_UINT64);
      assert.equal(metrics.pids.current, 0);
    } finally {
      fixture.dispose();
    }
  });

  test('a malformed memory.stat fails the read with Internal', async () => {
    const fixture = copyFixture('v2/container');
    try {
      writeFileSync(join(fixture.dir, 'memory.stat'), 'anon 1\nfile\n');
      await assert.rejects(
        readV2Metrics(fixture.dir, { hugePageSizes: [] }),
        (error: unknown) => error instanceof RuntimeError && error.code === 'Internal',
      );
    } finally {
      fixture.dispose();
    }
  });

  test('a cgroup that does not exist is NotFound', async () => {
    await assert.rejects(
      readV2Metrics(join(TESTDATA, 'v2', 'no-such-cgroup')),
      (error: unknown) => error instanceof RuntimeError && error.code === 'NotFound',
    );
  });
});
