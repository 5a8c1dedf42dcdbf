/**
 * The OCI runtime driver: runc's command line (crun and youki speak the same), for
 * one container. Modelled on containerd/go-runc's runc.go, with one difference that
 * matters: every invocation goes through the {@link ProcessMonitor} (never
 * child_process), so runc's own exit and the exits of the container processes it
 * leaves behind are collected by the one reaper.
 *
 * Failures become a {@link RuntimeError} whose message says which command failed for
 * which container and carries runc's own last error, taken from its JSON log file
 * (`--log <file> --log-format json`; only the lines this invocation appended) or from
 * its stderr.
 */
import { channel } from 'node:diagnostics_channel';
import { accessSync, constants as fsConstants, readSync, statSync, writeSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { delimiter, isAbsolute, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { FdWatcher, Native } from '../native/facade.js';
import type { CheckpointRequest, Logger, RuntimeSettings } from './api.js';
import { RuntimeError, invalidArgument, messageOf, notFound, unknown } from './errors.js';
import type { ProcessMonitor } from './process-monitor.js';
import { exitStatusOf } from './process-monitor.js';

/** What {@link runtimeInvocationChannel} publishes, once per OCI runtime invocation. */
export interface RuntimeInvocationMessage {
  /** The runc subcommand: create, start, exec, kill, delete, ... */
  readonly verb: string;
  readonly containerId: string;
  /** From spawn to exit (and, for captured output, EOF) of the runtime process. */
  readonly durationMs: number;
  readonly exitStatus: number;
}

/**
 * `tsrun:runc`: every OCI runtime invocation and how long we waited for it, so a
 * caller can tell its own cost from runc's (the shim subtracts it per Task call).
 * Publishing costs nothing while nobody subscribes.
 */
export const runtimeInvocationChannel = channel('tsrun:runc');

/** The runtime settings when containerd sends no options: runc from PATH, its default root. */
export const defaultRuntimeSettings: RuntimeSettings = Object.freeze({
  binaryName: 'runc',
  root: '',
  systemdCgroup: false,
  noPivotRoot: false,
  noNewKeyring: false,
  ioUid: 0,
  ioGid: 0,
  criuImagePath: '',
  criuWorkPath: '',
});

/** The default `--root` when the runc Options leave it empty, as the Go shim's default plus the namespace. */
export function defaultRuntimeRoot(namespace: string): string {
  return join('/run/containerd/runc', namespace);
}

/** How the spawned OCI runtime process's fds 0, 1 and 2 are wired (our fds; -1 = /dev/null). */
export type RuntimeFds = readonly [number, number, number];

/** Where the container's (or exec's) process is, once runc reported it. */
export interface Spawned {
  /** `performance.now()` just before runc was spawned: see AdoptOptions.startedAfter. */
  readonly spawnedAt: number;
}

export interface CreateOptions {
  readonly bundle: string;
  readonly pidFile: string;
  readonly fds: RuntimeFds;
  readonly consoleSocket: string | undefined;
}

export interface ExecOptions {
  /** Path of the OCI Process JSON file. */
  readonly processFile: string;
  readonly pidFile: string;
  readonly fds: RuntimeFds;
  readonly consoleSocket: string | undefined;
  /** A log file of this exec alone, so concurrent execs never read each other's errors. */
  readonly logFile: string;
}

export interface RestoreOptions extends CreateOptions {
  readonly imagePath: string;
  readonly workPath: string;
  readonly parentPath: string;
}

/** runc's CLI for one container. Every method rejects with a {@link RuntimeError}. */
export interface OciRuntime {
  /** The absolute path of the runtime binary. */
  readonly binary: string;
  /** `--root` of every invocation. */
  readonly root: string;
  /** `runc create`; resolves once runc exited successfully (the pid file is written). */
  create(options: CreateOptions): Promise<Spawned>;
  /** `runc start`. */
  start(): Promise<void>;
  /** `runc exec --detach`; resolves once runc exited successfully (the pid file is written). */
  exec(options: ExecOptions): Promise<Spawned>;
  /** `runc restore --detach`; resolves once runc exited successfully. */
  restore(options: RestoreOptions): Promise<Spawned>;
  /**
   * `runc kill [--all]`. NotFound when the container or process is already gone
   * ("container not running", "process already finished", ESRCH, "does not exist").
   */
  kill(signal: number, all: boolean): Promise<void>;
  pause(): Promise<void>;
  resume(): Promise<void>;
  /** `runc update --resources -` with the OCI LinuxResources JSON on stdin. */
  update(resources: object): Promise<void>;
  /** `runc ps --format json`: the host pids in the container's cgroup. */
  ps(): Promise<number[]>;
  /** `runc delete [--force]`; a container runc does not know is already deleted (no error). */
  delete(force: boolean): Promise<void>;
  /** `runc checkpoint` with containerd's CheckpointOptions. */
  checkpoint(request: CheckpointRequest, imagePath: string, workPath: string): Promise<void>;
  /** `runc state`: the runtime's view of the container (used by tests and diagnostics). */
  state(): Promise<{ status: string; pid: number }>;
}

export interface OciRuntimeOptions {
  readonly settings: RuntimeSettings;
  readonly namespace: string;
  readonly containerId: string;
  readonly bundle: string;
  readonly monitor: ProcessMonitor;
  readonly native: Native;
  readonly logger: Logger;
}

/** Builds the driver for one container. Throws InvalidArgument when the runtime binary cannot be found. */
export function createOciRuntime(options: OciRuntimeOptions): OciRuntime {
  const binary = findBinary(options.settings.binaryName === '' ? 'runc' : options.settings.binaryName);
  return new Runc(options, binary);
}

/** The first 64 KiB of stdout and stderr are kept; runc's own output is small. */
const MAX_CAPTURE = 64 * 1024;
/** Linux's default pipe capacity: stdin written before spawn must fit without blocking. */
const PIPE_CAPACITY = 64 * 1024;

interface RunOptions {
  /** Our fds for runc's fds 0, 1, 2 (create, exec, restore): nothing is captured. */
  readonly fds?: RuntimeFds;
  /** Bytes for runc's stdin. */
  readonly input?: string;
  /** The --log file; the container's log.json unless given. */
  readonly logFile?: string;
}

interface RunResult {
  readonly stdout: string;
  readonly spawnedAt: number;
}

class Runc implements OciRuntime {
  readonly binary: string;
  readonly root: string;
  readonly #options: OciRuntimeOptions;
  readonly #logFile: string;
  readonly #logger: Logger;

  constructor(options: OciRuntimeOptions, binary: string) {
    this.#options = options;
    this.binary = binary;
    this.root = options.settings.root === '' ? defaultRuntimeRoot(options.namespace) : options.settings.root;
    this.#logFile = join(options.bundle, 'log.json');
    this.#logger = options.logger;
  }

  async create(o: CreateOptions): Promise<Spawned> {
    const args = ['create', '--bundle', o.bundle, '--pid-file', o.pidFile];
    if (o.consoleSocket !== undefined) args.push('--console-socket', o.consoleSocket);
    args.push(...this.#createFlags(), this.#id);
    const { spawnedAt } = await this.#run(args, { fds: o.fds });
    return { spawnedAt };
  }

  async start(): Promise<void> {
    await this.#run(['start', this.#id], {});
  }

  async exec(o: ExecOptions): Promise<Spawned> {
    const args = ['exec', '--process', o.processFile, '--detach', '--pid-file', o.pidFile];
    if (o.consoleSocket !== undefined) args.push('--console-socket', o.consoleSocket);
    args.push(this.#id);
    const { spawnedAt } = await this.#run(args, { fds: o.fds, logFile: o.logFile });
    return { spawnedAt };
  }

  async restore(o: RestoreOptions): Promise<Spawned> {
    const args = ['restore', '--detach', '--pid-file', o.pidFile, '--image-path', o.imagePath, '--work-path', o.workPath];
    if (o.parentPath !== '') args.push('--parent-path', o.parentPath);
    if (o.consoleSocket !== undefined) args.push('--console-socket', o.consoleSocket);
    // We are the subreaper: runc must not stay around as one (go-runc RestoreOpts.NoSubreaper).
    args.push('--no-subreaper');
    if (this.#options.settings.noPivotRoot) args.push('--no-pivot');
    args.push('--bundle', o.bundle, this.#id);
    const { spawnedAt } = await this.#run(args, { fds: o.fds });
    return { spawnedAt };
  }

  async kill(signal: number, all: boolean): Promise<void> {
    const args = all ? ['kill', '--all', this.#id, String(signal)] : ['kill', this.#id, String(signal)];
    try {
      await this.#run(args, {});
    } catch (err) {
      // containerd's process/utils.go checkKillError: a target already gone is NotFound.
      if (err instanceof RuntimeError && /container not running|process already finished|no such process|does not exist/i.test(err.message)) {
        throw notFound(err.message, err);
      }
      throw err;
    }
  }

  async pause(): Promise<void> {
    await this.#run(['pause', this.#id], {});
  }

  async resume(): Promise<void> {
    await this.#run(['resume', this.#id], {});
  }

  async update(resources: object): Promise<void> {
    const input = JSON.stringify(resources);
    if (Buffer.byteLength(input) >= PIPE_CAPACITY) {
      throw invalidArgument(`the resources of container '${this.#id}' are too large (${Buffer.byteLength(input)} bytes of JSON)`);
    }
    await this.#run(['update', '--resources', '-', this.#id], { input });
  }

  async ps(): Promise<number[]> {
    const { stdout } = await this.#run(['ps', '--format', 'json', this.#id], {});
    let parsed: unknown;
    try {
      parsed = JSON.parse(stdout);
    } catch (err) {
      throw unknown(`runc ps of container '${this.#id}' printed invalid JSON: ${messageOf(err)}`, err);
    }
    if (parsed === null) return [];
    if (!Array.isArray(parsed) || !parsed.every((p): p is number => typeof p === 'number')) {
      throw unknown(`runc ps of container '${this.#id}' printed something other than a list of pids`);
    }
    return parsed;
  }

  async delete(force: boolean): Promise<void> {
    try {
      await this.#run(force ? ['delete', '--force', this.#id] : ['delete', this.#id], {});
    } catch (err) {
      if (err instanceof RuntimeError && /does not exist/i.test(err.message)) return;
      throw err;
    }
  }

  async checkpoint(r: CheckpointRequest, imagePath: string, workPath: string): Promise<void> {
    const args = ['checkpoint', '--image-path', imagePath, '--work-path', workPath];
    if (!r.exit) args.push('--leave-running');
    if (r.openTcp) args.push('--tcp-established');
    if (r.externalUnixSockets) args.push('--ext-unix-sk');
    if (r.terminal) args.push('--shell-job');
    if (r.fileLocks) args.push('--file-locks');
    if (r.cgroupsMode !== '') args.push('--manage-cgroups-mode', r.cgroupsMode);
    for (const ns of r.emptyNamespaces) args.push('--empty-ns', ns);
    args.push(this.#id);
    await this.#run(args, {});
  }

  async state(): Promise<{ status: string; pid: number }> {
    const { stdout } = await this.#run(['state', this.#id], {});
    const parsed = JSON.parse(stdout) as { status?: unknown; pid?: unknown };
    return { status: typeof parsed.status === 'string' ? parsed.status : '', pid: typeof parsed.pid === 'number' ? parsed.pid : 0 };
  }

  get #id(): string {
    return this.#options.containerId;
  }

  #createFlags(): string[] {
    const flags: string[] = [];
    if (this.#options.settings.noPivotRoot) flags.push('--no-pivot');
    if (this.#options.settings.noNewKeyring) flags.push('--no-new-keyring');
    return flags;
  }

  #globalArgs(logFile: string): string[] {
    const args = ['--root', this.root, '--log', logFile, '--log-format', 'json'];
    if (this.#options.settings.systemdCgroup) args.push('--systemd-cgroup');
    return args;
  }

  /**
   * Runs one invocation to its end. With `fds` (create, exec, restore) runc's stdio is
   * the container process's stdio, so nothing can be captured: a grandchild keeps
   * those pipes open, and runc's errors are read from the log file instead.
   * Otherwise stdout and stderr are captured through pipes.
   */
  async #run(command: readonly string[], o: RunOptions): Promise<RunResult> {
    const native = this.#options.native;
    const logFile = o.logFile ?? this.#logFile;
    const logOffset = sizeOf(logFile);
    const args = [this.binary, ...this.#globalArgs(logFile), ...command];
    const verb = command[0] ?? '';
    const owned: number[] = [];
    const captures: PipeCapture[] = [];
    let stdout: PipeCapture | undefined;
    let stderr: PipeCapture | undefined;
    let fds: readonly number[];
    const spawnedAt = performance.now();
    let child;
    try {
      if (o.fds !== undefined) {
        fds = o.fds;
      } else {
        let stdin = -1;
        if (o.input !== undefined) {
          const [r, w] = native.pipe();
          owned.push(r, w);
          // Fits in the pipe (checked by the caller), so this never blocks.
          writeAllSync(w, o.input);
          native.close(w);
          owned.splice(owned.indexOf(w), 1);
          stdin = r;
        }
        stdout = new PipeCapture(native);
        captures.push(stdout);
        owned.push(stdout.writeEnd);
        stderr = new PipeCapture(native);
        captures.push(stderr);
        owned.push(stderr.writeEnd);
        fds = [stdin, stdout.writeEnd, stderr.writeEnd];
      }
      this.#logger.debug({ args }, 'running the OCI runtime');
      child = this.#options.monitor.spawn({ file: this.binary, args, env: environment(), fds });
    } catch (err) {
      for (const capture of captures) capture.finish();
      throw new RuntimeError('Unknown', `cannot run '${this.binary}' to ${verb} container '${this.#id}': ${messageOf(err)}`, { cause: err });
    } finally {
      // Our copies of the child's ends: only the child may hold them now (or after a failed spawn, nobody).
      for (const fd of owned) native.close(fd);
    }
    const status = await child.exited;
    const stdoutText = stdout?.finish() ?? '';
    const stderrText = stderr?.finish() ?? '';
    const code = exitStatusOf(status);
    if (runtimeInvocationChannel.hasSubscribers) {
      const message: RuntimeInvocationMessage = { verb, containerId: this.#id, durationMs: performance.now() - spawnedAt, exitStatus: code };
      runtimeInvocationChannel.publish(message);
    }
    if (code !== 0) {
      const detail = (await lastLogError(logFile, logOffset)) ?? (stderrText.trim() || `exit status ${code}`);
      throw unknown(`runc ${verb} of container '${this.#id}' failed: ${detail}`);
    }
    return { stdout: stdoutText, spawnedAt };
  }
}

/** The daemon's environment for runc (PATH for criu and hooks, XDG_RUNTIME_DIR, ...). */
function environment(): string[] {
  return Object.entries(process.env).flatMap(([k, v]) => (v === undefined ? [] : [`${k}=${v}`]));
}

/**
 * A pipe for one of runc's output streams, read as data arrives: synchronous reads of the
 * non-blocking read end each time it is readable, so runc never blocks on a full pipe.
 * Nothing waits for end of file: {@link finish}, called once runc was reaped, takes what is
 * left in the pipe. (With two net.Sockets per call, their end events and stream
 * machinery cost about 1 ms between runc's exit and each Task answer on this 2-core box.)
 * A writer that outlives runc (a hook's stray child) is not waited for.
 */
class PipeCapture {
  /** The child's end; the caller closes its copy after the spawn. */
  readonly writeEnd: number;
  readonly #native: Native;
  #readEnd: number;
  #watcher: FdWatcher | undefined;
  readonly #chunks: Buffer[] = [];
  #size = 0;

  constructor(native: Native) {
    this.#native = native;
    const [readEnd, writeEnd] = native.pipe();
    this.#readEnd = readEnd;
    this.writeEnd = writeEnd;
    try {
      this.#watcher = native.watchReadable(readEnd, () => {
        this.#drain();
      });
    } catch (error) {
      native.close(readEnd);
      native.close(writeEnd);
      throw error;
    }
  }

  /** Everything read (the first {@link MAX_CAPTURE} bytes), after a last read; releases the pipe. Idempotent. */
  finish(): string {
    this.#drain();
    this.#stop();
    return Buffer.concat(this.#chunks).toString('utf8');
  }

  #drain(): void {
    if (this.#readEnd < 0) return;
    for (;;) {
      let n: number;
      try {
        n = readSync(this.#readEnd, captureBuffer, 0, captureBuffer.length, null);
      } catch (error) {
        // EAGAIN: drained for now. Anything else ends the capture (nothing to report it to).
        if ((error as NodeJS.ErrnoException).code !== 'EAGAIN') this.#stop();
        return;
      }
      if (n === 0) {
        this.#stop();
        return;
      }
      if (this.#size < MAX_CAPTURE) this.#chunks.push(Buffer.from(captureBuffer.subarray(0, n)));
      this.#size += n;
    }
  }

  #stop(): void {
    this.#watcher?.close();
    this.#watcher = undefined;
    if (this.#readEnd >= 0) this.#native.close(this.#readEnd);
    this.#readEnd = -1;
  }
}

/** Scratch space of every capture's reads (the daemon has one thread). */
const captureBuffer = Buffer.allocUnsafe(64 * 1024);

function writeAllSync(fd: number, text: string): void {
  const data = Buffer.from(text);
  let offset = 0;
  while (offset < data.length) offset += writeSync(fd, data, offset);
}

/**
 * Synchronous: a stat of a file in the daemon's work dir never waits for a disk, and a
 * thread pool round trip before every runc call cost 1 to 2.5 ms of each Create, Start
 * and Delete on this 2-core box (seen with ftrace between a Task call and runc's exec).
 */
function sizeOf(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

/** The message of the last `"level":"error"` line appended to runc's JSON log after `offset`. */
async function lastLogError(path: string, offset: number): Promise<string | undefined> {
  let text: string;
  try {
    const file = await open(path, 'r');
    try {
      const { size } = await file.stat();
      const length = Math.min(size - offset, MAX_CAPTURE);
      if (length <= 0) return undefined;
      const buffer = Buffer.alloc(length);
      await file.read(buffer, 0, length, size - length);
      text = buffer.toString('utf8');
    } finally {
      await file.close();
    }
  } catch {
    return undefined;
  }
  let last: string | undefined;
  for (const line of text.split('\n')) {
    try {
      const entry = JSON.parse(line) as { level?: unknown; msg?: unknown };
      if (entry.level === 'error' && typeof entry.msg === 'string') last = entry.msg;
    } catch {
      // a partial first line (we may have cut into it) or a non-JSON line
    }
  }
  return last;
}

/**
 * Resolves the runtime binary: a path as given, or a name looked up in PATH as Go's
 * exec.LookPath does, on every Create (a runc installed or moved meanwhile is found).
 * Synchronous on purpose: a few stats of files in the dentry cache take microseconds,
 * where a thread pool round trip per PATH entry added about 1 ms to every Create on this
 * 2-core box.
 */
function findBinary(name: string): string {
  if (name.includes('/')) {
    const path = isAbsolute(name) ? name : resolve(name);
    if (isExecutable(path)) return path;
    throw invalidArgument(`the OCI runtime '${name}' is not an executable file: check BinaryName in the runtime options`);
  }
  for (const dir of (process.env['PATH'] ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin').split(delimiter)) {
    if (dir === '') continue;
    const path = join(dir, name);
    if (isExecutable(path)) return path;
  }
  throw invalidArgument(`the OCI runtime '${name}' was not found in PATH: install it or set BinaryName in the runtime options`);
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, fsConstants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}
