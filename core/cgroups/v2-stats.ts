/**
 * cgroup v2 metrics, read as containerd/cgroups cgroup2 `Manager.Stat` does
 * (manager.go Stat, utils.go getStatFileContentUint64, readIoStats, rdmaStats,
 * readHugeTlbStats, getStatPSIFromFile): cpu.stat and memory.stat only for controllers
 * listed in cgroup.controllers, single-value files read as 0 when missing or
 * malformed, and "max" as the largest uint64.
 * @internal
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { RuntimeError } from '../errors.js';
import {
  CgroupParseError,
  MAX_UINT64,
  hugePageSizes,
  isNotExist,
  readKVFile,
  parseUint,
  scanLines,
  toUint64,
} from './cgroupfs.js';
import type { PSIData, PSIStats, V2IOEntry, V2MemoryStat, V2Metrics } from './metrics.js';
import { parseRdmaEntries } from './v1-stats.js';

/** Where the v2 reader looks besides the cgroup directory (tests pin these). */
export interface V2StatOptions {
  /** Huge page sizes ("2MB", "1GB"). Default: from /sys/kernel/mm/hugepages. */
  readonly hugePageSizes?: readonly string[];
}

/** memory.stat keys of the proto's MemoryStat fields 1..31, in proto order. */
const MEMORY_STAT_KEYS: readonly (readonly [keyof V2MemoryStat, string])[] = [
  ['anon', 'anon'],
  ['file', 'file'],
  ['kernelStack', 'kernel_stack'],
  ['slab', 'slab'],
  ['sock', 'sock'],
  ['shmem', 'shmem'],
  ['fileMapped', 'file_mapped'],
  ['fileDirty', 'file_dirty'],
  ['fileWriteback', 'file_writeback'],
  ['anonThp', 'anon_thp'],
  ['inactiveAnon', 'inactive_anon'],
  ['activeAnon', 'active_anon'],
  ['inactiveFile', 'inactive_file'],
  ['activeFile', 'active_file'],
  ['unevictable', 'unevictable'],
  ['slabReclaimable', 'slab_reclaimable'],
  ['slabUnreclaimable', 'slab_unreclaimable'],
  ['pgfault', 'pgfault'],
  ['pgmajfault', 'pgmajfault'],
  ['workingsetRefault', 'workingset_refault'],
  ['workingsetActivate', 'workingset_activate'],
  ['workingsetNodereclaim', 'workingset_nodereclaim'],
  ['pgrefill', 'pgrefill'],
  ['pgscan', 'pgscan'],
  ['pgsteal', 'pgsteal'],
  ['pgactivate', 'pgactivate'],
  ['pgdeactivate', 'pgdeactivate'],
  ['pglazyfree', 'pglazyfree'],
  ['pglazyfreed', 'pglazyfreed'],
  ['thpFaultAlloc', 'thp_fault_alloc'],
  ['thpCollapseAlloc', 'thp_collapse_alloc'],
];

/**
 * Reads the metrics of the v2 cgroup at `dir` (an absolute cgroupfs directory).
 *
 * Throws {@link RuntimeError} `NotFound` when the cgroup does not exist, `Internal` when
 * cpu.stat, memory.stat or memory.events is malformed, or the file system error.
 */
export async function readV2Metrics(dir: string, options: V2StatOptions = {}): Promise<V2Metrics> {
  let controllers: string[];
  try {
    controllers = (await readFile(join(dir, 'cgroup.controllers'), 'utf8')).split(/\s+/).filter((c) => c !== '');
  } catch (error) {
    if (isNotExist(error)) throw new RuntimeError('NotFound', `cgroup ${dir} does not exist`, { cause: error });
    throw error;
  }
  try {
    return await readMetrics(dir, controllers, options);
  } catch (error) {
    if (error instanceof CgroupParseError) throw new RuntimeError('Internal', error.message, { cause: error });
    throw error;
  }
}

async function readMetrics(dir: string, controllers: readonly string[], options: V2StatOptions): Promise<V2Metrics> {
  const out = new Map<string, bigint>();
  for (const controller of controllers) {
    if (controller !== 'cpu' && controller !== 'memory') continue;
    try {
      for (const [key, value] of await readKVFile(join(dir, `${controller}.stat`))) out.set(key, value);
    } catch (error) {
      if (!isNotExist(error)) throw error;
    }
  }
  let memoryEvents = new Map<string, bigint>();
  try {
    memoryEvents = await readKVFile(join(dir, 'memory.events'));
  } catch (error) {
    if (!isNotExist(error)) throw error;
  }
  const stat = (key: string) => toUint64(out.get(key) ?? 0n);
  const single = async (name: string) => toUint64(await readSingleValue(join(dir, name)));
  const event = (key: string) => toUint64(memoryEvents.get(key) ?? 0n);

  const cpuPsi = await readPsi(join(dir, 'cpu.pressure'));
  const memory = {} as V2MemoryStat;
  for (const [field, key] of MEMORY_STAT_KEYS) (memory as Record<string, unknown>)[field] = stat(key);
  memory.usage = await single('memory.current');
  memory.usageLimit = await single('memory.max');
  memory.swapUsage = await single('memory.swap.current');
  memory.swapLimit = await single('memory.swap.max');
  memory.maxUsage = await single('memory.peak');
  memory.swapMaxUsage = await single('memory.swap.peak');
  const memoryPsi = await readPsi(join(dir, 'memory.pressure'));
  if (memoryPsi !== undefined) memory.psi = memoryPsi;

  const metrics: V2Metrics = {
    pids: { current: await single('pids.current'), limit: await single('pids.max') },
    cpu: {
      usageUsec: stat('usage_usec'),
      userUsec: stat('user_usec'),
      systemUsec: stat('system_usec'),
      nrPeriods: stat('nr_periods'),
      nrThrottled: stat('nr_throttled'),
      throttledUsec: stat('throttled_usec'),
      nrBursts: stat('nr_bursts'),
      burstUsec: stat('burst_usec'),
      ...(cpuPsi === undefined ? {} : { psi: cpuPsi }),
    },
    memory,
    rdma: {
      current: await readRdma(join(dir, 'rdma.current')),
      limit: await readRdma(join(dir, 'rdma.max')),
    },
    io: { usage: await readIoStat(join(dir, 'io.stat')) },
    hugetlb: [],
    network: [],
  };
  if (memoryEvents.size > 0) {
    metrics.memoryEvents = {
      low: event('low'),
      high: event('high'),
      max: event('max'),
      oom: event('oom'),
      oomKill: event('oom_kill'),
    };
  }
  const ioPsi = await readPsi(join(dir, 'io.pressure'));
  if (ioPsi !== undefined) metrics.io.psi = ioPsi;
  for (const pagesize of options.hugePageSizes ?? (await hugePageSizes())) {
    metrics.hugetlb.push({
      current: await single(`hugetlb.${pagesize}.current`),
      max: await single(`hugetlb.${pagesize}.max`),
      pagesize,
    });
  }
  return metrics;
}

/**
 * getStatFileContentUint64: the first 32 bytes, trimmed; "max" is the largest uint64;
 * a missing, unreadable or malformed file reads as 0.
 */
async function readSingleValue(path: string): Promise<bigint> {
  let text: string;
  try {
    text = (await readFile(path, 'utf8')).slice(0, 32).trim();
  } catch {
    return 0n;
  }
  if (text === 'max') return MAX_UINT64;
  try {
    return parseUint(text);
  } catch {
    return 0n;
  }
}

/** io.stat lines "major:minor rbytes=.. wbytes=.. rios=.. wios=.. dbytes=.. dios=..". */
async function readIoStat(path: string): Promise<V2IOEntry[]> {
  const usage: V2IOEntry[] = [];
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    return usage;
  }
  for (const line of text.split('\n')) {
    const parts = line.split(' ');
    if (parts.length < 2) continue;
    const devno = (parts[0] ?? '').split(':');
    if (devno.length !== 2) continue;
    const [major, minor] = devno as [string, string];
    // A malformed device number ends the list there, as in Go.
    if (!/^[0-9]+$/.test(major) || !/^[0-9]+$/.test(minor)) return usage;
    const entry: V2IOEntry = {
      major: toUint64(BigInt(major)),
      minor: toUint64(BigInt(minor)),
      rbytes: 0,
      wbytes: 0,
      rios: 0,
      wios: 0,
    };
    for (const kv of parts.slice(1)) {
      const pair = kv.split('=');
      if (pair.length !== 2) continue;
      const [key, raw] = pair as [string, string];
      if (!/^[0-9]+$/.test(raw) || BigInt(raw) > MAX_UINT64) continue;
      const value = toUint64(BigInt(raw));
      if (key === 'rbytes') entry.rbytes = value;
      else if (key === 'wbytes') entry.wbytes = value;
      else if (key === 'rios') entry.rios = value;
      else if (key === 'wios') entry.wios = value;
    }
    usage.push(entry);
  }
  return usage;
}

async function readRdma(path: string) {
  try {
    return parseRdmaEntries((await readFile(path, 'utf8')).split('\n'));
  } catch {
    return [];
  }
}

/**
 * A pressure file ("some avg10=0.00 avg60=0.00 avg300=0.00 total=0", then "full ...");
 * undefined when it is missing or malformed (Go logs and returns nil).
 */
async function readPsi(path: string): Promise<PSIStats | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    return undefined;
  }
  const psi: PSIStats = {};
  for (const line of scanLines(text)) {
    const [kind, ...values] = line.split(/\s+/).filter((part) => part !== '');
    if (kind !== 'some' && kind !== 'full') continue;
    const data: PSIData = { avg10: 0, avg60: 0, avg300: 0, total: 0 };
    for (const kv of values) {
      const at = kv.indexOf('=');
      if (at < 0) return undefined;
      const key = kv.slice(0, at);
      const raw = kv.slice(at + 1);
      if (key === 'total') {
        if (!/^[0-9]+$/.test(raw) || BigInt(raw) > MAX_UINT64) return undefined;
        data.total = toUint64(BigInt(raw));
      } else if (key === 'avg10' || key === 'avg60' || key === 'avg300') {
        const value = Number(raw);
        if (raw === '' || Number.isNaN(value)) return undefined;
        data[key] = value;
      }
    }
    psi[kind] = data;
  }
  return psi;
}
