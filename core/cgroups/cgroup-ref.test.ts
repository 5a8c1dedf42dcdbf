// Finding a process's cgroup directories from /proc/<pid>/cgroup and mountinfo.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { describe, test } from 'node:test';
import { RuntimeError } from '../errors.js';
import { parseMountInfo } from '../mount.js';
import { resolveCgroupRef } from './cgroup-ref.js';
import { cgroupOfPid } from './index.js';

/** This host (cgroup v1 hybrid), recorded. */
const HYBRID_MOUNTINFO = `22 1 254:0 / / rw,relatime - ext4 /dev/vda rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`;

const HYBRID_CGROUP = `9:name=systemd:/
8:pids:/default/ctr1
7:blkio:/default/ctr1
6:freezer:/default/ctr1
5:devices:/default/ctr1
4:memory:/default/ctr1
3:cpuset:/default/ctr1
2:cpuacct:/default/ctr1
1:cpu:/default/ctr1
0::/
`;

describe('resolveCgroupRef', () => {
  test('a hybrid host (v1 controllers + cgroup2 at unified) resolves to v1 paths from the mount points', () => {
    const ref = resolveCgroupRef(HYBRID_CGROUP, parseMountInfo(HYBRID_MOUNTINFO));
    assert.deepEqual(ref, {
      kind: 'v1',
      paths: new Map([
        ['name=systemd', '/sys/fs/cgroup/systemd'],
        ['pids', '/sys/fs/cgroup/pids/default/ctr1'],
        ['blkio', '/sys/fs/cgroup/blkio/default/ctr1'],
        ['freezer', '/sys/fs/cgroup/freezer/default/ctr1'],
        ['devices', '/sys/fs/cgroup/devices/default/ctr1'],
        ['memory', '/sys/fs/cgroup/memory/default/ctr1'],
        ['cpuset', '/sys/fs/cgroup/cpuset/default/ctr1'],
        ['cpuacct', '/sys/fs/cgroup/cpuacct/default/ctr1'],
        ['cpu', '/sys/fs/cgroup/cpu/default/ctr1'],
      ]),
    });
  });

  test('co-mounted controllers (cpu,cpuacct) share one directory', () => {
    const mountinfo = '32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:14 - cgroup cgroup rw,cpu,cpuacct\n';
    const ref = resolveCgroupRef('4:cpu,cpuacct:/kubepods/pod1/ctr\n', parseMountInfo(mountinfo));
    assert.deepEqual(ref, {
      kind: 'v1',
      paths: new Map([
        ['cpu', '/sys/fs/cgroup/cpu,cpuacct/kubepods/pod1/ctr'],
        ['cpuacct', '/sys/fs/cgroup/cpu,cpuacct/kubepods/pod1/ctr'],
      ]),
    });
  });

  test('a mount whose root is a sub-cgroup maps paths relative to it (escaped mount points too)', () => {
    const mountinfo = '50 31 0:32 /outer /mnt/my\\040cgroups rw - cgroup cgroup rw,memory\n';
    const ref = resolveCgroupRef('4:memory:/outer/inner\n', parseMountInfo(mountinfo));
    assert.deepEqual(ref, { kind: 'v1', paths: new Map([['memory', '/mnt/my cgroups/inner']]) });
  });

  test('a pure v2 host: the 0:: line and the cgroup2 mount', () => {
    const mountinfo =
      '30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n';
    const ref = resolveCgroupRef('0::/system.slice/containerd.service/default/ctr1\n', parseMountInfo(mountinfo));
    assert.deepEqual(ref, { kind: 'v2', path: '/sys/fs/cgroup/system.slice/containerd.service/default/ctr1' });
  });

  test('nothing mounted: undefined', () => {
    assert.equal(resolveCgroupRef(HYBRID_CGROUP, []), undefined);
  });
});

describe('cgroupOfPid on this host', () => {
  test('our own process resolves to v1 directories that exist', () => {
    const ref = cgroupOfPid(process.pid);
    assert.equal(ref.kind, 'v1');
    const memory = ref.paths.get('memory');
    assert.ok(memory?.startsWith('/sys/fs/cgroup/memory') === true, `memory path ${memory ?? '(none)'}`);
    for (const dir of ref.paths.values()) assert.ok(existsSync(dir), `${dir} exists`);
  });

  test('a pid that does not exist is NotFound', () => {
    assert.throws(
      () => cgroupOfPid(2 ** 22 + 1),
      (error: unknown) => error instanceof RuntimeError && error.code === 'NotFound',
    );
  });
});
