/**
 * cgroup v1 metrics, read from the same files, in the same units and with the same
 * error handling as containerd/cgroups cgroup1 `Stat(IgnoreNotExist)` (pids.go, cpu.go,
 * cpuacct.go, memory.go, blkio.go, rdma.go, hugetlb.go), which is what containerd's
 * runc shim returns from Stats.
 *
 * IgnoreNotExist semantics, kept on purpose: each controller reads its files in a
 * fixed order, and the first missing file ends that controller's reading silently,
 * keeping what it filled so far (e.g. without swap accounting, memory.memsw.* is
 * missing, so `memory.swap`, `memory.kernel` and `memory.kernelTcp` stay zero). Any
 * other error (a malformed file, EACCES) fails the whole read, as in Go.
 * @internal
 */
import { lstat, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { RuntimeError } from '../errors.js';
import {
  CgroupParseError,
  fields,
  hugePageSizes,
  isNotExist,
  parseKV,
  parseUint,
  scanLines,
  toUint64,
} from './cgroupfs.js';
import type { RdmaEntry, V1BlkIOEntry, V1BlkIOStat, V1MemoryEntry, V1MemoryStat, V1Metrics } from './metrics.js';

/** Where the v1 reader looks besides the cgroup directories (tests point these at recorded trees). */
export interface V1StatOptions {
  /** Holds `partitions` for blkio device names. Default `/proc`. */
  readonly procRoot?: string;
  /** Huge page sizes ("2MB", "1GB"). Default: from /sys/kernel/mm/hugepages. */
  readonly hugePageSizes?: readonly string[];
}

/** Every v1 controller containerd's default hierarchy knows, in its order. */
const KNOWN_CONTROLLERS = [
  'systemd',
  'freezer',
  'pids',
  'net_cls',
  'net_prio',
  'perf_event',
  'cpuset',
  'cpu',
  'cpuacct',
  'memory',
  'blkio',
  'rdma',
  'devices',
  'hugetlb',
] as const;

/** cpuacct.stat counts in USER_HZ, which is 100 on Linux (containerd hard-codes it too). */
const CLOCK_TICKS = 100n;
const NANOSECONDS_PER_SECOND = 1_000_000_000n;

/**
 * Reads the metrics of one v1 cgroup. `paths` maps controller names (as in
 * /proc/<pid>/cgroup: "memory", "cpu", "name=systemd") to absolute directories.
 *
 * Throws {@link RuntimeError} `NotFound` when none of the directories exists (the
 * cgroup was deleted), `Internal` for a malformed file, or the file system error.
 */
export async function readV1Metrics(
  paths: ReadonlyMap<string, string>,
  options: V1StatOptions = {},
): Promise<V1Metrics> {
  const active = new Map<string, string>();
  for (const name of KNOWN_CONTROLLERS) {
    const dir = paths.get(name) ?? paths.get(`name=${name}`);
    if (dir === undefined) continue;
    try {
      await lstat(dir);
      active.set(name, dir);
    } catch (error) {
      if (!isNotExist(error)) throw error;
    }
  }
  if (active.size === 0) {
    throw new RuntimeError(
      'NotFound',
      `cgroup is deleted: none of its directories exists (${[...paths.values()].join(', ')})`,
    );
  }

  const metrics: V1Metrics = {
    hugetlb: [],
    cpu: {
      usage: { total: 0, kernel: 0, user: 0, perCpu: [] },
      throttling: { periods: 0, throttledPeriods: 0, throttledTime: 0 },
    },
    network: [],
  };
  const readers: Record<string, (dir: string) => Promise<void>> = {
    pids: (dir) => readPids(dir, metrics),
    cpu: (dir) => readCpu(dir, metrics),
    cpuacct: (dir) => readCpuacct(dir, metrics),
    memory: (dir) => readMemory(dir, metrics),
    blkio: (dir) => readBlkio(dir, options.procRoot ?? '/proc', metrics),
    rdma: (dir) => readRdma(dir, metrics),
    hugetlb: async (dir) => readHugetlb(dir, options.hugePageSizes ?? (await hugePageSizes()), metrics),
  };
  // Controllers fill disjoint fields, so they run concurrently as in Go.
  const results = await Promise.allSettled(
    [...active].flatMap(([name, dir]) => {
      const reader = readers[name];
      return reader === undefined ? [] : [reader(dir)];
    }),
  );
  for (const result of results) {
    if (result.status === 'rejected' && !isNotExist(result.reason)) throw asRuntimeError(result.reason);
  }
  return metrics;
}

function asRuntimeError(error: unknown): unknown {
  if (error instanceof CgroupParseError) return new RuntimeError('Internal', error.message, { cause: error });
  return error;
}

/** cgroup1 readUint: the first 32 bytes, trimmed; "max" reads as 0 (containerd keeps that for compatibility). */
async function readUint(path: string): Promise<bigint> {
  const text = (await readFile(path, 'utf8')).slice(0, 32).trim();
  if (text === 'max') return 0n;
  return parseUint(text);
}

async function readPids(dir: string, metrics: V1Metrics): Promise<void> {
  const current = await readUint(join(dir, 'pids.current'));
  const maxText = (await readFile(join(dir, 'pids.max'), 'utf8')).trim();
  const limit = maxText === 'max' ? 0n : parseUint(maxText);
  metrics.pids = { current: toUint64(current), limit: toUint64(limit) };
}

async function readCpu(dir: string, metrics: V1Metrics): Promise<void> {
  const text = await readFile(join(dir, 'cpu.stat'), 'utf8');
  for (const line of scanLines(text)) {
    const [key, value] = parseKV(line);
    if (key === 'nr_periods') metrics.cpu.throttling.periods = toUint64(value);
    else if (key === 'nr_throttled') metrics.cpu.throttling.throttledPeriods = toUint64(value);
    else if (key === 'throttled_time') metrics.cpu.throttling.throttledTime = toUint64(value);
  }
}

async function readCpuacct(dir: string, metrics: V1Metrics): Promise<void> {
  const statPath = join(dir, 'cpuacct.stat');
  const raw = new Map(scanLines(await readFile(statPath, 'utf8')).map(parseKV));
  const user = raw.get('user');
  const system = raw.get('system');
  if (user === undefined) throw new CgroupParseError(`expected field "user" but not found in "${statPath}"`);
  if (system === undefined) throw new CgroupParseError(`expected field "system" but not found in "${statPath}"`);
  const total = await readUint(join(dir, 'cpuacct.usage'));
  const perCpu = fields(await readFile(join(dir, 'cpuacct.usage_percpu'), 'utf8')).map((v) => toUint64(parseUint(v)));
  const usage = metrics.cpu.usage;
  usage.total = toUint64(total);
  // Ticks to nanoseconds, integer division as in Go.
  usage.user = toUint64((user * NANOSECONDS_PER_SECOND) / CLOCK_TICKS);
  usage.kernel = toUint64((system * NANOSECONDS_PER_SECOND) / CLOCK_TICKS);
  usage.perCpu = perCpu;
}

const emptyEntry = (): V1MemoryEntry => ({ limit: 0, usage: 0, max: 0, failcnt: 0 });

/** memory.stat keys of the proto's MemoryStat, in proto order. */
const MEMORY_STAT_KEYS: readonly (readonly [keyof V1MemoryStat, string])[] = [
  ['cache', 'cache'],
  ['rss', 'rss'],
  ['rssHuge', 'rss_huge'],
  ['mappedFile', 'mapped_file'],
  ['dirty', 'dirty'],
  ['writeback', 'writeback'],
  ['pgPgIn', 'pgpgin'],
  ['pgPgOut', 'pgpgout'],
  ['pgFault', 'pgfault'],
  ['pgMajFault', 'pgmajfault'],
  ['inactiveAnon', 'inactive_anon'],
  ['activeAnon', 'active_anon'],
  ['inactiveFile', 'inactive_file'],
  ['activeFile', 'active_file'],
  ['unevictable', 'unevictable'],
  ['hierarchicalMemoryLimit', 'hierarchical_memory_limit'],
  ['hierarchicalSwapLimit', 'hierarchical_memsw_limit'],
  ['totalCache', 'total_cache'],
  ['totalRss', 'total_rss'],
  ['totalRssHuge', 'total_rss_huge'],
  ['totalMappedFile', 'total_mapped_file'],
  ['totalDirty', 'total_dirty'],
  ['totalWriteback', 'total_writeback'],
  ['totalPgPgIn', 'total_pgpgin'],
  ['totalPgPgOut', 'total_pgpgout'],
  ['totalPgFault', 'total_pgfault'],
  ['totalPgMajFault', 'total_pgmajfault'],
  ['totalInactiveAnon', 'total_inactive_anon'],
  ['totalActiveAnon', 'total_active_anon'],
  ['totalInactiveFile', 'total_inactive_file'],
  ['totalActiveFile', 'total_active_file'],
  ['totalUnevictable', 'total_unevictable'],
];

async function readMemory(dir: string, metrics: V1Metrics): Promise<void> {
  const statText = await readFile(join(dir, 'memory.stat'), 'utf8');
  const raw = new Map<string, bigint>();
  scanLines(statText).forEach((line, index) => {
    try {
      const [key, value] = parseKV(line);
      raw.set(key, value);
    } catch (error) {
      throw new CgroupParseError(`${index}: ${(error as Error).message}`);
    }
  });
  const memory = {
    usage: emptyEntry(),
    swap: emptyEntry(),
    kernel: emptyEntry(),
    kernelTcp: emptyEntry(),
  } as V1MemoryStat;
  for (const [field, key] of MEMORY_STAT_KEYS) {
    (memory as Record<string, unknown>)[field] = toUint64(raw.get(key) ?? 0n);
  }
  metrics.memory = memory;

  const oom = new Map(scanLines(await readFile(join(dir, 'memory.oom_control'), 'utf8')).map(parseKV));
  metrics.memoryOomControl = {
    oomKillDisable: toUint64(oom.get('oom_kill_disable') ?? 0n),
    underOom: toUint64(oom.get('under_oom') ?? 0n),
    oomKill: toUint64(oom.get('oom_kill') ?? 0n),
  };

  const modules: readonly (readonly [string, V1MemoryEntry])[] = [
    ['', memory.usage],
    ['memsw', memory.swap],
    ['kmem', memory.kernel],
    ['kmem.tcp', memory.kernelTcp],
  ];
  for (const [module, entry] of modules) {
    const prefix = module === '' ? 'memory.' : `memory.${module}.`;
    entry.usage = toUint64(await readUint(join(dir, `${prefix}usage_in_bytes`)));
    entry.max = toUint64(await readUint(join(dir, `${prefix}max_usage_in_bytes`)));
    entry.failcnt = toUint64(await readUint(join(dir, `${prefix}failcnt`)));
    entry.limit = toUint64(await readUint(join(dir, `${prefix}limit_in_bytes`)));
  }
}

async function readBlkio(dir: string, procRoot: string, metrics: V1Metrics): Promise<void> {
  const blkio: V1BlkIOStat = {
    ioServiceBytesRecursive: [],
    ioServicedRecursive: [],
    ioQueuedRecursive: [],
    ioServiceTimeRecursive: [],
    ioWaitTimeRecursive: [],
    ioMergedRecursive: [],
    ioTimeRecursive: [],
    sectorsRecursive: [],
  };
  metrics.blkio = blkio;

  // CFQ statistics when the kernel has them, else the throttle files (which count every device).
  let settings: (readonly [string, V1BlkIOEntry[]])[] = [];
  const hasCfq = await lstat(join(dir, 'blkio.io_serviced_recursive')).then(
    () => true,
    () => false,
  );
  if (hasCfq) {
    settings = [
      ['sectors_recursive', blkio.sectorsRecursive],
      ['io_service_bytes_recursive', blkio.ioServiceBytesRecursive],
      ['io_serviced_recursive', blkio.ioServicedRecursive],
      ['io_queued_recursive', blkio.ioQueuedRecursive],
      ['io_service_time_recursive', blkio.ioServiceTimeRecursive],
      ['io_wait_time_recursive', blkio.ioWaitTimeRecursive],
      ['io_merged_recursive', blkio.ioMergedRecursive],
      ['time_recursive', blkio.ioTimeRecursive],
    ];
  }
  const devices = parsePartitions(await readFile(join(procRoot, 'partitions'), 'utf8'));
  let size = 0;
  for (const [name, entries] of settings) {
    await readBlkioEntries(join(dir, `blkio.${name}`), devices, entries);
    size += entries.length;
  }
  if (size > 0) return;
  // The cgroup may not use CFQ-scheduled devices at all: fall back to throttle.*.
  await readBlkioEntries(join(dir, 'blkio.throttle.io_serviced'), devices, blkio.ioServicedRecursive);
  await readBlkioEntries(join(dir, 'blkio.throttle.io_service_bytes'), devices, blkio.ioServiceBytesRecursive);
}

/** /proc/partitions: "major minor #blocks name" after a header and a blank line; the first name per device wins. */
function parsePartitions(text: string): Map<string, string> {
  const devices = new Map<string, string>();
  scanLines(text).forEach((line, index) => {
    if (index < 2) return;
    const [major, minor, , name] = fields(line);
    if (major === undefined || minor === undefined || !/^[0-9]+$/.test(major) || !/^[0-9]+$/.test(minor)) {
      throw new CgroupParseError(`invalid /proc/partitions line "${line}"`);
    }
    const key = `${BigInt(major)}:${BigInt(minor)}`;
    if (!devices.has(key)) devices.set(key, `/dev/${name ?? ''}`);
  });
  return devices;
}

/** Lines "major:minor [op] value" (and a "Total n" line, skipped). */
async function readBlkioEntries(
  path: string,
  devices: ReadonlyMap<string, string>,
  out: V1BlkIOEntry[],
): Promise<void> {
  const text = await readFile(path, 'utf8');
  for (const line of scanLines(text)) {
    const parts = line.split(/[ :]/).filter((part) => part !== '');
    if (parts.length < 3) {
      if (parts.length === 2 && parts[0] === 'Total') continue;
      throw new CgroupParseError(`invalid line found while parsing ${path}: ${line}`);
    }
    const major = parseStrictUint(parts[0]);
    const minor = parseStrictUint(parts[1]);
    const op = parts.length === 4 ? (parts[2] ?? '') : '';
    const value = parseStrictUint(parts.length === 4 ? parts[3] : parts[2]);
    out.push({
      op,
      device: devices.get(`${major}:${minor}`) ?? '',
      major: toUint64(major),
      minor: toUint64(minor),
      value: toUint64(value),
    });
  }
}

/** strconv.ParseUint without containerd's negative-as-zero leniency. */
function parseStrictUint(text: string | undefined): bigint {
  if (text === undefined || !/^[0-9]+$/.test(text) || BigInt(text) >= 1n << 64n) {
    throw new CgroupParseError(`invalid unsigned integer "${text ?? ''}"`);
  }
  return BigInt(text);
}

async function readRdma(dir: string, metrics: V1Metrics): Promise<void> {
  const current = (await readFile(join(dir, 'rdma.current'), 'utf8')).split('\n');
  const max = (await readFile(join(dir, 'rdma.max'), 'utf8')).split('\n');
  // A device removed between the two reads: no rdma stats this time (as in Go).
  if (current.length !== max.length) return;
  metrics.rdma = { current: parseRdmaEntries(current), limit: parseRdmaEntries(max) };
}

/** Lines "<device> hca_handle=<n|max> hca_object=<n|max>"; others are skipped. Shared with v2. */
export function parseRdmaEntries(lines: readonly string[]): RdmaEntry[] {
  const entries: RdmaEntry[] = [];
  for (const line of lines) {
    const parts = fields(line);
    const [device, first, second] = parts;
    if (parts.length !== 3 || device === undefined || first === undefined || second === undefined) continue;
    const entry: RdmaEntry = { device, hcaHandles: 0, hcaObjects: 0 };
    for (const kv of [first, second]) {
      const pair = kv.split('=');
      if (pair.length !== 2) continue;
      const [key, raw] = pair as [string, string];
      let value: number;
      if (raw === 'max') {
        value = 0xffffffff;
      } else {
        try {
          value = Number(parseUint(raw, 32));
        } catch {
          continue;
        }
      }
      if (key === 'hca_handle') entry.hcaHandles = value;
      else if (key === 'hca_object') entry.hcaObjects = value;
    }
    entries.push(entry);
  }
  return entries;
}

async function readHugetlb(dir: string, sizes: readonly string[], metrics: V1Metrics): Promise<void> {
  for (const pagesize of sizes) {
    const prefix = join(dir, `hugetlb.${pagesize}.`);
    const usage = await readUint(`${prefix}usage_in_bytes`);
    const max = await readUint(`${prefix}max_usage_in_bytes`);
    const failcnt = await readUint(`${prefix}failcnt`);
    metrics.hugetlb.push({ usage: toUint64(usage), max: toUint64(max), failcnt: toUint64(failcnt), pagesize });
  }
}
