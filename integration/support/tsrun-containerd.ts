/**
 * A private containerd that runs containers with tsrun (`io.containerd.tsrun.v1`, the
 * built `bin/containerd-shim-tsrun-v1` on its PATH) and the busybox image imported, one
 * per test file, and the proof that the file left nothing behind.
 *
 * After the file's tests, before the harness's cleanup, it waits (bounded) for the host to
 * be clean by itself and records what is still there: tasks and containers, group daemons
 * or container processes of this containerd, mounts under its dirs, runc state, cgroups,
 * bundles, group sockets, files in the shims' TMPDIR. tsrun's manager and its idle spare
 * daemon serve a containerd until it exits (shim/manager.ts), so containerd is then
 * stopped and they must follow by themselves, socket and log included. Last the harness
 * cleanup runs, and the file fails if the traces or the cleanup report show anything: a
 * clean run leaves cleanup nothing to do.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before } from 'node:test';
import {
  BUSYBOX_IMAGE,
  RUNC_ROOT,
  TSRUN_BIN_DIR,
  importTestImages,
  startContainerd,
  type CleanupReport,
  type ContainerdInstance,
  type ContainerdOptions,
} from '../harness/index.js';
import { controlSocketPath } from '../../shim/manager.js';
import { waitUntil } from './poll.js';

/** The runtime name containerd maps to `containerd-shim-tsrun-v1`. */
export const TSRUN_RUNTIME = 'io.containerd.tsrun.v1';
/** What tsrun's daemon runs: node with the built entry point (its argv holds this). */
export const TSRUN_DAEMON_ENTRY = 'build/shim/entry.cjs';

/** `ctr run` arguments for a container of the busybox image run by tsrun (add `--rm`, `-d`, `-t` in `flags`). */
export function runArgs(flags: readonly string[], id: string, command: readonly string[]): string[] {
  return ['run', ...flags, '--runtime', TSRUN_RUNTIME, BUSYBOX_IMAGE, id, ...command];
}

/** What of a containerd instance is visible on the host; every list is empty on a clean host. */
export interface HostTraces {
  readonly tasks: readonly string[];
  readonly containers: readonly string[];
  /**
   * Shims of this containerd and what runs beneath them, as `pid argv`, except tsrun's
   * manager and its idle spare (they stay until containerd exits: {@link StoppedTraces}).
   */
  readonly processes: readonly string[];
  /** Mount points under the instance's dir (task rootfs mounts). */
  readonly mounts: readonly string[];
  /** Entries in the runc root of the instance's namespace. */
  readonly runcState: readonly string[];
  /** Container cgroups left under `/<controller>/<namespace>/`. */
  readonly cgroups: readonly string[];
  /** Task bundles left in containerd's v2 runtime state. */
  readonly bundles: readonly string[];
  /** Group sockets of the ids the tests used, still in /run/containerd/s. */
  readonly sockets: readonly string[];
  /** Files the shims left in their TMPDIR (a private dir per instance: see useTsrunContainerd). */
  readonly tmpFiles: readonly string[];
}

const CLEAN: HostTraces = { tasks: [], containers: [], processes: [], mounts: [], runcState: [], cgroups: [], bundles: [], sockets: [], tmpFiles: [] };

/** What is left once containerd stopped; both lists are empty on a clean host. */
export interface StoppedTraces {
  /** Every process of this containerd's shims (the manager and its spare included). */
  readonly processes: readonly string[];
  /** The manager's control socket and its log (kept only when it logged a problem). */
  readonly managerFiles: readonly string[];
}

/** The fixture: the instance getter, plus the ids the file used (for the socket check). */
export interface TsrunContainerd {
  (): ContainerdInstance;
  /** A container id unique in this file, remembered so the leftover check looks for its socket. */
  id(prefix: string): string;
  /**
   * Registers a step for the end of the file that must run before the leftover check
   * (closing a gRPC client, removing a temp dir): node:test runs `after` hooks in the order
   * they were registered and stops at the first that throws, so a test file's own `after`
   * would not run when the check fails.
   */
  onTeardown(step: () => void | Promise<void>): void;
}

/**
 * Registers before/afterEach/after hooks in the current file or suite: a private
 * containerd with tsrun on its PATH and the busybox image imported, and the leftover
 * check described in the module comment.
 */
export function useTsrunContainerd(options: ContainerdOptions = {}): TsrunContainerd {
  let instance: ContainerdInstance | undefined;
  let shimTmp: string | undefined;
  const ids = new Set<string>();
  const teardown: (() => void | Promise<void>)[] = [];
  let counter = 0;
  before(async () => {
    // The shims inherit containerd's environment: a TMPDIR of their own makes what they
    // leave in it (work dirs, console sockets) countable.
    shimTmp = await mkdtemp(join(tmpdir(), 'tsrun-e2e-'));
    instance = await startContainerd({
      ...options,
      extraPath: [TSRUN_BIN_DIR, ...(options.extraPath ?? [])],
      env: { TMPDIR: shimTmp, ...options.env },
    });
    await importTestImages(instance.ctr);
  });
  afterEach((context) => {
    if (instance !== undefined && failed(context)) instance.keepLog(`test '${nameOf(context)}' failed`);
  });
  after(async () => {
    const failures: unknown[] = [];
    for (const step of teardown) {
      try {
        await step();
      } catch (error) {
        failures.push(error);
      }
    }
    const tmp = shimTmp;
    if (instance === undefined || tmp === undefined) {
      if (tmp !== undefined) await rm(tmp, { recursive: true, force: true });
      return;
    }
    const current = instance;
    let running: HostTraces | undefined;
    let stopped: StoppedTraces | undefined;
    let report: CleanupReport;
    try {
      // Daemons exit shortly after their last task is deleted (containerd's Shutdown):
      // give them time, then take what is left.
      running = await settled(() => hostTraces(current, ids, tmp));
      await current.stop();
      stopped = await settled(() => stoppedTraces(current));
    } finally {
      report = await current.cleanup();
      await rm(tmp, { recursive: true, force: true });
      // A lock file is left by design (unlinking one that others may flock is a race);
      // with this containerd gone nobody will take it again.
      await rm(`${controlSocketPath(current.address)}.lock`, { force: true });
    }
    if (failures.length > 0) throw new AggregateError(failures, 'a teardown step of the test file failed');
    if (!isClean(running) || !isClean(stopped)) current.keepLog('tsrun left traces on the host');
    assert.deepEqual(running, CLEAN, `tsrun left traces on the host (containerd log ${current.logPath})`);
    assert.deepEqual(stopped, { processes: [], managerFiles: [] }, `tsrun processes or files outlived containerd (containerd log ${current.logPath})`);
    assert.deepEqual(report, { removedContainers: [], killedProcesses: [], unmounted: [], problems: [] }, 'the harness cleanup found something to clean');
  });
  const getter = (): ContainerdInstance => {
    if (instance === undefined) throw new Error('the private containerd is not running: its before hook has not run or failed');
    return instance;
  };
  return Object.assign(getter, {
    id(prefix: string): string {
      const id = `${prefix}-${++counter}`;
      ids.add(id);
      return id;
    },
    onTeardown(step: () => void | Promise<void>): void {
      teardown.push(step);
    },
  });
}

function isClean(traces: object): boolean {
  return Object.values(traces).every((list: readonly string[]) => list.length === 0);
}

/** Polls `take` until it shows a clean host (bounded), and returns the last traces. */
async function settled<T extends object>(take: () => Promise<T>): Promise<T> {
  const clean = await waitUntil('the host to be clean', async () => {
    const now = await take();
    return isClean(now) ? now : undefined;
  }, { timeoutMs: 15_000, intervalMs: 100 }).catch(() => undefined);
  return clean ?? (await take());
}

/** Whether a process is tsrun's manager or its idle spare (`entry.cjs -manager|-spare -address A`). */
function isManagerOrSpare(argv: readonly string[]): boolean {
  return argv.includes('-manager') || argv.includes('-spare');
}

/** What of `instance`'s tsrun processes and manager files is left (see {@link StoppedTraces}). */
export async function stoppedTraces(instance: ContainerdInstance): Promise<StoppedTraces> {
  const socket = controlSocketPath(instance.address);
  const files = [socket, socket.replace(/\.sock$/, '.log')];
  return {
    processes: (await instance.leftovers()).processes.map((p) => `${p.pid} ${p.argv.join(' ')}`),
    managerFiles: files.filter((path) => existsSync(path)),
  };
}

/** Everything of `instance` still on the host (see {@link HostTraces}). */
export async function hostTraces(instance: ContainerdInstance, ids: Iterable<string>, shimTmp: string): Promise<HostTraces> {
  const namespace = instance.namespace;
  const leftovers = await instance.leftovers();
  const bundleDir = join(instance.state, 'io.containerd.runtime.v2.task', namespace);
  return {
    tasks: await instance.ctr.tasks(),
    containers: await instance.ctr.containers(),
    processes: leftovers.processes.filter((p) => !isManagerOrSpare(p.argv)).map((p) => `${p.pid} ${p.argv.join(' ')}`),
    mounts: leftovers.mounts.map((m) => m.mountPoint),
    runcState: entries(join(RUNC_ROOT, namespace)),
    cgroups: controllers().flatMap((controller) =>
      entries(join('/sys/fs/cgroup', controller, namespace))
        .filter((name) => isDirectory(join('/sys/fs/cgroup', controller, namespace, name)))
        .map((name) => `${controller}/${namespace}/${name}`),
    ),
    bundles: entries(bundleDir),
    sockets: [...ids].filter((id) => existsSync(instance.tsrunSocketPath(namespace, id))),
    tmpFiles: entries(shimTmp),
  };
}

function entries(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** cgroup v1 controller dirs (`cpu,cpuacct` and its symlinks `cpu`, `cpuacct` listed once each is harmless). */
function controllers(): string[] {
  return entries('/sys/fs/cgroup').filter((name) => isDirectory(join('/sys/fs/cgroup', name)));
}

/** Whether a hook's context says its test failed (`passed` exists at run time since Node 20.12). */
function failed(context: unknown): boolean {
  return typeof context === 'object' && context !== null && 'passed' in context && context.passed === false;
}

function nameOf(context: unknown): string {
  return typeof context === 'object' && context !== null && 'name' in context && typeof context.name === 'string' ? context.name : '?';
}
