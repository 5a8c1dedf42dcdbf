/**
 * runc Options' `ShimCgroup`: `start` moves the new daemon into that cgroup, as the
 * Go shim does (cgroup1.Load(StaticPath(ShimCgroup)).AddProc, or cgroup2.Load).
 * On a v1 or hybrid host the pid goes into the cgroup in every mounted hierarchy
 * that has it; on a pure v2 host into the unified one.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseMountInfo } from '../core/mount.js';

/**
 * Moves `pid` into `cgroup` (a path like `/shims` relative to each hierarchy's root).
 * @throws Error naming the cgroup when no hierarchy has it or a write fails.
 */
export function moveToShimCgroup(pid: number, cgroup: string): void {
  const mounts = parseMountInfo(readFileSync('/proc/self/mountinfo', 'utf8')).filter((m) => m.fsType === 'cgroup' || m.fsType === 'cgroup2');
  const targets = mounts.map((m) => join(m.mountPoint, cgroup, 'cgroup.procs')).filter((procs) => existsSync(procs));
  if (targets.length === 0) {
    throw new Error(`shim cgroup '${cgroup}' exists in no mounted cgroup hierarchy: create it, or clear ShimCgroup in the runtime options`);
  }
  for (const procs of targets) writeFileSync(procs, String(pid));
}
