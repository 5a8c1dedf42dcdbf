/**
 * containerd 1.6's config.toml (version 2) for a private instance: its own root, state and
 * sockets, only the plugins tests need, and optionally the CRI plugin with a runtime table.
 * Pure: builds text from paths and options, so it is tested without a containerd.
 */
import { stringify, type TomlTable } from 'smol-toml';

/** Where one private containerd keeps everything. All absolute paths. */
export interface ContainerdPaths {
  readonly root: string;
  readonly state: string;
  /** gRPC socket path (no `unix://`). */
  readonly address: string;
  /** ttrpc socket path: where shims send events (`TTRPC_ADDRESS`). */
  readonly ttrpcAddress: string;
}

/** containerd's log levels (`[debug] level`). */
export type ContainerdLogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error';

/** One CRI runtime handler: `[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.<name>]`. */
export interface CriRuntime {
  /** The runtime type containerd resolves to a shim binary, e.g. `io.containerd.tsrun.v1`. */
  readonly runtimeType: string;
  /** The handler's `options` table (runc Options field names for runc; free-form otherwise). */
  readonly options?: TomlTable;
  /** Pod annotations passed through to the runtime (`pod_annotations`). */
  readonly podAnnotations?: readonly string[];
  /** Container annotations passed through to the runtime (`container_annotations`). */
  readonly containerAnnotations?: readonly string[];
}

/** The CRI plugin's settings; the plugin stays disabled when none are given. */
export interface CriConfig {
  /** Handlers by name, e.g. `{ runc: {...}, tsrun: { runtimeType: 'io.containerd.tsrun.v1' } }`. */
  readonly runtimes: Readonly<Record<string, CriRuntime>>;
  /** The handler used when a pod names none; `runc` when left out. */
  readonly defaultRuntimeName?: string;
  readonly cniConfDir: string;
  readonly cniBinDir: string;
  /** The pod sandbox ("pause") image; it must already be imported into the `k8s.io` namespace. */
  readonly sandboxImage: string;
  /** Extra keys merged into `[plugins."io.containerd.grpc.v1.cri"]`. */
  readonly extra?: TomlTable;
}

/** Input of {@link renderContainerdConfig}. */
export interface ContainerdConfigInput {
  readonly paths: ContainerdPaths;
  readonly logLevel: ContainerdLogLevel;
  readonly cri?: CriConfig;
  /** Merged last, over everything generated (tables merge key by key; other values replace). */
  readonly extra?: TomlTable;
}

const CRI_PLUGIN = 'io.containerd.grpc.v1.cri';

/**
 * Plugins a private test instance never needs: `opt` creates /opt/containerd on the host,
 * and the aufs/btrfs/devmapper/zfs snapshotters only probe and log errors.
 * Not in the list: `io.containerd.runtime.v1.linux`. containerd 1.6's tasks service requires
 * a runtime v1 plugin and fails to load without it ("no plugins registered for
 * io.containerd.runtime.v1"), which takes `ctr tasks` and `ctr run` down with it.
 */
export const DISABLED_PLUGINS: readonly string[] = [
  'io.containerd.internal.v1.opt',
  'io.containerd.snapshotter.v1.aufs',
  'io.containerd.snapshotter.v1.btrfs',
  'io.containerd.snapshotter.v1.devmapper',
  'io.containerd.snapshotter.v1.zfs',
  'io.containerd.tracing.processor.v1.otlp',
  'io.containerd.internal.v1.tracing',
];

/** Renders config.toml. */
export function renderContainerdConfig(input: ContainerdConfigInput): string {
  const { paths, cri } = input;
  const disabled = cri === undefined ? [...DISABLED_PLUGINS, CRI_PLUGIN] : [...DISABLED_PLUGINS];
  const plugins: TomlTable = {};
  if (cri !== undefined) plugins[CRI_PLUGIN] = criTable(cri);
  const config: TomlTable = {
    version: 2,
    root: paths.root,
    state: paths.state,
    disabled_plugins: disabled,
    grpc: { address: paths.address },
    ttrpc: { address: paths.ttrpcAddress },
    debug: { level: input.logLevel },
    plugins,
  };
  return stringify(input.extra === undefined ? config : merge(config, input.extra));
}

function criTable(cri: CriConfig): TomlTable {
  const runtimes: TomlTable = {};
  for (const [name, runtime] of Object.entries(cri.runtimes)) {
    const table: TomlTable = { runtime_type: runtime.runtimeType };
    if (runtime.podAnnotations !== undefined) table['pod_annotations'] = [...runtime.podAnnotations];
    if (runtime.containerAnnotations !== undefined) table['container_annotations'] = [...runtime.containerAnnotations];
    if (runtime.options !== undefined) table['options'] = runtime.options;
    runtimes[name] = table;
  }
  const table: TomlTable = {
    sandbox_image: cri.sandboxImage,
    // This VM lacks CAP_SYS_RESOURCE: without this, CRI asks runc for an oom_score_adj
    // below containerd's own and container start fails with EACCES.
    restrict_oom_score_adj: true,
    // Keep pod network namespaces under the private state dir (not /var/run/netns), so
    // cleanup finds and unmounts them with everything else.
    netns_mounts_under_state_dir: true,
    // Nothing here serves TLS or needs the stream server on a fixed port.
    stream_server_address: '127.0.0.1',
    stream_server_port: '0',
    containerd: {
      snapshotter: 'overlayfs',
      default_runtime_name: cri.defaultRuntimeName ?? 'runc',
      runtimes,
    },
    cni: { bin_dir: cri.cniBinDir, conf_dir: cri.cniConfDir },
  };
  return cri.extra === undefined ? table : merge(table, cri.extra);
}

function isTable(value: unknown): value is TomlTable {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Date);
}

/** Deep merge: tables merge key by key, anything else in `over` replaces what `base` had. */
export function merge(base: TomlTable, over: TomlTable): TomlTable {
  const out: TomlTable = { ...base };
  for (const [key, value] of Object.entries(over)) {
    const current = out[key];
    out[key] = isTable(current) && isTable(value) ? merge(current, value) : value;
  }
  return out;
}
