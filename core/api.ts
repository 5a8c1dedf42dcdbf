/**
 * The runtime core's public contract: what shim/ maps containerd's Task API onto.
 *
 * Domain types only: no protobuf, no ttrpc. Field names of the stats objects follow
 * containerd's cgroups metrics.proto in protobufjs's camelCase, so shim/ can encode
 * them 1:1 without a mapping table.
 */
import type { EventEmitter } from 'eventemitter3';
import type { Native } from '../native/facade.js';

/** Error codes: gRPC code names, as containerd's errdefs map them. */
export type ErrorCode =
  | 'InvalidArgument'
  | 'NotFound'
  | 'AlreadyExists'
  | 'FailedPrecondition'
  | 'Unimplemented'
  | 'Unavailable'
  | 'DeadlineExceeded'
  | 'Canceled'
  | 'Internal'
  | 'Unknown';

/** Status of a process, as containerd's `containerd.v1.types.Status` names them. */
export type ProcessStatus = 'created' | 'running' | 'pausing' | 'paused' | 'stopped' | 'deleted';

/** One rootfs mount, as containerd's `containerd.types.Mount`. */
export interface Mount {
  readonly type: string;
  readonly source: string;
  readonly target: string;
  readonly options: readonly string[];
}

/**
 * Where a process's stdio goes. Each of stdin/stdout/stderr is '' (none), a fifo
 * path (no scheme or `fifo://`), `file:///path`, or `binary:///path?args`
 * (stdout decides the scheme for both output streams, as in the Go shim).
 */
export interface Stdio {
  readonly stdin: string;
  readonly stdout: string;
  readonly stderr: string;
  readonly terminal: boolean;
}

/** The OCI runtime settings of one container, from runc Options (runc's CLI shape). */
export interface RuntimeSettings {
  /** The OCI runtime binary: a path or a name looked up in PATH ('runc' by default). */
  readonly binaryName: string;
  /** `--root` of the OCI runtime; default `/run/containerd/runc/<namespace>`. */
  readonly root: string;
  readonly systemdCgroup: boolean;
  readonly noPivotRoot: boolean;
  readonly noNewKeyring: boolean;
  readonly ioUid: number;
  readonly ioGid: number;
  readonly criuImagePath: string;
  readonly criuWorkPath: string;
}

export interface CreateRequest {
  readonly id: string;
  /** Absolute path of the OCI bundle (holds config.json). */
  readonly bundle: string;
  /** Mounted onto `<bundle>/rootfs` before create; unmounted on delete. */
  readonly rootfs: readonly Mount[];
  readonly stdio: Stdio;
  /** Restore from this checkpoint image directory when non-empty. */
  readonly checkpoint: string;
  readonly parentCheckpoint: string;
  readonly settings: RuntimeSettings;
}

export interface ExecRequest {
  readonly containerId: string;
  readonly execId: string;
  readonly stdio: Stdio;
  /** The OCI `Process` object (parsed JSON of containerd's spec Any). */
  readonly spec: unknown;
}

/** A process's exit: code, or 128 + signal. */
export interface ExitInfo {
  readonly pid: number;
  readonly exitStatus: number;
  readonly exitedAt: Date;
}

export interface ProcessState {
  readonly containerId: string;
  /** '' for the init process. */
  readonly execId: string;
  readonly bundle: string;
  readonly pid: number;
  readonly status: ProcessStatus;
  readonly stdio: Stdio;
  /** Set once stopped. */
  readonly exit: ExitInfo | undefined;
}

export interface ProcessInfo {
  readonly pid: number;
  /** The exec id when the pid is a known exec process. */
  readonly execId: string | undefined;
}

export interface CheckpointRequest {
  readonly containerId: string;
  /** Image path; '' means the runtime settings' criuImagePath. */
  readonly path: string;
  readonly exit: boolean;
  readonly openTcp: boolean;
  readonly externalUnixSockets: boolean;
  readonly terminal: boolean;
  readonly fileLocks: boolean;
  readonly emptyNamespaces: readonly string[];
  readonly cgroupsMode: string;
  readonly workPath: string;
}

/** Container metrics, shaped 1:1 as containerd's cgroups v1 or v2 Metrics message (camelCase fields). */
export type ContainerStats =
  | { readonly kind: 'v1'; readonly metrics: Readonly<Record<string, unknown>> }
  | { readonly kind: 'v2'; readonly metrics: Readonly<Record<string, unknown>> };

/**
 * Domain events, emitted in the order containerd requires (DESIGN.md section 3):
 * create < start < exit < delete; exec-added < exec-started < exec exit; a
 * container's init exit after every exec exit of that container; a process's exit
 * only after its stdout/stderr were copied to the end (bounded).
 */
export interface RuntimeEvents {
  'task-create': (e: { containerId: string; bundle: string; rootfs: readonly Mount[]; stdio: Stdio; checkpoint: string; pid: number }) => void;
  'task-start': (e: { containerId: string; pid: number }) => void;
  'task-exit': (e: { containerId: string; id: string; pid: number; exitStatus: number; exitedAt: Date }) => void;
  'task-delete': (e: { containerId: string; id: string; pid: number; exitStatus: number; exitedAt: Date }) => void;
  'exec-added': (e: { containerId: string; execId: string }) => void;
  'exec-started': (e: { containerId: string; execId: string; pid: number }) => void;
  'task-oom': (e: { containerId: string }) => void;
  'task-paused': (e: { containerId: string }) => void;
  'task-resumed': (e: { containerId: string }) => void;
  'task-checkpointed': (e: { containerId: string; checkpoint: string }) => void;
}

/** A minimal structured logger (pino's shape), injected so core/ stays independent of pino setup. */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  child(bindings: object): Logger;
}

export interface RuntimeOptions {
  readonly native: Native;
  /** containerd namespace of every container of this runtime. */
  readonly namespace: string;
  readonly logger: Logger;
  /** Bound on waiting for a process's stdout/stderr to reach EOF after it exited (ms). Default 2000. */
  readonly ioDrainTimeoutMs?: number;
}

/**
 * The runtime core: every container and process of one daemon. All methods reject
 * with a {@link RuntimeError}; unknown failures are wrapped as 'Unknown'.
 * `execId` '' (or absent) means the container's init process.
 */
export interface Runtime extends EventEmitter<RuntimeEvents> {
  create(request: CreateRequest): Promise<{ pid: number }>;
  start(containerId: string, execId?: string): Promise<{ pid: number }>;
  /** Deletes a stopped (or never started) process; for the init, removes the container. */
  delete(containerId: string, execId?: string): Promise<ExitInfo>;
  exec(request: ExecRequest): Promise<void>;
  kill(containerId: string, execId: string, signal: number, all: boolean): Promise<void>;
  resizePty(containerId: string, execId: string, size: { width: number; height: number }): Promise<void>;
  closeIO(containerId: string, execId: string): Promise<void>;
  pause(containerId: string): Promise<void>;
  resume(containerId: string): Promise<void>;
  /** `resources` is an OCI LinuxResources object (parsed JSON). */
  update(containerId: string, resources: unknown): Promise<void>;
  pids(containerId: string): Promise<ProcessInfo[]>;
  state(containerId: string, execId?: string): Promise<ProcessState>;
  /** Resolves with the exit once the process has exited (and its exit event was emitted). */
  wait(containerId: string, execId?: string): Promise<ExitInfo>;
  stats(containerId: string): Promise<ContainerStats>;
  checkpoint(request: CheckpointRequest): Promise<void>;
  /** Ids of the containers this runtime holds (not yet deleted). */
  containerIds(): string[];
  /** Pid of the init process, 0 if unknown. */
  initPid(containerId: string): number;
  /** Releases every watcher and fd; does not kill containers. */
  close(): Promise<void>;
}
