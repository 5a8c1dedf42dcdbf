/**
 * What containerd 1.6's CRI plugin needs on this machine, offline, and its removal: a
 * private containerd (the harness's) with the CRI plugin on, CRI runtime handlers `runc`
 * (io.containerd.runc.v2) and `tsrun` (io.containerd.tsrun.v1), a CNI bridge network of its
 * own (cni.ts), the harness's locally built busybox and pause images imported into the
 * `k8s.io` namespace, and a CRI client.
 *
 * Everything an environment makes lives under its own directory (/tmp/tsrun-cri-XXXXXX:
 * CNI config and leases, pod log directories, tsrun's settings file) or the harness's
 * (/tmp/ctd-XXXXXX, including pod network namespaces: `netns_mounts_under_state_dir`),
 * except what the kernel and CNI keep globally: the bridge and veths, libcni's result cache
 * in /var/lib/cni, the pods' cgroups (under a cgroup parent of the environment's own), and
 * runc's state directory for `k8s.io`. `cleanup()` removes those too (the directories only
 * when the environment created them and they are empty).
 *
 * Facts about containerd 1.6.20 this relies on (seen on this machine):
 * - For a runtime type other than io.containerd.runc.*, CRI sends the shim a
 *   `runtimeoptions.v1.Options` whose fields come from the handler's `options` table by Go
 *   field name (`TypeUrl`, `ConfigPath`); any other key, `GroupPolicy` included, is dropped
 *   without a word, and so is `ConfigBody` given as a string. tsrun's settings therefore
 *   travel as a TOML file named by `ConfigPath`. Without an `options` table the shim's stdin
 *   is empty.
 * - `restrict_oom_score_adj = true` is needed (this VM lacks CAP_SYS_RESOURCE); the harness
 *   sets it. AppArmor is not in this kernel and SELinux is off by default, so neither needs
 *   disabling.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { mkdir, mkdtemp, rm, rmdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, afterEach, before } from 'node:test';
import { stringify } from 'smol-toml';
import {
  RUNC_ROOT,
  TSRUN_BIN_DIR,
  importTestImages,
  startContainerd,
  unmountUnder,
  type CleanupReport,
  type ContainerdInstance,
  type ContainerdLogLevel,
  type CriRuntime,
} from '../harness/index.js';
import { createCriClient, CriError, type CriClient, type PodSandboxConfig, type RunPodSandboxResponse } from './client.js';
import { CNI_BIN_DIR, CNI_CACHE_DIR, createCniNetwork, removeCniLeftovers, renderCniConflist, type CniCleanup, type CniNetwork } from './cni.js';

/** The containerd namespace CRI keeps everything in. */
export const CRI_NAMESPACE = 'k8s.io';
/** CRI handler of the stock runc shim (the harness always registers it). */
export const RUNC_HANDLER = 'runc';
export const RUNC_RUNTIME_TYPE = 'io.containerd.runc.v2';
/** CRI handler of tsrun. */
export const TSRUN_HANDLER = 'tsrun';
export const TSRUN_RUNTIME_TYPE = 'io.containerd.tsrun.v1';
/** Where `npm run build` puts tsrun's shim binary. */
export const TSRUN_SHIM_BINARY = join(TSRUN_BIN_DIR, 'containerd-shim-tsrun-v1');

/**
 * runc's state directory for CRI's namespace (the runc shim's and tsrun's default): runc
 * creates it and leaves it, empty, when the last container goes.
 */
export const CRI_RUNC_ROOT = join(RUNC_ROOT, CRI_NAMESPACE);

/** Whether a shim binary can be used, or why not. */
export type ShimAvailability = { readonly available: true; readonly version: string } | { readonly available: false; readonly reason: string };

/**
 * Whether tsrun's shim is built and answers `-v` (within 10 s, exit 0). Synchronous: test
 * files call it while declaring tests, to skip the tsrun variants with the reason.
 */
export function tsrunShimAvailability(binary: string = TSRUN_SHIM_BINARY): ShimAvailability {
  if (!existsSync(binary)) return { available: false, reason: `tsrun shim not built: ${binary} does not exist (run npm run build)` };
  const result = spawnSync(binary, ['-v'], { encoding: 'utf8', timeout: 10_000 });
  if (result.error !== undefined) return { available: false, reason: `tsrun shim not usable: ${binary} -v failed: ${result.error.message}` };
  if (result.status !== 0) {
    const why = result.status === null ? `was killed by ${result.signal ?? 'a signal'}` : `exited with code ${result.status}`;
    return { available: false, reason: `tsrun shim not usable: ${binary} -v ${why}: ${result.stderr.trim().slice(0, 300)}` };
  }
  return { available: true, version: result.stdout.trim() };
}

/** tsrun's own settings for its CRI handler (shim/settings.ts reads them). */
export interface TsrunSettings {
  readonly groupPolicy?: 'container' | 'pod' | 'namespace';
  readonly logLevel?: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';
}

/** The settings file tsrun reads through `runtimeoptions.v1.Options.config_path`. Pure. */
export function renderTsrunSettings(settings: TsrunSettings): string {
  return stringify({
    ...(settings.groupPolicy === undefined ? {} : { GroupPolicy: settings.groupPolicy }),
    ...(settings.logLevel === undefined ? {} : { LogLevel: settings.logLevel }),
  });
}

/**
 * The `tsrun` handler's table: containerd 1.6 passes `ConfigPath` through as
 * runtimeoptions.v1.Options.config_path (see the file comment for why not the settings themselves).
 */
export function tsrunRuntime(settingsPath: string): CriRuntime {
  return { runtimeType: TSRUN_RUNTIME_TYPE, options: { ConfigPath: settingsPath } };
}

/** Options of {@link startCriEnvironment}. */
export interface CriEnvironmentOptions {
  /** tsrun's settings for the `tsrun` handler (always registered; used only by pods that name it). */
  readonly tsrun?: TsrunSettings;
  /**
   * More handlers by name (e.g. a second tsrun handler with other settings: write its file
   * and use {@link tsrunRuntime}). `runc` and `tsrun` are always there.
   */
  readonly runtimes?: Readonly<Record<string, CriRuntime>>;
  /** containerd's log level; `info` when left out. */
  readonly logLevel?: ContainerdLogLevel;
}

/** A pod sandbox config with the environment's defaults (see {@link CriEnvironment.podConfig}). */
export interface PodOptions {
  readonly labels?: Readonly<Record<string, string>>;
  readonly annotations?: Readonly<Record<string, string>>;
}

/** What {@link CriEnvironment.cleanup} did; `problems` is empty when everything went as planned. */
export interface CriCleanupReport {
  readonly removedPods: readonly string[];
  readonly containerd: CleanupReport | undefined;
  readonly cni: CniCleanup | undefined;
  readonly removedNetns: readonly string[];
  readonly removedCgroups: readonly string[];
  readonly problems: readonly string[];
}

/** A running CRI test environment. */
export interface CriEnvironment {
  readonly containerd: ContainerdInstance;
  /** The CRI client (containerd's gRPC socket). Pods it runs are remembered for cleanup. */
  readonly cri: CriClient;
  readonly network: CniNetwork;
  /** The environment's own directory. */
  readonly dir: string;
  /** Cgroup parent of every pod this environment configures (`/tsrun-cri-<hex>`). */
  readonly cgroupParent: string;
  /** Runtime type of every registered handler, by name: `runc`, `tsrun` and any extra. */
  readonly handlers: Readonly<Record<string, string>>;
  /**
   * A pod sandbox config as a kubelet would send it: unique uid, a log directory under the
   * environment's directory, the environment's cgroup parent, pod networking (CNI).
   */
  podConfig(name: string, options?: PodOptions): PodSandboxConfig;
  /**
   * Removes every pod through CRI (so CNI tears down its network), then everything else:
   * containerd (harness cleanup), CNI leftovers, network namespaces, cgroups, the directory.
   * Never throws: what could not be removed is in `problems`.
   */
  cleanup(): Promise<CriCleanupReport>;
}

/**
 * Starts containerd with the CRI plugin, a CNI network and the test images in `k8s.io`.
 * @throws Error when any of it fails; what was already made is removed first.
 */
export async function startCriEnvironment(options: CriEnvironmentOptions = {}): Promise<CriEnvironment> {
  const dir = await mkdtemp(join(tmpdir(), 'tsrun-cri-'));
  const environment = new Environment(dir, { cniCache: existsSync(CNI_CACHE_DIR), runcRoot: existsSync(CRI_RUNC_ROOT) });
  try {
    await environment.start(options);
    return environment;
  } catch (error) {
    const report = await environment.cleanup();
    if (report.problems.length > 0) process.stderr.write(`CRI environment cleanup after a failed start: ${report.problems.join('; ')}\n`);
    throw error;
  }
}

/**
 * Verbose PodSandboxStatus info as containerd 1.6 writes it under the key `info` (JSON with
 * pid, processStatus, netNamespaceClosed, image, snapshotKey, snapshotter, runtimeHandler,
 * runtimeType, runtimeOptions, config, runtimeSpec, cniResult): the fields used here.
 */
export interface SandboxInfo {
  readonly pid?: number;
  readonly runtimeHandler?: string;
  /** The shim's runtime type, e.g. io.containerd.tsrun.v1. */
  readonly runtimeType?: string;
  readonly runtimeSpec?: { readonly linux?: { readonly namespaces?: readonly { readonly type: string; readonly path?: string }[] } };
}

/**
 * Parses verbose PodSandboxStatus info.
 * @throws Error when the `info` key is missing (the call was not verbose) or is not JSON.
 */
export function sandboxInfoOf(info: Readonly<Record<string, string>>): SandboxInfo {
  const text = info['info'];
  if (text === undefined) throw new Error('PodSandboxStatus info has no "info" key: ask with verbose: true');
  return JSON.parse(text) as SandboxInfo;
}

/** Host directories an environment may create, and whether they existed before it started. */
interface Existed {
  readonly cniCache: boolean;
  readonly runcRoot: boolean;
}

/** The pod's network namespace path from verbose PodSandboxStatus info, if any. */
export function netnsPathOf(info: Readonly<Record<string, string>>): string | undefined {
  if (info['info'] === undefined) return undefined;
  return sandboxInfoOf(info).runtimeSpec?.linux?.namespaces?.find((ns) => ns.type === 'network')?.path;
}

class Environment implements CriEnvironment {
  readonly dir: string;
  readonly cgroupParent = `/tsrun-cri-${randomBytes(4).toString('hex')}`;
  #handlers: Readonly<Record<string, string>> = {};
  readonly #existed: Existed;
  /** Every sandbox id RunPodSandbox returned, and its netns path once known. */
  readonly #sandboxes = new Map<string, string | undefined>();
  #containerd: ContainerdInstance | undefined;
  #cri: CriClient | undefined;
  #network: CniNetwork | undefined;
  #report: Promise<CriCleanupReport> | undefined;

  constructor(dir: string, existed: Existed) {
    this.dir = dir;
    this.#existed = existed;
  }

  get containerd(): ContainerdInstance {
    if (this.#containerd === undefined) throw new Error('the CRI environment has no containerd: it did not start');
    return this.#containerd;
  }

  get cri(): CriClient {
    if (this.#cri === undefined) throw new Error('the CRI environment has no client: it did not start');
    return this.#cri;
  }

  get handlers(): Readonly<Record<string, string>> {
    return this.#handlers;
  }

  get network(): CniNetwork {
    if (this.#network === undefined) throw new Error('the CRI environment has no network: it did not start');
    return this.#network;
  }

  async start(options: CriEnvironmentOptions): Promise<void> {
    const cniConfDir = join(this.dir, 'cni');
    await mkdir(cniConfDir);
    await mkdir(join(this.dir, 'pods'));
    const network = await createCniNetwork(join(this.dir, 'ipam'));
    this.#network = network;
    await writeFile(join(cniConfDir, '10-tsrun-cri.conflist'), renderCniConflist(network));
    const settingsPath = join(this.dir, 'tsrun.toml');
    await writeFile(settingsPath, renderTsrunSettings(options.tsrun ?? {}));

    const runtimes: Record<string, CriRuntime> = { ...options.runtimes, [TSRUN_HANDLER]: tsrunRuntime(settingsPath) };
    this.#handlers = {
      [RUNC_HANDLER]: RUNC_RUNTIME_TYPE,
      ...Object.fromEntries(Object.entries(runtimes).map(([name, runtime]) => [name, runtime.runtimeType])),
    };
    // The harness registers `runc` (io.containerd.runc.v2) itself.
    const containerd = await startContainerd({
      extraPath: [TSRUN_BIN_DIR],
      ...(options.logLevel === undefined ? {} : { logLevel: options.logLevel }),
      cri: { runtimes, cniConfDir, cniBinDir: CNI_BIN_DIR },
    });
    this.#containerd = containerd;
    await importTestImages(containerd.ctr, { namespace: CRI_NAMESPACE });
    this.#cri = this.#remembering(createCriClient(containerd.address));
    await waitForCri(this.#cri);
  }

  /** The client, with RunPodSandbox recording each sandbox id for cleanup. */
  #remembering(client: CriClient): CriClient {
    const inner = client.runtime;
    return {
      ...client,
      runtime: {
        ...client.runtime,
        runPodSandbox: async (request, callOptions): Promise<RunPodSandboxResponse> => {
          const response = await inner.runPodSandbox(request, callOptions);
          this.#sandboxes.set(response.pod_sandbox_id, undefined);
          return response;
        },
      },
    };
  }

  podConfig(name: string, options: PodOptions = {}): PodSandboxConfig {
    const uid = randomBytes(8).toString('hex');
    return {
      metadata: { name, uid, namespace: 'tsrun-test', attempt: 0 },
      hostname: name,
      log_directory: join(this.dir, 'pods', `tsrun-test_${name}_${uid}`),
      labels: { 'io.tsrun.test': 'cri', ...options.labels },
      ...(options.annotations === undefined ? {} : { annotations: options.annotations }),
      linux: { cgroup_parent: this.cgroupParent },
    };
  }

  cleanup(): Promise<CriCleanupReport> {
    this.#report ??= this.#cleanup();
    return this.#report;
  }

  async #cleanup(): Promise<CriCleanupReport> {
    const problems: string[] = [];
    const removedPods: string[] = [];
    const removedNetns: string[] = [];
    const removedCgroups: string[] = [];
    const attempt = async <T>(what: string, step: () => Promise<T>): Promise<T | undefined> => {
      try {
        return await step();
      } catch (error) {
        problems.push(`${what}: ${error instanceof Error ? error.message : String(error)}`);
        return undefined;
      }
    };

    // 1. Pods through CRI, as a kubelet would: StopPodSandbox runs CNI DEL (veth, lease,
    //    cache entry) and stops the containers; RemovePodSandbox removes them. If containerd
    //    died with pods, start it again first: CRI recovers its pods on start. (Leaving them
    //    to the harness's ctr-based removal races the runc shim's own exit once a pod's last
    //    task is gone: `ctr tasks delete` then fails with "ttrpc: closed".)
    const cri = this.#cri;
    const containerd = this.#containerd;
    if (cri !== undefined && containerd !== undefined && !containerd.running && this.#sandboxes.size > 0) {
      await attempt('restarting containerd to remove its pods', async () => {
        await containerd.start();
        await waitForCri(cri);
      });
    }
    if (cri !== undefined && containerd?.running === true) {
      const pods = (await attempt('listing pods', () => cri.runtime.listPodSandbox())) ?? [];
      for (const id of pods.map((p) => p.id)) if (!this.#sandboxes.has(id)) this.#sandboxes.set(id, undefined);
      for (const id of this.#sandboxes.keys()) {
        const status = await cri.runtime.podSandboxStatus({ pod_sandbox_id: id, verbose: true }).catch(() => undefined);
        if (status === undefined) continue; // Already removed.
        this.#sandboxes.set(id, netnsPathOf(status.info));
        await attempt(`stopping pod ${id}`, () => cri.runtime.stopPodSandbox({ pod_sandbox_id: id }));
        const removed = await attempt(`removing pod ${id}`, async () => {
          await cri.runtime.removePodSandbox({ pod_sandbox_id: id });
          return true;
        });
        if (removed === true) removedPods.push(id);
      }
    }
    cri?.close();

    // 2. containerd and all it made (containers, shims, mounts under its directory).
    const containerdReport = this.#containerd === undefined ? undefined : await this.#containerd.cleanup();
    if (containerdReport !== undefined) problems.push(...containerdReport.problems.map((p) => `containerd: ${p}`));

    // 3. A network namespace outside the harness's directory (only if the netns setting was
    //    ignored) is a bind mount of nsfs: unmount, then remove the file.
    for (const path of this.#sandboxes.values()) {
      if (path === undefined || !existsSync(path)) continue;
      await attempt(`removing network namespace ${path}`, async () => {
        await unmountUnder(path);
        await rm(path, { force: true });
        removedNetns.push(path);
      });
    }

    // 4. CNI leftovers: veths, the bridge, libcni's cache.
    const network = this.#network;
    const cni = network === undefined ? undefined : await attempt('removing CNI leftovers', () => removeCniLeftovers(network, [...this.#sandboxes.keys()], this.#existed.cniCache));

    // 5. The cgroup parent in every hierarchy (runc removed the pods' own cgroups; only
    //    empty directories go).
    let controllers: string[] = [];
    try {
      controllers = readdirSync('/sys/fs/cgroup');
    } catch {
      // No cgroup filesystem.
    }
    for (const controller of ['', ...controllers]) {
      const path = join('/sys/fs/cgroup', controller, this.cgroupParent);
      if (!existsSync(path)) continue;
      await attempt(`removing cgroup ${path}`, async () => {
        await rmdir(path);
        removedCgroups.push(path);
      });
    }

    // 6. runc's k8s.io state directory, if this environment made it and it is empty (another
    //    CRI test process may be using it: then rmdir fails, and that is fine).
    if (!this.#existed.runcRoot) await rmdir(CRI_RUNC_ROOT).catch(() => undefined);

    // 7. The environment's directory.
    await attempt(`removing ${this.dir}`, () => rm(this.dir, { recursive: true, force: true, maxRetries: 3 }));
    return { removedPods, containerd: containerdReport, cni, removedNetns, removedCgroups, problems };
  }
}

/**
 * Waits until the CRI plugin answers. containerd's gRPC socket (what the harness waits for)
 * is up before CRI has loaded its state: until then every CRI call fails with UNKNOWN
 * "server is not initialized yet" (seen after a restart with pods to recover).
 *
 * @throws CriError (the last answer) when CRI is not ready within `timeoutMs`.
 */
export async function waitForCri(cri: CriClient, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await cri.runtime.listPodSandbox(undefined, { timeoutMs: 5_000 });
      return;
    } catch (error) {
      const initializing = error instanceof CriError && error.details.includes('not initialized');
      if (!initializing || Date.now() > deadline) throw error;
    }
    await sleep(20);
  }
}

/** Whether a hook's context says its test failed (`passed` exists at run time since Node 20.12). */
function failed(context: unknown): boolean {
  return typeof context === 'object' && context !== null && 'passed' in context && context.passed === false;
}

/**
 * node:test wiring: one environment per file (or suite), started in `before`, cleaned in
 * `after` even when a test failed; a failed test keeps containerd's log.
 *
 * @returns a getter for the environment.
 * @throws (the getter) Error when called before `before` ran or after it failed.
 */
export function useCriEnvironment(options: CriEnvironmentOptions = {}): () => CriEnvironment {
  let environment: CriEnvironment | undefined;
  before(async () => {
    environment = await startCriEnvironment(options);
  });
  afterEach((context) => {
    if (environment !== undefined && failed(context)) environment.containerd.keepLog('a CRI test failed');
  });
  after(async () => {
    const report = await environment?.cleanup();
    if (report !== undefined && report.problems.length > 0) {
      process.stderr.write(`CRI environment cleanup problems:\n  ${report.problems.join('\n  ')}\n`);
    }
  });
  return () => {
    if (environment === undefined) throw new Error('the CRI environment is not running: its before hook has not run or failed');
    return environment;
  };
}
