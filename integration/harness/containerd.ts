/**
 * A private containerd for integration tests: Debian's /usr/bin/containerd (1.6.20) with its
 * own root, state, gRPC and ttrpc sockets and config, started and stopped by the test, and
 * removed with everything it made.
 *
 * What lives where (short paths: a unix socket path is limited to 107 bytes):
 *   /tmp/ctd-XXXXXX/config.toml, root/, state/, grpc.sock, ttrpc.sock, cni/
 *   /tmp/ctd-XXXXXX.log      containerd's stderr; kept when something failed
 * What containerd 1.6 puts OUTSIDE that directory, whatever its config says:
 *   /run/containerd/s/<sha256(address/namespace/id)>  shim sockets (runtime/v2/shim
 *     SocketAddress hard-codes /run/containerd): distinct per instance because the address is
 *     part of the hash; the shims remove them, and cleanup() removes those a dead shim left.
 *   /run/containerd/runc/<namespace>/<id>  runc state of the runc shim (its default root).
 *   /sys/fs/cgroup/<controller>/<namespace>/<id>  cgroups `ctr run` asks for; runc removes
 *     the container's, cleanup() removes the empty namespace level of its own namespace.
 *   /run/containerd/fifo/  ctr's stdio fifos (ctr removes its own; the dir stays, shared).
 * Hence each instance gets its own default namespace (`tsrun-<random>`): two instances, or
 * two helpers' test runs, never share a runc state dir or a cgroup.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync, readdirSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import type { TomlTable } from 'smol-toml';
import { socketAddress, socketPath } from '../../shim/group.js';
import { controlSocketPath } from '../../shim/manager.js';
import { renderContainerdConfig, type ContainerdLogLevel, type CriRuntime } from './containerd-config.js';
import { createCtr, type Ctr } from './ctr.js';
import { PAUSE_IMAGE } from './image.js';
import { mountsUnder, unmountUnder, type MountInfo } from './mounts.js';
import { descendantsOf, killAndWait, listProcesses, withEnvironment, withFlag, type ProcessEntry } from './processes.js';

/** The containerd binary the harness runs (Debian's package). */
export const CONTAINERD_BINARY = '/usr/bin/containerd';
/**
 * The repository's bin/, where `npm run build` puts `containerd-shim-tsrun-v1`: pass it in
 * `extraPath` so containerd finds the shim for `io.containerd.tsrun.v1`. Resolved from this
 * module's place in build/integration/harness/.
 */
export const TSRUN_BIN_DIR = fileURLToPath(new URL('../../../bin', import.meta.url));
/** Where containerd 1.6 puts shim sockets, whatever its state dir (runtime/v2/shim/util_unix.go). */
export const SHIM_SOCKET_DIR = '/run/containerd/s';
/** The runc shim's default runc root (runc Options.Root when unset). */
export const RUNC_ROOT = '/run/containerd/runc';

/** Settings of the CRI plugin; giving any enables it (it is disabled by default). */
export interface CriOptions {
  /** Handlers by name, added to the default `runc` (io.containerd.runc.v2) handler. */
  readonly runtimes?: Readonly<Record<string, CriRuntime>>;
  /** Handler for pods that name none; `runc` when left out. */
  readonly defaultRuntimeName?: string;
  /** CNI config dir; `<baseDir>/cni` (created empty) when left out. */
  readonly cniConfDir?: string;
  /** CNI plugin dir; Debian's containernetworking-plugins dir /usr/lib/cni when left out. */
  readonly cniBinDir?: string;
  /** Pod sandbox image; the harness's pause image when left out. */
  readonly sandboxImage?: string;
  /** Extra keys for `[plugins."io.containerd.grpc.v1.cri"]`. */
  readonly extra?: TomlTable;
}

/** Options of {@link startContainerd}. */
export interface ContainerdOptions {
  /**
   * Directories put in front of PATH for containerd (and so for the shims it starts): where
   * `containerd-shim-tsrun-v1` is found.
   */
  readonly extraPath?: readonly string[];
  /** containerd's log level; `info` when left out. */
  readonly logLevel?: ContainerdLogLevel;
  /** Enables the CRI plugin with these settings. */
  readonly cri?: CriOptions;
  /** Raw config merged over the generated config.toml (see renderContainerdConfig). */
  readonly config?: TomlTable;
  /** The namespace `instance.ctr` uses by default; a fresh `tsrun-<random>` when left out. */
  readonly namespace?: string;
  /** How long containerd may take to answer `ctr version`; 15 s when left out. */
  readonly startTimeoutMs?: number;
  /** Extra environment variables for containerd. */
  readonly env?: Readonly<Record<string, string>>;
}

/** What is left of an instance on the host (all empty after a successful cleanup). */
export interface Leftovers {
  /** Mounts at or under the instance's base dir. */
  readonly mounts: readonly MountInfo[];
  /** Shims started for this containerd (found by `-address` on their command line) and their descendants. */
  readonly processes: readonly ProcessEntry[];
  /** Whether the base dir still exists. */
  readonly baseDirExists: boolean;
}

/** What {@link ContainerdInstance.cleanup} did. `problems` is empty when everything went as planned. */
export interface CleanupReport {
  readonly removedContainers: readonly string[];
  readonly killedProcesses: readonly number[];
  readonly unmounted: readonly string[];
  readonly problems: readonly string[];
}

/** A private containerd. Obtain one with {@link startContainerd}. */
export interface ContainerdInstance {
  /** The instance's directory (`/tmp/ctd-XXXXXX`). */
  readonly baseDir: string;
  readonly root: string;
  readonly state: string;
  /** gRPC socket path. */
  readonly address: string;
  /** ttrpc socket path (shims' `TTRPC_ADDRESS`). */
  readonly ttrpcAddress: string;
  readonly configPath: string;
  /** containerd's stderr, outside baseDir so it can outlive cleanup. */
  readonly logPath: string;
  /** CNI config dir when CRI is enabled with the default one. */
  readonly cniConfDir: string | undefined;
  /** The default namespace of {@link ctr}. */
  readonly namespace: string;
  /** `ctr` bound to this instance; failures carry the tail of containerd's log. */
  readonly ctr: Ctr;
  /** containerd's pid while it runs. */
  readonly pid: number | undefined;
  readonly running: boolean;
  /**
   * Starts containerd again after {@link stop} or {@link kill}, on the same dirs and config.
   * @throws Error when it is already running or does not come up (the log is kept).
   */
  start(): Promise<void>;
  /** SIGTERM, then SIGKILL after `timeoutMs` (10 s). Shims keep running, as in production. */
  stop(options?: { readonly timeoutMs?: number }): Promise<void>;
  /** SIGKILL and wait for the exit: a crash, for restart tests. */
  kill(): Promise<void>;
  /** {@link stop} then {@link start}. */
  restart(): Promise<void>;
  /** The shim socket path containerd 1.6's runc shim derives for (namespace, group id). */
  shimSocketPath(namespace: string, id: string): string;
  /** Where tsrun's daemon of `group` in `namespace` listens (shim/group.ts socketAddress). */
  tsrunSocketPath(namespace: string, group: string): string;
  /** What this instance left on the host right now. */
  leftovers(): Promise<Leftovers>;
  /** The last `lines` lines of containerd's log. */
  logTail(lines?: number): string;
  /** Marks the log to be kept by cleanup (a test failed); the reason is printed with its path. */
  keepLog(reason: string): void;
  /**
   * Removes everything: every task and container in every namespace, then containerd, any
   * shim still running for this address and what runs under it, mounts under baseDir, the
   * shim sockets and runc state of dead shims, this instance's namespace cgroups, and
   * baseDir. Safe to call at any point, also after a failure half-way, and more than once.
   * Never throws; what it could not do is in `problems` (and keeps the log).
   */
  cleanup(): Promise<CleanupReport>;
}

/** Live instances, killed if the test process exits without cleaning up (a crash). */
const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const child of live) child.kill('SIGKILL');
  });
}

/**
 * Starts a private containerd and waits until it answers on its gRPC socket.
 *
 * @throws Error when containerd exits or does not answer within the start timeout; the
 *   message holds the log's path and tail, and everything already made is removed.
 */
export async function startContainerd(options: ContainerdOptions = {}): Promise<ContainerdInstance> {
  const baseDir = await mkdtemp(join(tmpdir(), 'ctd-'));
  const instance = new PrivateContainerd(baseDir, options);
  try {
    await instance.prepare();
    await instance.start();
    return instance;
  } catch (error) {
    instance.keepLog('containerd did not start');
    await instance.cleanup();
    throw error;
  }
}

class PrivateContainerd implements ContainerdInstance {
  readonly baseDir: string;
  readonly root: string;
  readonly state: string;
  readonly address: string;
  readonly ttrpcAddress: string;
  readonly configPath: string;
  readonly logPath: string;
  readonly cniConfDir: string | undefined;
  readonly namespace: string;
  readonly ctr: Ctr;
  readonly #options: ContainerdOptions;
  #child: ChildProcess | undefined;
  #exited: Promise<void> = Promise.resolve();
  readonly #keepReasons: string[] = [];
  /** (namespace, id) of every container seen, for shim sockets and runc state of dead shims. */
  readonly #seen = new Map<string, Set<string>>();
  #cleanedUp = false;

  constructor(baseDir: string, options: ContainerdOptions) {
    this.baseDir = baseDir;
    this.root = join(baseDir, 'root');
    this.state = join(baseDir, 'state');
    this.address = join(baseDir, 'grpc.sock');
    this.ttrpcAddress = join(baseDir, 'ttrpc.sock');
    this.configPath = join(baseDir, 'config.toml');
    this.logPath = `${baseDir}.log`;
    this.cniConfDir = options.cri !== undefined && options.cri.cniConfDir === undefined ? join(baseDir, 'cni') : undefined;
    this.namespace = options.namespace ?? `tsrun-${randomBytes(4).toString('hex')}`;
    this.#options = options;
    this.ctr = createCtr({
      address: this.address,
      namespace: this.namespace,
      onFailure: () => `containerd log (${this.logPath}), last lines:\n${this.logTail(15)}`,
    });
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  get running(): boolean {
    return this.#child !== undefined;
  }

  /**
   * Writes config.toml and creates the dirs; run once, before the first start().
   * @throws Error when a socket path would not fit a unix socket address.
   */
  async prepare(): Promise<void> {
    for (const path of [this.address, this.ttrpcAddress]) {
      // sockaddr_un.sun_path is 108 bytes with the terminating NUL.
      if (Buffer.byteLength(path) > 107) {
        throw new Error(`socket path '${path}' is longer than 107 bytes: set TMPDIR to a shorter directory`);
      }
    }
    const { cri } = this.#options;
    if (this.cniConfDir !== undefined) await mkdir(this.cniConfDir, { recursive: true });
    const config = renderContainerdConfig({
      paths: { root: this.root, state: this.state, address: this.address, ttrpcAddress: this.ttrpcAddress },
      logLevel: this.#options.logLevel ?? 'info',
      ...(cri === undefined
        ? {}
        : {
            cri: {
              runtimes: { runc: { runtimeType: 'io.containerd.runc.v2' }, ...cri.runtimes },
              ...(cri.defaultRuntimeName === undefined ? {} : { defaultRuntimeName: cri.defaultRuntimeName }),
              cniConfDir: cri.cniConfDir ?? join(this.baseDir, 'cni'),
              cniBinDir: cri.cniBinDir ?? '/usr/lib/cni',
              sandboxImage: cri.sandboxImage ?? PAUSE_IMAGE,
              ...(cri.extra === undefined ? {} : { extra: cri.extra }),
            },
          }),
      ...(this.#options.config === undefined ? {} : { extra: this.#options.config }),
    });
    await writeFile(this.configPath, config);
  }

  async start(): Promise<void> {
    if (this.#child !== undefined) throw new Error(`containerd (pid ${this.#child.pid ?? '?'}) is already running for ${this.address}`);
    if (this.#cleanedUp) throw new Error(`containerd at ${this.address} was cleaned up; start a new instance`);
    installExitHook();
    const log = openSync(this.logPath, 'a');
    let child: ChildProcess;
    try {
      child = spawn(CONTAINERD_BINARY, ['--config', this.configPath], {
        stdio: ['ignore', log, log],
        env: {
          ...process.env,
          ...this.#options.env,
          PATH: [...(this.#options.extraPath ?? []), process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin'].join(':'),
        },
      });
    } finally {
      closeSync(log);
    }
    this.#child = child;
    live.add(child);
    let spawnError: Error | undefined;
    this.#exited = new Promise<void>((resolve) => {
      child.once('error', (error) => {
        spawnError = error;
        resolve();
      });
      child.once('exit', () => { resolve(); });
    }).then(() => {
      live.delete(child);
      if (this.#child === child) this.#child = undefined;
    });

    const timeoutMs = this.#options.startTimeoutMs ?? 15_000;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.#child !== child) {
        const why = spawnError === undefined ? `exited (code ${child.exitCode ?? '?'}, signal ${child.signalCode ?? 'none'})` : `could not be spawned: ${spawnError.message}`;
        throw new Error(`containerd ${why}; log ${this.logPath}:\n${this.logTail(20)}`);
      }
      // A plain connect first: ctr waits 10 s for a socket file that does not exist yet.
      if (await canConnect(this.address)) {
        const version = await this.ctr.run(['version'], { timeoutMs: 5_000 });
        if (version.code === 0) return;
      }
      if (Date.now() > deadline) {
        await this.kill();
        throw new Error(`containerd did not answer on ${this.address} within ${timeoutMs} ms; log ${this.logPath}:\n${this.logTail(20)}`);
      }
      await sleep(20);
    }
  }

  async stop(options: { readonly timeoutMs?: number } = {}): Promise<void> {
    const child = this.#child;
    if (child === undefined) return;
    child.kill('SIGTERM');
    // The bound's timer is cancelled once containerd exits: a pending timer would keep the
    // test process alive for the whole bound after the last test.
    const bound = new AbortController();
    const stopped = await Promise.race([
      this.#exited.then(() => true),
      sleep(options.timeoutMs ?? 10_000, false, { signal: bound.signal }).catch(() => false),
    ]);
    bound.abort();
    if (!stopped) {
      this.keepLog(`containerd ignored SIGTERM for ${options.timeoutMs ?? 10_000} ms`);
      child.kill('SIGKILL');
      await this.#exited;
    }
  }

  async kill(): Promise<void> {
    const child = this.#child;
    if (child === undefined) return;
    child.kill('SIGKILL');
    await this.#exited;
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  shimSocketPath(namespace: string, id: string): string {
    // Go: filepath.Join(address, ns, id), hashed (containerd 1.6 runtime/v2/shim SocketAddress).
    const hash = createHash('sha256').update(join(this.address, namespace, id)).digest('hex');
    return join(SHIM_SOCKET_DIR, hash);
  }

  tsrunSocketPath(namespace: string, group: string): string {
    return socketPath(socketAddress(this.address, namespace, group));
  }

  async leftovers(): Promise<Leftovers> {
    return {
      mounts: await mountsUnder(this.baseDir),
      processes: await this.#shimTree(),
      baseDirExists: existsSync(this.baseDir),
    };
  }

  logTail(lines = 20): string {
    try {
      return readFileSync(this.logPath, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }

  keepLog(reason: string): void {
    this.#keepReasons.push(reason);
  }

  async cleanup(): Promise<CleanupReport> {
    const removedContainers: string[] = [];
    const killedProcesses: number[] = [];
    const unmounted: string[] = [];
    const problems: string[] = [];
    const attempt = async (what: string, step: () => Promise<void>): Promise<void> => {
      try {
        await step();
      } catch (error) {
        problems.push(`${what}: ${error instanceof Error ? error.message : String(error)}`);
      }
    };

    if (!this.#cleanedUp) {
      // 1. Tasks and containers go through containerd, which knows how to tear them down
      //    (shim Shutdown, `shim delete`, rootfs unmount). If it is down but tasks were
      //    left, start it again: on start it reconnects to live shims and cleans up dead ones.
      if (!this.running && (await this.#hasBundles())) {
        await attempt('restarting containerd to remove its tasks', () => this.start());
      }
      if (this.running) {
        await attempt('removing containers', async () => {
          for (const namespace of await this.ctr.namespaces()) {
            const ids = await this.ctr.containers({ namespace });
            const withTasks = await this.ctr.tasks({ namespace });
            for (const id of new Set([...ids, ...withTasks])) this.#remember(namespace, id);
            for (const id of new Set([...withTasks, ...ids])) {
              await attempt(`removing container ${namespace}/${id}`, async () => {
                await this.ctr.removeContainer(id, { namespace, timeoutMs: 20_000 });
                removedContainers.push(`${namespace}/${id}`);
              });
            }
          }
        });
      }
      await attempt('stopping containerd', () => this.stop());

      // 2. Whatever still runs for this address: a shim containerd could not shut down, and
      //    the container processes under it. SIGKILL, children first so none is re-parented.
      await attempt('killing leftover shims', async () => {
        const tree = await this.#shimTree();
        for (const p of tree) {
          const id = flagValue(p.argv, '-id');
          const namespace = flagValue(p.argv, '-namespace');
          if (id !== undefined && namespace !== undefined) this.#remember(namespace, id);
        }
        if (tree.length === 0) return;
        problems.push(`leftover processes for ${this.address}: ${tree.map((p) => `${p.pid} ${p.argv.join(' ')}`).join('; ')}`);
        const alive = await killAndWait(tree.map((p) => p.pid).reverse());
        killedProcesses.push(...tree.map((p) => p.pid));
        if (alive.length > 0) problems.push(`processes ${alive.join(', ')} survived SIGKILL`);
        // Their containers' runc state stays behind when no `shim delete` ran.
        for (const [namespace, ids] of this.#seen) {
          for (const id of ids) await runQuietly('runc', ['--root', join(RUNC_ROOT, namespace), 'delete', '--force', id]);
        }
      });

      // 3. Mounts, then sockets, cgroups and directories.
      await attempt('unmounting', async () => {
        unmounted.push(...(await unmountUnder(this.baseDir)));
      });
      await attempt('removing shim sockets', async () => {
        for (const [namespace, ids] of this.#seen) {
          for (const id of ids) {
            await rm(this.shimSocketPath(namespace, id), { force: true });
            await rm(this.tsrunSocketPath(namespace, id), { force: true });
          }
        }
        // tsrun's manager for this containerd (the launcher starts one per address):
        // its control socket, the launchers' lock file and its log.
        const control = controlSocketPath(this.address);
        for (const path of [control, `${control}.lock`, control.replace(/\.sock$/, '.log')]) await rm(path, { force: true });
      });
      await attempt('removing namespace cgroups and runc dirs', () => this.#removeNamespaceDirs());
      await attempt(`removing ${this.baseDir}`, () => rm(this.baseDir, { recursive: true, force: true, maxRetries: 3 }));
      this.#cleanedUp = true;
    }

    for (const problem of problems) this.keepLog(`cleanup: ${problem}`);
    const keep = this.#keepReasons.length > 0 || process.env['TSRUN_KEEP_LOGS'] === '1';
    if (keep && existsSync(this.logPath)) {
      // One short line per reason: the full messages are in the report and the log itself.
      const reasons = this.#keepReasons.map((r) => (r.split('\n')[0] ?? '').slice(0, 200));
      process.stderr.write(`containerd log kept at ${this.logPath}${reasons.length > 0 ? ` (${reasons.join('; ')})` : ''}\n`);
    } else {
      await rm(this.logPath, { force: true });
    }
    return { removedContainers, killedProcesses, unmounted, problems };
  }

  #remember(namespace: string, id: string): void {
    const ids = this.#seen.get(namespace);
    if (ids === undefined) this.#seen.set(namespace, new Set([id]));
    else ids.add(id);
  }

  /**
   * Shims of this containerd, then everything beneath them (parents first). A shim is found
   * by `-address <grpc socket>` on its command line (how containerd starts it, and how the
   * Go shim re-executes its daemon) or by `TTRPC_ADDRESS=<ttrpc socket>` in its environment
   * (which containerd sets for every shim, and a daemon inherits).
   */
  async #shimTree(): Promise<ProcessEntry[]> {
    const processes = (await listProcesses()).filter((p) => p.pid !== this.pid && p.pid !== process.pid);
    const shims = new Map<number, ProcessEntry>();
    for (const p of [...withFlag(processes, '-address', this.address), ...withEnvironment(processes, 'TTRPC_ADDRESS', this.ttrpcAddress)]) {
      shims.set(p.pid, p);
    }
    // A shim below another shim (a daemon started by `shim start`) is listed once, as a descendant.
    const below = new Set(descendantsOf(processes, shims.keys()).map((p) => p.pid));
    const roots = [...shims.values()].filter((p) => !below.has(p.pid));
    return [...roots, ...descendantsOf(processes, roots.map((p) => p.pid))];
  }

  /** Whether containerd's v2 runtime state holds any task bundle. */
  async #hasBundles(): Promise<boolean> {
    const tasks = join(this.state, 'io.containerd.runtime.v2.task');
    try {
      for (const namespace of await readdir(tasks)) {
        if ((await readdir(join(tasks, namespace))).length > 0) return true;
      }
    } catch {
      // No state yet.
    }
    return false;
  }

  /**
   * Per-namespace directories outside baseDir that outlive their containers: `ctr run` puts
   * a container in cgroup /<namespace>/<id> of every controller and runc removes only the
   * container's level; the runc shim keeps runc state in /run/containerd/runc/<namespace>.
   * Only this instance's own namespaces are removed, and only when empty (rmdir): shared
   * names like `default` may be in use by another containerd on the host.
   */
  async #removeNamespaceDirs(): Promise<void> {
    const shared = new Set(['default', 'k8s.io', 'moby']);
    const namespaces = new Set([this.namespace, ...this.#seen.keys()].filter((n) => !shared.has(n)));
    let controllers: string[] = [];
    try {
      controllers = readdirSync('/sys/fs/cgroup');
    } catch {
      // No cgroup filesystem: nothing to remove there.
    }
    for (const namespace of namespaces) {
      const dirs = [join(RUNC_ROOT, namespace), ...['', ...controllers].map((c) => join('/sys/fs/cgroup', c, namespace))];
      for (const dir of dirs) {
        try {
          if ((await stat(dir)).isDirectory()) await rmdir(dir);
        } catch {
          // Absent, or in use: not ours to force.
        }
      }
    }
  }
}

function flagValue(argv: readonly string[], flag: string): string | undefined {
  const index = argv.indexOf(flag);
  return index >= 0 ? argv[index + 1] : argv.find((arg) => arg.startsWith(`${flag}=`))?.slice(flag.length + 1);
}

function canConnect(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(path);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => { resolve(false); });
  });
}

function runQuietly(command: string, args: readonly string[]): Promise<void> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: 'ignore' });
    child.once('error', () => { resolve(); });
    child.once('exit', () => { resolve(); });
  });
}
