/**
 * Finding a process's cgroup directories from /proc/<pid>/cgroup and this process's
 * mountinfo (containerd/cgroups cgroup1 PidPath + getCgroupDestination, cgroup2
 * parseCgroupFile), with the mount point taken from mountinfo instead of assuming
 * /sys/fs/cgroup/<controller>.
 * @internal
 */
import { posix } from 'node:path';
import type { MountInfoEntry } from '../mount.js';

/**
 * Where a container's cgroup lives. v1: controller name (as /proc/<pid>/cgroup spells
 * it: "memory", "cpu", "name=systemd") to its absolute directory; controllers mounted
 * together ("cpu,cpuacct") share one directory. v2: the one unified directory.
 */
export type CgroupRef = { kind: 'v1'; paths: ReadonlyMap<string, string> } | { kind: 'v2'; path: string };

/**
 * Resolves /proc/<pid>/cgroup text against mountinfo entries.
 *
 * A process with any v1 controller that is mounted here is on v1 (hybrid hosts keep a
 * cgroup2 at /sys/fs/cgroup/unified, but containerd uses the v1 hierarchies there).
 * It is on v2 when its only line is the unified "0::<path>" one.
 * Returns undefined when nothing resolves (no matching cgroup mounts).
 */
export function resolveCgroupRef(cgroupFile: string, mounts: readonly MountInfoEntry[]): CgroupRef | undefined {
  const v1 = new Map<string, string>();
  let unified: string | undefined;
  for (const line of cgroupFile.split('\n')) {
    if (line === '') continue;
    // "hierarchy-ID:controller-list:cgroup-path"; the path may itself hold ':'.
    const first = line.indexOf(':');
    const second = line.indexOf(':', first + 1);
    if (first < 0 || second < 0) continue;
    const hierarchy = line.slice(0, first);
    const controllers = line.slice(first + 1, second);
    const path = line.slice(second + 1);
    if (hierarchy === '0' && controllers === '') {
      unified = path;
      continue;
    }
    for (const controller of controllers.split(',')) {
      if (controller === '') continue;
      const mount = mounts.find((m) => m.fsType === 'cgroup' && m.superOptions.split(',').includes(controller));
      if (mount !== undefined) v1.set(controller, hostPath(mount, path));
    }
  }
  if (v1.size > 0) return { kind: 'v1', paths: v1 };
  if (unified !== undefined) {
    const mount = mounts.find((m) => m.fsType === 'cgroup2');
    if (mount !== undefined) return { kind: 'v2', path: hostPath(mount, unified) };
  }
  return undefined;
}

/** The directory of cgroup `path` under `mount`, whose own root within the hierarchy is `mount.root`. */
function hostPath(mount: MountInfoEntry, path: string): string {
  const relative = posix.relative(mount.root, path);
  // A path outside the mount's root (another cgroup namespace) is clamped to it, as
  // containerd's filepath.Join("/", rel) does.
  const inside = posix.join('/', relative.startsWith('..') ? path : relative);
  return inside === '/' ? mount.mountPoint : posix.join(mount.mountPoint, inside);
}
