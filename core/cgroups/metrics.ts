/**
 * Plain-object shapes of containerd's cgroups metrics messages, field for field in
 * protobufjs's camelCase, so shim/ hands them to `Metrics.fromObject` unchanged:
 * - v1: `io.containerd.cgroups.v1.Metrics` (containerd/cgroups cgroup1/stats/metrics.proto)
 * - v2: `io.containerd.cgroups.v2.Metrics` (containerd/cgroups cgroup2/stats/metrics.proto)
 *
 * Every uint64 is a {@link Uint64}. Scalars are always present (0 when the kernel file
 * is missing, as in Go); a message field is absent exactly when containerd leaves its
 * pointer nil; repeated fields are arrays, possibly empty.
 */

/**
 * A uint64: a number when it is at most 2^53 - 1 (so exact), else its decimal string.
 * Large values are real: v1 "unlimited" is 9223372036854771712 and v2 "max" is
 * 18446744073709551615. protobufjs's fromObject and encode take both forms exactly.
 * `BigInt(value)` turns either into a bigint.
 */
export type Uint64 = number | string;

// ---------------------------------------------------------------- cgroup v1

export type V1HugetlbStat = { usage: Uint64; max: Uint64; failcnt: Uint64; pagesize: string };
export type V1PidsStat = { current: Uint64; limit: Uint64 };
export type V1CpuUsage = { total: Uint64; kernel: Uint64; user: Uint64; perCpu: Uint64[] };
export type V1Throttle = { periods: Uint64; throttledPeriods: Uint64; throttledTime: Uint64 };
export type V1CpuStat = { usage: V1CpuUsage; throttling: V1Throttle };
export type V1MemoryEntry = { limit: Uint64; usage: Uint64; max: Uint64; failcnt: Uint64 };
export type V1MemoryStat = {
  cache: Uint64;
  rss: Uint64;
  rssHuge: Uint64;
  mappedFile: Uint64;
  dirty: Uint64;
  writeback: Uint64;
  pgPgIn: Uint64;
  pgPgOut: Uint64;
  pgFault: Uint64;
  pgMajFault: Uint64;
  inactiveAnon: Uint64;
  activeAnon: Uint64;
  inactiveFile: Uint64;
  activeFile: Uint64;
  unevictable: Uint64;
  hierarchicalMemoryLimit: Uint64;
  hierarchicalSwapLimit: Uint64;
  totalCache: Uint64;
  totalRss: Uint64;
  totalRssHuge: Uint64;
  totalMappedFile: Uint64;
  totalDirty: Uint64;
  totalWriteback: Uint64;
  totalPgPgIn: Uint64;
  totalPgPgOut: Uint64;
  totalPgFault: Uint64;
  totalPgMajFault: Uint64;
  totalInactiveAnon: Uint64;
  totalActiveAnon: Uint64;
  totalInactiveFile: Uint64;
  totalActiveFile: Uint64;
  totalUnevictable: Uint64;
  usage: V1MemoryEntry;
  swap: V1MemoryEntry;
  kernel: V1MemoryEntry;
  kernelTcp: V1MemoryEntry;
};
export type V1MemoryOomControl = { oomKillDisable: Uint64; underOom: Uint64; oomKill: Uint64 };
export type V1BlkIOEntry = { op: string; device: string; major: Uint64; minor: Uint64; value: Uint64 };
export type V1BlkIOStat = {
  ioServiceBytesRecursive: V1BlkIOEntry[];
  ioServicedRecursive: V1BlkIOEntry[];
  ioQueuedRecursive: V1BlkIOEntry[];
  ioServiceTimeRecursive: V1BlkIOEntry[];
  ioWaitTimeRecursive: V1BlkIOEntry[];
  ioMergedRecursive: V1BlkIOEntry[];
  ioTimeRecursive: V1BlkIOEntry[];
  sectorsRecursive: V1BlkIOEntry[];
};
/** hcaHandles/hcaObjects are uint32 in the proto: plain numbers. */
export type RdmaEntry = { device: string; hcaHandles: number; hcaObjects: number };
export type RdmaStat = { current: RdmaEntry[]; limit: RdmaEntry[] };

/**
 * `io.containerd.cgroups.v1.Metrics`. containerd never fills `network` or
 * `cgroupStats` from cgroupfs; they are left empty/absent here too.
 */
export type V1Metrics = {
  hugetlb: V1HugetlbStat[];
  pids?: V1PidsStat;
  cpu: V1CpuStat;
  memory?: V1MemoryStat;
  blkio?: V1BlkIOStat;
  rdma?: RdmaStat;
  network: never[];
  memoryOomControl?: V1MemoryOomControl;
};

// ---------------------------------------------------------------- cgroup v2

/** Pressure stall information: averages are percentages (doubles), total is microseconds. */
export type PSIData = { avg10: number; avg60: number; avg300: number; total: Uint64 };
export type PSIStats = { some?: PSIData; full?: PSIData };
export type V2PidsStat = { current: Uint64; limit: Uint64 };
export type V2CpuStat = {
  usageUsec: Uint64;
  userUsec: Uint64;
  systemUsec: Uint64;
  nrPeriods: Uint64;
  nrThrottled: Uint64;
  throttledUsec: Uint64;
  psi?: PSIStats;
  nrBursts: Uint64;
  burstUsec: Uint64;
};
export type V2MemoryStat = {
  anon: Uint64;
  file: Uint64;
  kernelStack: Uint64;
  slab: Uint64;
  sock: Uint64;
  shmem: Uint64;
  fileMapped: Uint64;
  fileDirty: Uint64;
  fileWriteback: Uint64;
  anonThp: Uint64;
  inactiveAnon: Uint64;
  activeAnon: Uint64;
  inactiveFile: Uint64;
  activeFile: Uint64;
  unevictable: Uint64;
  slabReclaimable: Uint64;
  slabUnreclaimable: Uint64;
  pgfault: Uint64;
  pgmajfault: Uint64;
  workingsetRefault: Uint64;
  workingsetActivate: Uint64;
  workingsetNodereclaim: Uint64;
  pgrefill: Uint64;
  pgscan: Uint64;
  pgsteal: Uint64;
  pgactivate: Uint64;
  pgdeactivate: Uint64;
  pglazyfree: Uint64;
  pglazyfreed: Uint64;
  thpFaultAlloc: Uint64;
  thpCollapseAlloc: Uint64;
  usage: Uint64;
  usageLimit: Uint64;
  swapUsage: Uint64;
  swapLimit: Uint64;
  maxUsage: Uint64;
  swapMaxUsage: Uint64;
  psi?: PSIStats;
};
export type V2MemoryEvents = { low: Uint64; high: Uint64; max: Uint64; oom: Uint64; oomKill: Uint64 };
export type V2IOEntry = { major: Uint64; minor: Uint64; rbytes: Uint64; wbytes: Uint64; rios: Uint64; wios: Uint64 };
export type V2IOStat = { usage: V2IOEntry[]; psi?: PSIStats };
export type V2HugeTlbStat = { current: Uint64; max: Uint64; pagesize: string };

/** `io.containerd.cgroups.v2.Metrics`; `memoryEvents` is absent when memory.events is missing or empty. */
export type V2Metrics = {
  pids: V2PidsStat;
  cpu: V2CpuStat;
  memory: V2MemoryStat;
  rdma: RdmaStat;
  io: V2IOStat;
  hugetlb: V2HugeTlbStat[];
  memoryEvents?: V2MemoryEvents;
  network: never[];
};
