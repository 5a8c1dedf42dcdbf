/**
 * Container cgroups: where a process's cgroup is, its metrics as containerd's cgroups
 * Metrics messages, and OOM-kill notifications. cgroup v1 (this host: v1 controllers
 * plus a cgroup2 at /sys/fs/cgroup/unified, i.e. hybrid) and v2 (unified).
 *
 * Metrics objects map 1:1 onto `io.containerd.cgroups.v1.Metrics` /
 * `io.containerd.cgroups.v2.Metrics` in protobufjs camelCase; uint64 values are
 * numbers when exact and decimal strings above 2^53 - 1 (see {@link Uint64}).
 */
import { readFileSync } from 'node:fs';
import type { Native } from '../../native/facade.js';
import type { ContainerStats, Logger } from '../api.js';
import { parseMountInfo } from '../mount.js';
import { RuntimeError } from '../errors.js';
import { resolveCgroupRef, type CgroupRef } from './cgroup-ref.js';
import { isNotExist } from './cgroupfs.js';
import { watchOomV1, type OomWatcher } from './oom-v1.js';
import { watchOomV2 } from './oom-v2.js';
import { readV1Metrics } from './v1-stats.js';
import { readV2Metrics } from './v2-stats.js';

export type { CgroupRef } from './cgroup-ref.js';
export type { OomWatcher } from './oom-v1.js';
export type { Uint64, V1Metrics, V2Metrics } from './metrics.js';

/**
 * The cgroup of process `pid`, from /proc/<pid>/cgroup and this process's
 * /proc/self/mountinfo. A host with v1 controllers mounted (hybrid included) gives a
 * v1 ref with every mounted controller's directory; a process whose only line is
 * "0::<path>" gives the v2 directory.
 *
 * Both are procfs files, read synchronously: a read of one never waits for a disk, and
 * the thread pool's two round trips cost about 2 ms of every Create on this 2-core box.
 *
 * Throws {@link RuntimeError} `NotFound` when the process does not exist, or
 * `FailedPrecondition` when none of its cgroups is mounted in this mount namespace.
 */
export function cgroupOfPid(pid: number): CgroupRef {
  let cgroupFile: string;
  try {
    cgroupFile = readFileSync(`/proc/${pid}/cgroup`, 'utf8');
  } catch (error) {
    if (isNotExist(error) || (error as NodeJS.ErrnoException).code === 'ESRCH') {
      throw new RuntimeError('NotFound', `process ${pid} does not exist: cannot find its cgroup`, { cause: error });
    }
    throw error;
  }
  const mounts = parseMountInfo(readFileSync('/proc/self/mountinfo', 'utf8'));
  const ref = resolveCgroupRef(cgroupFile, mounts);
  if (ref === undefined) {
    throw new RuntimeError(
      'FailedPrecondition',
      `none of the cgroups of process ${pid} is mounted here (/proc/${pid}/cgroup: ${cgroupFile.trim().replace(/\n/g, '; ')}): mount cgroupfs at /sys/fs/cgroup`,
    );
  }
  return ref;
}

/**
 * The metrics of a cgroup, as containerd's runc shim returns them from Stats (v1:
 * `Stat(IgnoreNotExist)`, v2: `Manager.Stat`).
 *
 * Throws {@link RuntimeError} `NotFound` when the cgroup no longer exists, `Internal`
 * when a statistics file is malformed, or the file system error.
 */
export async function readStats(ref: CgroupRef): Promise<ContainerStats> {
  switch (ref.kind) {
    case 'v1':
      return { kind: 'v1', metrics: await readV1Metrics(ref.paths) };
    case 'v2':
      return { kind: 'v2', metrics: await readV2Metrics(ref.path) };
  }
}

/**
 * Watches a cgroup for OOM kills and calls `onOom` once per kill (v1: eventfd on
 * memory.oom_control, counted with its oom_kill counter; v2: inotify on memory.events'
 * oom_kill). The watch ends by itself, quietly, when the cgroup is removed (v2: also
 * once it is no longer populated); `close()` is idempotent and releases everything.
 * Errors inside the watch are logged, never thrown; a throwing `onOom` is logged.
 *
 * Throws {@link RuntimeError} `NotFound` when the cgroup (or its memory controller) is
 * missing, or the native/file system error when registering fails.
 */
export function watchOom(ref: CgroupRef, native: Native, onOom: () => void, logger: Logger): OomWatcher {
  switch (ref.kind) {
    case 'v1': {
      const memory = ref.paths.get('memory');
      if (memory === undefined) {
        throw new RuntimeError('NotFound', 'the cgroup has no v1 memory controller: cannot watch it for OOM kills');
      }
      return watchOomV1(memory, native, onOom, logger);
    }
    case 'v2':
      return watchOomV2(ref.path, onOom, logger);
  }
}
