/**
 * Test fixture: OCI bundles built from busybox-static, runc settings with a private
 * `--root`, unique cgroup paths, and the counters the leak checks compare (fds,
 * zombies, mounts, cgroup directories, runc state). Used by the real-runc tests of
 * core/; needs root, runc and /usr/bin/busybox.
 *
 * One rootfs per fixture (busybox copied once, applets as symlinks); each bundle's
 * config.json points at it (read-only), or, with `mountRootfs`, the bundle's own
 * `rootfs/` is empty and the test passes a bind mount for core/ to mount there.
 */
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, rmdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CreateRequest, Mount, RuntimeSettings, Stdio } from './api.js';
import { defaultRuntimeSettings } from './runc.js';

/** The busybox the fixtures copy (Debian's busybox-static). */
export const BUSYBOX = '/usr/bin/busybox';

const APPLETS = [
  'sh', 'echo', 'cat', 'sleep', 'seq', 'stty', 'true', 'false', 'kill', 'ls', 'ps', 'tail', 'head', 'yes',
  'dd', 'wc', 'env', 'id', 'test', 'printf', 'tty', 'mkdir', 'rm', 'touch', 'grep', 'sync', 'timeout',
];

/** What a bundle's process does and how the container is set up. */
export interface BundleOptions {
  /** The init's argv. */
  readonly args: readonly string[];
  readonly env?: readonly string[];
  readonly terminal?: boolean;
  /** Give the container its own pid namespace (default true). */
  readonly ownPidNamespace?: boolean;
  /** linux.resources of the spec (e.g. a memory limit). */
  readonly resources?: Record<string, unknown>;
  /** Leave `rootfs/` empty: the test passes {@link Fixture.rootfsMounts} to create. */
  readonly mountRootfs?: boolean;
}

/** A bundle on disk, ready for `create`. */
export interface TestBundle {
  readonly id: string;
  readonly path: string;
  readonly cgroupsPath: string;
}

/** Counts of what a test must not leak. */
export interface LeakCounts {
  readonly fds: number;
  readonly zombies: number;
  /** Mount points below the fixture's directory (bundle rootfs mounts). */
  readonly mounts: number;
  readonly cgroups: number;
  readonly runcState: number;
}

/** A per-test-file world: temp dir, shared rootfs, runc root, cgroup parent. */
export interface Fixture {
  readonly dir: string;
  readonly rootfs: string;
  readonly settings: RuntimeSettings;
  /** The cgroup parent of every container of this fixture (below each v1 hierarchy). */
  readonly cgroupParent: string;
  bundle(id: string, options: BundleOptions): TestBundle;
  /** Bind mounts of the shared rootfs, for bundles made with `mountRootfs`. */
  rootfsMounts(): Mount[];
  /** A CreateRequest for a bundle, with the fixture's settings. */
  request(bundle: TestBundle, stdio?: Partial<Stdio>, rootfs?: readonly Mount[]): CreateRequest;
  counts(): LeakCounts;
  /** Removes the temp dir and the cgroup parent (after the runtime deleted its containers). */
  cleanup(): void;
}

let fixtures = 0;

/** Runtime settings as containerd's defaults give them (runc from PATH), with `overrides`. */
export function testRuntimeSettings(overrides: Partial<RuntimeSettings> = {}): RuntimeSettings {
  return { ...defaultRuntimeSettings, ...overrides };
}

/** Builds a fixture in a fresh temp dir. */
export function createFixture(name: string): Fixture {
  const dir = mkdtempSync(join(tmpdir(), `tsrun-core-${name}-`));
  const rootfs = join(dir, 'rootfs');
  mkdirSync(join(rootfs, 'bin'), { recursive: true });
  for (const d of ['proc', 'dev', 'sys', 'tmp', 'etc']) mkdirSync(join(rootfs, d));
  copyFileSync(BUSYBOX, join(rootfs, 'bin', 'busybox'));
  for (const applet of APPLETS) symlinkSync('busybox', join(rootfs, 'bin', applet));
  writeFileSync(join(rootfs, 'etc', 'passwd'), 'root:x:0:0:root:/:/bin/sh\n');
  const runcRoot = join(dir, 'runc-root');
  mkdirSync(runcRoot);
  fixtures += 1;
  const cgroupParent = `tsrun-test-${process.pid}-${fixtures}`;
  const settings = testRuntimeSettings({ root: runcRoot });

  return {
    dir,
    rootfs,
    settings,
    cgroupParent,
    bundle(id, options) {
      const path = join(dir, 'bundles', id);
      mkdirSync(join(path, 'rootfs'), { recursive: true });
      const cgroupsPath = `/${cgroupParent}/${id}`;
      const root = options.mountRootfs === true ? { path: 'rootfs', readonly: true } : { path: rootfs, readonly: true };
      writeFileSync(join(path, 'config.json'), JSON.stringify(spec(options, root, cgroupsPath), null, 2));
      return { id, path, cgroupsPath };
    },
    rootfsMounts() {
      return [{ type: 'bind', source: rootfs, target: '', options: ['rbind', 'ro'] }];
    },
    request(bundle, stdio = {}, rootfs: readonly Mount[] = []) {
      return {
        id: bundle.id,
        bundle: bundle.path,
        rootfs,
        stdio: { stdin: '', stdout: '', stderr: '', terminal: false, ...stdio },
        checkpoint: '',
        parentCheckpoint: '',
        settings,
      };
    },
    counts() {
      return {
        fds: readdirSync('/proc/self/fd').length,
        zombies: zombieChildren().length,
        // Only mounts below the fixture: other tests on the machine may mount elsewhere.
        mounts: readFileSync('/proc/self/mountinfo', 'utf8')
          .split('\n')
          .filter((l) => l.split(' ')[4]?.startsWith(dir) === true).length,
        cgroups: cgroupDirs(cgroupParent).length,
        runcState: existsSync(runcRoot) ? readdirSync(runcRoot).length : 0,
      };
    },
    cleanup() {
      for (const hierarchy of cgroupHierarchies()) {
        const parent = join(hierarchy, cgroupParent);
        if (!existsSync(parent)) continue;
        for (const child of readdirSync(parent, { withFileTypes: true })) {
          if (child.isDirectory()) tryRmdir(join(parent, child.name));
        }
        tryRmdir(parent);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The config.json of a test container, modelled on `runc spec` (runc 1.1.5). */
function spec(options: BundleOptions, root: { path: string; readonly: boolean }, cgroupsPath: string): Record<string, unknown> {
  const caps = ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE'];
  const namespaces = [{ type: 'network' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }];
  if (options.ownPidNamespace !== false) namespaces.unshift({ type: 'pid' });
  return {
    ociVersion: '1.0.2-dev',
    process: {
      terminal: options.terminal ?? false,
      user: { uid: 0, gid: 0 },
      args: options.args,
      env: options.env ?? ['PATH=/bin', 'TERM=xterm'],
      cwd: '/',
      capabilities: { bounding: caps, effective: caps, permitted: caps, ambient: caps },
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: 1024, soft: 1024 }],
      noNewPrivileges: true,
    },
    root,
    hostname: 'tsrun',
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc' },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
      {
        destination: '/dev/pts',
        type: 'devpts',
        source: 'devpts',
        options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'],
      },
      { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
      { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
      { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
      { destination: '/tmp', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'mode=1777', 'size=65536k'] },
    ],
    linux: {
      resources: { devices: [{ allow: false, access: 'rwm' }], ...options.resources },
      cgroupsPath,
      namespaces,
      maskedPaths: ['/proc/acpi', '/proc/asound', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list', '/proc/timer_stats', '/proc/sched_debug', '/sys/firmware', '/proc/scsi'],
      readonlyPaths: ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
    },
  };
}

/** The mounted cgroup hierarchies (v1 controllers and the unified one). */
function cgroupHierarchies(): string[] {
  const root = '/sys/fs/cgroup';
  try {
    const entries = readdirSync(root, { withFileTypes: true });
    if (entries.some((e) => e.name === 'cgroup.controllers')) return [root]; // pure v2
    return entries.filter((e) => e.isDirectory() || e.isSymbolicLink()).map((e) => join(root, e.name));
  } catch {
    return [];
  }
}

/** Container cgroup directories below the fixture's parent, in every hierarchy. */
function cgroupDirs(parent: string): string[] {
  const dirs: string[] = [];
  for (const hierarchy of new Set(cgroupHierarchies())) {
    const path = join(hierarchy, parent);
    if (!existsSync(path)) continue;
    for (const child of readdirSync(path, { withFileTypes: true })) {
      if (child.isDirectory()) dirs.push(join(path, child.name));
    }
  }
  return dirs;
}

function tryRmdir(path: string): void {
  try {
    rmdirSync(path);
  } catch {
    // busy (a process still in it) or gone: the counts will tell
  }
}

/** Pids of this process's children that are zombies right now. */
export function zombieChildren(): number[] {
  const zombies: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let text: string;
    try {
      text = readFileSync(`/proc/${name}/stat`, 'latin1');
    } catch {
      continue;
    }
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    if (fields[0] === 'Z' && Number(fields[1]) === process.pid) zombies.push(Number(name));
  }
  return zombies;
}

/** True when this machine can run the real-runc tests (root, runc, busybox). */
export function canRunRunc(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root';
  if (!existsSync(BUSYBOX)) return `needs ${BUSYBOX} (busybox-static)`;
  const path = (process.env['PATH'] ?? '').split(':').find((d) => d !== '' && existsSync(join(d, 'runc')));
  if (path === undefined) return 'needs runc in PATH';
  return undefined;
}
