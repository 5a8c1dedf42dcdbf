// Rootfs mounting: option parsing (units), then real mounts as root in a temp dir,
// counted in /proc/self/mountinfo before and after.
import assert from 'node:assert/strict';
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { Native } from '../native/facade.js';
import { loadNative } from '../native/index.js';
import type { Mount } from './api.js';
import { RuntimeError } from './errors.js';
import {
  MS,
  compactLowerdir,
  mountAll,
  mountPointsBelow,
  parseMountInfo,
  parseMountOptions,
  resolveInRoot,
  unmountAll,
} from './mount.js';

describe('parseMountOptions', () => {
  test('flags and propagation become MS_* bits; the rest is data, in order', () => {
    assert.deepEqual(parseMountOptions(['ro', 'nosuid', 'nodev', 'rbind', 'rprivate']), {
      flags: MS.RDONLY | MS.NOSUID | MS.NODEV | MS.BIND | MS.REC | MS.PRIVATE,
      data: [],
    });
    assert.deepEqual(parseMountOptions(['index=off', 'lowerdir=/a:/b', 'noexec', 'upperdir=/u', 'workdir=/w']), {
      flags: MS.NOEXEC,
      data: ['index=off', 'lowerdir=/a:/b', 'upperdir=/u', 'workdir=/w'],
    });
  });

  test('later options win: ro,rw is read-write, exec clears noexec; defaults is dropped', () => {
    assert.deepEqual(parseMountOptions(['ro', 'rw', 'noexec', 'exec', 'defaults', 'nosuid', 'suid', 'nodev', 'dev']), {
      flags: 0,
      data: [],
    });
  });

  test('every propagation variant, atime family, sync and remount', () => {
    const cases: [string, number][] = [
      ['private', MS.PRIVATE],
      ['rprivate', MS.PRIVATE | MS.REC],
      ['shared', MS.SHARED],
      ['rshared', MS.SHARED | MS.REC],
      ['slave', MS.SLAVE],
      ['rslave', MS.SLAVE | MS.REC],
      ['unbindable', MS.UNBINDABLE],
      ['runbindable', MS.UNBINDABLE | MS.REC],
      ['bind', MS.BIND],
      ['noatime', MS.NOATIME],
      ['nodiratime', MS.NODIRATIME],
      ['relatime', MS.RELATIME],
      ['strictatime', MS.STRICTATIME],
      ['sync', MS.SYNCHRONOUS],
      ['dirsync', MS.DIRSYNC],
      ['mand', MS.MANDLOCK],
      ['remount', MS.REMOUNT],
    ];
    for (const [option, flags] of cases) assert.deepEqual(parseMountOptions([option]), { flags, data: [] }, option);
    assert.deepEqual(parseMountOptions(['noatime', 'atime', 'relatime', 'norelatime', 'sync', 'async']), {
      flags: 0,
      data: [],
    });
  });
});

describe('compactLowerdir', () => {
  test('layers become relative to the parent of their common prefix', () => {
    const root = '/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots';
    assert.deepEqual(
      compactLowerdir(['index=off', `lowerdir=${root}/12/fs:${root}/1/fs:${root}/11/fs`, 'upperdir=/u']),
      {
        commonDir: `${root}/`,
        layers: ['12/fs', '1/fs', '11/fs'],
        otherOptions: ['index=off', 'upperdir=/u'],
      },
    );
  });

  test('nothing to compact: one layer, no lowerdir, or no common directory', () => {
    assert.equal(compactLowerdir(['lowerdir=/a/b']), undefined);
    assert.equal(compactLowerdir(['upperdir=/u']), undefined);
    assert.equal(compactLowerdir(['lowerdir=/a:/b']), undefined);
  });
});

describe('parseMountInfo', () => {
  test('fields, optional fields and octal escapes', () => {
    const [entry] = parseMountInfo(
      '36 35 98:0 /mnt1 /mnt/with\\040space rw,noatime master:1 shared:2 - ext3 /dev/root rw,errors=continue\n',
    );
    assert.deepEqual(entry, {
      id: 36,
      parentId: 35,
      major: 98,
      minor: 0,
      root: '/mnt1',
      mountPoint: '/mnt/with space',
      mountOptions: 'rw,noatime',
      optionalFields: ['master:1', 'shared:2'],
      fsType: 'ext3',
      source: '/dev/root',
      superOptions: 'rw,errors=continue',
    });
  });
});

describe('resolveInRoot', () => {
  test('symlinks are followed inside the root and never out of it', (t) => {
    const root = mkdtempSync(join(tmpdir(), 'tsrun-root-'));
    t.after(() => {
      rmSync(root, { recursive: true, force: true });
    });
    mkdirSync(join(root, 'etc'));
    symlinkSync('/etc', join(root, 'abs'));
    symlinkSync('../../../../etc', join(root, 'rel'));
    symlinkSync('loop', join(root, 'loop'));
    assert.equal(resolveInRoot(root, ''), root);
    assert.equal(resolveInRoot(root, '/abs/passwd'), join(root, 'etc/passwd'));
    assert.equal(resolveInRoot(root, 'rel'), join(root, 'etc'));
    assert.equal(resolveInRoot(root, '../../x/./y/'), join(root, 'x/y'));
    assert.throws(
      () => resolveInRoot(root, 'loop'),
      (error: unknown) => error instanceof RuntimeError && error.code === 'InvalidArgument',
    );
  });
});

/** Mount points at or below `dir` in /proc/self/mountinfo (other tests may mount elsewhere). */
function mountsBelow(dir: string): string[] {
  return parseMountInfo(readFileSync('/proc/self/mountinfo', 'utf8'))
    .map((entry) => entry.mountPoint)
    .filter((point) => point === dir || point.startsWith(`${dir}/`));
}

function mountOptionsOf(point: string): string {
  const entries = parseMountInfo(readFileSync('/proc/self/mountinfo', 'utf8')).filter(
    (entry) => entry.mountPoint === point,
  );
  return entries.at(-1)?.mountOptions ?? '';
}

/** A scratch directory whose mounts are all undone, and which is removed, even when a test fails. */
function scratch(t: { after(fn: () => void): void }, native: Native): string {
  const dir = mkdtempSync(join(tmpdir(), 'tsrun-mount-'));
  t.after(() => {
    unmountAll(native, dir);
    rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

describe('mountAll / unmountAll on real mounts', { skip: process.getuid?.() !== 0 && 'needs root' }, () => {
  const native = loadNative();

  test('a read-only bind mount: visible, read-only, and gone after unmountAll', (t) => {
    const dir = scratch(t, native);
    mkdirSync(join(dir, 'src'));
    writeFileSync(join(dir, 'src', 'hello'), 'world');
    const rootfs = join(dir, 'rootfs');
    mkdirSync(rootfs);

    mountAll(
      native,
      [{ type: 'bind', source: join(dir, 'src'), target: '', options: ['rbind', 'ro', 'nosuid', 'nodev', 'rprivate'] }],
      rootfs,
    );
    assert.deepEqual(mountsBelow(dir), [rootfs]);
    assert.equal(readFileSync(join(rootfs, 'hello'), 'utf8'), 'world');
    assert.match(mountOptionsOf(rootfs), /^ro,nosuid,nodev/);
    assert.throws(() => {
      writeFileSync(join(rootfs, 'new'), 'x');
    }, /EROFS/);

    unmountAll(native, rootfs);
    assert.deepEqual(mountsBelow(dir), []);
    unmountAll(native, rootfs); // not mounted: fine
    unmountAll(native, join(dir, 'no-such-dir')); // does not exist: fine
  });

  test('mountPointsBelow and unmountAll find a rootfs whose path the kernel escapes, and nothing of a sibling', (t) => {
    const dir = scratch(t, native);
    // A space and a backslash: mountinfo writes them as \040 and \134.
    const rootfs = join(dir, 'root fs\\x');
    const sibling = join(dir, 'root fs\\x2');
    for (const d of [rootfs, sibling]) mkdirSync(d);
    const tmpfs = (target: string): Mount => ({ type: 'tmpfs', source: 'tmpfs', target, options: ['size=1m'] });
    mountAll(native, [tmpfs('')], rootfs);
    mountAll(native, [tmpfs('')], rootfs); // stacked on the same path
    mkdirSync(join(rootfs, 'sub dir'));
    mountAll(native, [tmpfs('sub dir')], rootfs);
    mountAll(native, [tmpfs('')], sibling);

    assert.deepEqual(mountPointsBelow(rootfs), [join(rootfs, 'sub dir'), rootfs, rootfs]);
    assert.deepEqual(mountPointsBelow(join(dir, 'no such dir')), []);
    unmountAll(native, rootfs);
    assert.deepEqual(mountPointsBelow(rootfs), []);
    assert.deepEqual(mountsBelow(dir), [sibling], 'the sibling with the same prefix stays mounted');
  });

  test('an overlay rootfs with nested mounts (targets relative to the rootfs), all undone deepest first', (t) => {
    const dir = scratch(t, native);
    for (const d of ['lower1/etc', 'lower1/proc', 'lower2/data', 'upper', 'work', 'rootfs', 'vol'])
      mkdirSync(join(dir, d), { recursive: true });
    writeFileSync(join(dir, 'lower1', 'etc', 'hostname'), 'from-lower1');
    writeFileSync(join(dir, 'lower2', 'etc-not-here'), 'from-lower2');
    writeFileSync(join(dir, 'vol', 'v'), 'volume');
    const rootfs = join(dir, 'rootfs');
    const mounts: Mount[] = [
      {
        type: 'overlay',
        source: 'overlay',
        target: '',
        options: [
          'index=off',
          `lowerdir=${join(dir, 'lower1')}:${join(dir, 'lower2')}`,
          `upperdir=${join(dir, 'upper')}`,
          `workdir=${join(dir, 'work')}`,
          'defaults',
        ],
      },
      { type: 'tmpfs', source: 'tmpfs', target: 'data', options: ['nosuid', 'nodev', 'mode=755', 'size=1m'] },
      { type: 'bind', source: join(dir, 'vol'), target: '/data/../data/vol-here', options: ['bind'] },
      { type: 'proc', source: 'proc', target: 'proc', options: ['nosuid', 'nodev', 'noexec'] },
    ];
    // 'data/vol-here' is created on the tmpfs by the test before the bind (as an image's volume dir would exist).
    mountAll(native, mounts.slice(0, 2), rootfs);
    mkdirSync(join(rootfs, 'data', 'vol-here'));
    mountAll(native, mounts.slice(2), rootfs);

    assert.deepEqual(mountsBelow(dir), [
      rootfs,
      join(rootfs, 'data'),
      join(rootfs, 'data', 'vol-here'),
      join(rootfs, 'proc'),
    ]);
    assert.equal(readFileSync(join(rootfs, 'etc', 'hostname'), 'utf8'), 'from-lower1');
    assert.equal(readFileSync(join(rootfs, 'etc-not-here'), 'utf8'), 'from-lower2');
    assert.equal(readFileSync(join(rootfs, 'data', 'vol-here', 'v'), 'utf8'), 'volume');
    writeFileSync(join(rootfs, 'written'), 'upper');
    assert.equal(readFileSync(join(dir, 'upper', 'written'), 'utf8'), 'upper');

    unmountAll(native, rootfs);
    assert.deepEqual(mountsBelow(dir), []);
  });

  test('an overlay whose lowerdir list is longer than a page mounts (layers named through a directory fd)', (t) => {
    const dir = scratch(t, native);
    const snapshots = join(dir, 'io.containerd.snapshotter.v1.overlayfs', 'snapshots');
    const layers: string[] = [];
    for (let i = 1; i <= 70; i++) {
      const layer = join(snapshots, String(i), 'fs');
      mkdirSync(layer, { recursive: true });
      writeFileSync(join(layer, `layer-${i}`), String(i));
      layers.push(layer);
    }
    for (const d of ['upper', 'work', 'rootfs']) mkdirSync(join(dir, d));
    const lowerdir = `lowerdir=${layers.reverse().join(':')}`;
    assert.ok(lowerdir.length > 4096, `lowerdir is ${lowerdir.length} bytes`);
    const rootfs = join(dir, 'rootfs');
    const fdsBefore = readdirCount('/proc/self/fd');

    mountAll(
      native,
      [
        {
          type: 'overlay',
          source: 'overlay',
          target: '',
          options: [lowerdir, `upperdir=${join(dir, 'upper')}`, `workdir=${join(dir, 'work')}`],
        },
      ],
      rootfs,
    );
    assert.equal(readdirCount('/proc/self/fd'), fdsBefore, 'the directory fd is closed again');
    assert.equal(readFileSync(join(rootfs, 'layer-1'), 'utf8'), '1');
    assert.equal(readFileSync(join(rootfs, 'layer-70'), 'utf8'), '70');
    unmountAll(native, rootfs);
    assert.deepEqual(mountsBelow(dir), []);
  });

  test('a failing mount undoes the mounts made before it and says what failed', (t) => {
    const dir = scratch(t, native);
    for (const d of ['src', 'rootfs']) mkdirSync(join(dir, d));
    const rootfs = join(dir, 'rootfs');
    assert.throws(
      () => {
        mountAll(
          native,
          [
            { type: 'bind', source: join(dir, 'src'), target: '', options: ['rbind'] },
            { type: 'bind', source: join(dir, 'does-not-exist'), target: '', options: ['rbind'] },
          ],
          rootfs,
        );
      },
      (error: unknown) =>
        error instanceof RuntimeError && error.message.includes('does-not-exist') && /ENOENT/.test(error.message),
    );
    assert.deepEqual(mountsBelow(dir), []);
  });

  test('unsupported mount kinds are refused before anything is mounted', (t) => {
    const dir = scratch(t, native);
    const refused = (mount: Mount) => {
      assert.throws(
        () => {
          mountAll(native, [mount], dir);
        },
        (error: unknown) => error instanceof RuntimeError && error.code === 'InvalidArgument',
      );
    };
    refused({ type: 'fuse3.fuse-overlayfs', source: 'overlay', target: '', options: [] });
    refused({ type: 'ext4', source: '/img', target: '', options: ['loop'] });
    refused({ type: 'bind', source: '/x', target: '', options: ['rbind', 'uidmap=0:1000:1'] });
    assert.deepEqual(mountsBelow(dir), []);
  });

  test('stacked mounts on one path and a busy mount (open file) are all removed', (t) => {
    const dir = scratch(t, native);
    for (const d of ['a', 'b', 'rootfs']) mkdirSync(join(dir, d));
    writeFileSync(join(dir, 'b', 'file'), 'b');
    const rootfs = join(dir, 'rootfs');
    mountAll(
      native,
      [
        { type: 'bind', source: join(dir, 'a'), target: '', options: ['bind'] },
        { type: 'bind', source: join(dir, 'b'), target: '', options: ['bind'] },
      ],
      rootfs,
    );
    assert.deepEqual(mountsBelow(dir), [rootfs, rootfs]);
    const calls: [string, number][] = [];
    const recording: Native = {
      ...native,
      umount2(target, flags) {
        calls.push([target, flags]);
        native.umount2(target, flags);
      },
    };
    const busy = openSync(join(rootfs, 'file'), 'r');
    try {
      // umount2 says EBUSY while the file is open: retried, then detached (MNT_DETACH = 2).
      unmountAll(recording, rootfs);
      assert.deepEqual(mountsBelow(dir), []);
      // The top mount (b, holding the open file): 1 try + 3 retries, then detached;
      // the one below it (a) then unmounts at once.
      assert.deepEqual(calls, [
        [rootfs, 0],
        [rootfs, 0],
        [rootfs, 0],
        [rootfs, 0],
        [rootfs, 2],
        [rootfs, 0],
      ]);
    } finally {
      closeSync(busy);
    }
  });
});

function readdirCount(dir: string): number {
  return readdirSync(dir).length;
}
