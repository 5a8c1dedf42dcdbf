/**
 * A container: its init process, its exec processes, the OCI runtime driver, the
 * rootfs mounts, the cgroup and OOM watch. This is where the lifecycle verbs run and
 * where the order of exit events is decided.
 *
 * Exit delivery (DESIGN.md section 3, "Every exit is delivered exactly once" and
 * "Event order"). Races handled here, each with the code that handles it:
 *
 * - **Early exit** (containerd's preStart/handleStarted, facts 3.3): a process can
 *   exit before the event announcing it is out: the init before `runc start`
 *   returned, an exec before `runc exec --detach` returned and its pid file was read.
 *   The monitor keeps such exits (the unclaimed exits table covers the time before the
 *   pid is known), `#onReaped` records them, and the process's gate holds them until
 *   the start event was emitted. With one JS thread, "hold" is a flag: the start verb
 *   closes the gate before spawning runc and opens it after emitting, then delivers a
 *   held exit itself.
 * - **Init exit last** (containerd#9719, #10603): `#runningExecs` counts execs from
 *   the moment their start begins until their exit event is out (or their start
 *   failed); the init's exit waits for the count to reach zero. Exec starts are
 *   refused once the init was reaped (containerd#10634), so the count cannot grow
 *   after that.
 * - **No lost output**: each process's exit waits for its stdout/stderr to drain,
 *   bounded by `ioDrainTimeoutMs` (a grandchild may keep the pipe open); the drain
 *   starts when the process is reaped, so the init's drain overlaps the exec waits.
 *   For a fifo the drain also waits for the client to read what is left in it while
 *   the client keeps reading (at most 25 ms without progress: core/io/reader-wait.ts),
 *   because containerd 1.6's ctr drops the fifo's content when the exit reaches it.
 * - **Shared pid namespace**: without a pid namespace of its own, the init's exit
 *   does not take the container's other processes down; `runc kill --all KILL` does
 *   (containerd's ShouldKillAllOnExit), before waiting for the exec exits.
 * - **Delete of a never-started container**: `runc delete --force` kills the waiting
 *   `runc init`; its exit goes out before the delete event (create < exit < delete).
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { copyFile, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { WaitStatus } from '../native/facade.js';
import type {
  CheckpointRequest,
  ContainerStats,
  CreateRequest,
  ExecRequest,
  ExitInfo,
  Logger,
  ProcessInfo,
  ProcessState,
  RuntimeEvents,
  RuntimeSettings,
} from './api.js';
import type { Bundle } from './bundle.js';
import { readBundle } from './bundle.js';
import type { CgroupRef, OomWatcher } from './cgroups/index.js';
import { cgroupOfPid, readStats, watchOom } from './cgroups/index.js';
import { RuntimeError, failedPrecondition, invalidArgument, messageOf, notFound, unknown } from './errors.js';
import type { ProcessIO } from './io/index.js';
import { createProcessIO } from './io/index.js';
import { mountAll, unmountAll } from './mount.js';
import { Process } from './process.js';
import type { MonitoredChild, ProcessMonitor } from './process-monitor.js';
import { exitStatusOf, reapedAt } from './process-monitor.js';
import type { OciRuntime } from './runc.js';
import { createOciRuntime } from './runc.js';
import * as machine from './state.js';
import type { Native } from '../native/facade.js';

const SIGKILL = 9;
/** SIGRTMAX on Linux. */
const MAX_SIGNAL = 64;

/**
 * Prefix of each container's private work directory in the temp dir (console sockets,
 * exec specs, CRIU work files); removed on delete.
 */
export const WORK_DIR_PREFIX = 'tsrun-work-';

/** How long delete waits for the exit of a never-started init after `runc delete --force`. */
const DELETE_EXIT_TIMEOUT_MS = 10_000;

type EmitFn = <K extends keyof RuntimeEvents>(event: K, payload: Parameters<RuntimeEvents[K]>[0]) => void;

/** What every container of a runtime shares. */
export interface ContainerContext {
  readonly native: Native;
  readonly monitor: ProcessMonitor;
  readonly logger: Logger;
  readonly namespace: string;
  readonly ioDrainTimeoutMs: number;
  readonly emit: EmitFn;
}

/** One container of the runtime. Every method rejects with a RuntimeError. */
export class Container {
  readonly id: string;
  readonly init: Process;
  readonly #ctx: ContainerContext;
  readonly #logger: Logger;
  readonly #bundle: Bundle;
  readonly #settings: RuntimeSettings;
  readonly #runc: OciRuntime;
  readonly #workDir: string;
  readonly #rootfsMounted: boolean;
  readonly #rootfs: CreateRequest['rootfs'];
  /** Restore source, when created from a checkpoint: `start` runs `runc restore`. */
  readonly #checkpoint: { readonly path: string; readonly parent: string } | undefined;
  readonly #execs = new Map<string, Process>();
  #cgroup: CgroupRef | undefined;
  #oom: OomWatcher | undefined;
  /** Execs whose start began and whose exit event is not out yet (guarded by the JS thread). */
  #runningExecs = 0;
  #execsIdle: (() => void)[] = [];
  /** Set once delete of the container began: no new exec or start. */
  #deleting = false;

  private constructor(
    ctx: ContainerContext,
    request: CreateRequest,
    parts: { bundle: Bundle; runc: OciRuntime; workDir: string; rootfsMounted: boolean },
  ) {
    this.id = request.id;
    this.#ctx = ctx;
    this.#logger = ctx.logger.child({ container: request.id });
    this.#bundle = parts.bundle;
    this.#settings = request.settings;
    this.#runc = parts.runc;
    this.#workDir = parts.workDir;
    this.#rootfsMounted = parts.rootfsMounted;
    this.#rootfs = request.rootfs;
    this.#checkpoint = request.checkpoint === '' ? undefined : { path: request.checkpoint, parent: request.parentCheckpoint };
    this.init = new Process({ containerId: request.id, execId: '', bundle: request.bundle, stdio: request.stdio });
  }

  /**
   * Creates the container: mounts the rootfs, sets up the init's stdio, runs
   * `runc create` (unless restoring from a checkpoint, which happens at start),
   * adopts the init, starts the OOM watch, emits task-create. Undoes every step on
   * failure. Throws NotFound/InvalidArgument for a bad bundle, Unknown when runc fails.
   */
  static async create(ctx: ContainerContext, request: CreateRequest): Promise<Container> {
    const bundle = readBundle(request.bundle);
    const runc = createOciRuntime({
      settings: request.settings,
      namespace: ctx.namespace,
      containerId: request.id,
      bundle: bundle.path,
      monitor: ctx.monitor,
      native: ctx.native,
      logger: ctx.logger,
    });
    // Short and private: console sockets live here, and a unix socket path has 108 bytes.
    const workDir = mkdtempSync(join(tmpdir(), WORK_DIR_PREFIX));
    let rootfsMounted = false;
    try {
      if (request.rootfs.length > 0) {
        mkdirSync(bundle.rootfs, { recursive: true, mode: 0o711 });
        rootfsMounted = true;
        mountAll(ctx.native, request.rootfs, bundle.rootfs);
      }
    } catch (err) {
      if (rootfsMounted) unmountAll(ctx.native, bundle.rootfs);
      rmSync(workDir, { recursive: true, force: true });
      throw RuntimeError.from(err);
    }
    const container = new Container(ctx, request, { bundle, runc, workDir, rootfsMounted });
    try {
      await container.#createInit();
    } catch (err) {
      await container.#undoCreate();
      throw RuntimeError.from(err);
    }
    return container;
  }

  async #createInit(): Promise<void> {
    const init = this.init;
    init.io = await this.#createIO('', init.stdio);
    if (this.#checkpoint === undefined) {
      const pidFile = this.#pidFile('');
      const spawned = await this.#runc.create({
        bundle: this.#bundle.path,
        pidFile,
        fds: init.io.runtimeFds,
        consoleSocket: init.io.consoleSocket,
      });
      init.pid = readPidFile(pidFile, 'runc create', this.id);
      this.#watchExit(init, this.#ctx.monitor.adopt(init.pid, { startedAfter: spawned.spawnedAt }));
      await init.io.started();
      // Right after create: the init waits in created state and could already hit its
      // memory limit (the Go shim registers the OOM watch here for the same reason).
      this.#watchCgroup(init.pid);
    }
    this.#ctx.emit('task-create', {
      containerId: this.id,
      bundle: this.#bundle.path,
      rootfs: this.#rootfs,
      stdio: init.stdio,
      checkpoint: this.#checkpoint?.path ?? '',
      pid: init.pid,
    });
    this.#openGate(init);
  }

  /** Best-effort removal of everything a failed create made. */
  async #undoCreate(): Promise<void> {
    // runc may have left state behind even when create failed (none exists for a restore yet).
    if (this.#checkpoint === undefined) {
      await this.#runc.delete(true).catch((err: unknown) => {
        this.#logger.warn({ err }, 'runc delete after a failed create failed');
      });
    }
    await this.#release();
  }

  /** Closes stdio, the OOM watch, unmounts the rootfs and removes our files. Never throws. */
  async #release(): Promise<void> {
    const processes = [this.init, ...this.#execs.values()];
    for (const p of processes) {
      await p.io?.close().catch((err: unknown) => {
        this.#logger.warn({ err, exec: p.execId }, 'closing stdio failed');
      });
    }
    this.#oom?.close();
    this.#oom = undefined;
    if (this.#rootfsMounted) {
      try {
        unmountAll(this.#ctx.native, this.#bundle.rootfs);
      } catch (err) {
        this.#logger.warn({ err }, 'unmounting the rootfs failed');
      }
    }
    // Synchronously: a few unlinks take microseconds, thread pool round trips about 2 ms
    // of every Delete on this 2-core box.
    for (const file of [this.#pidFile(''), ...[...this.#execs.keys()].map((e) => this.#pidFile(e))]) rmSync(file, { force: true });
    rmSync(this.#workDir, { recursive: true, force: true });
  }

  /** Starts the init (or restores it from the checkpoint) or an exec. */
  async start(execId: string): Promise<{ pid: number }> {
    this.#assertNotDeleting();
    return execId === '' ? this.#startInit() : this.#startExec(this.#exec(execId));
  }

  async #startInit(): Promise<{ pid: number }> {
    const init = this.init;
    const release = init.claim('start');
    try {
      machine.start(init.state, 'task');
      if (init.reaped !== undefined) throw failedPrecondition('cannot start task: its process has already exited');
      // Early exit: from here until task-start is out, an exit is held.
      init.gateOpen = false;
      try {
        if (this.#checkpoint === undefined) await this.#runc.start();
        else await this.#restore(this.#checkpoint);
      } catch (err) {
        this.#openGate(init);
        throw err;
      }
      init.transition((s) => machine.start(s, 'task'));
      this.#ctx.emit('task-start', { containerId: this.id, pid: init.pid });
      this.#openGate(init);
      return { pid: init.pid };
    } finally {
      release();
    }
  }

  async #restore(checkpoint: { readonly path: string; readonly parent: string }): Promise<void> {
    const init = this.init;
    const io = init.io;
    if (io === undefined) throw new Error('restore without stdio');
    const pidFile = this.#pidFile('');
    const workPath = this.#settings.criuWorkPath !== '' ? this.#settings.criuWorkPath : join(this.#workDir, 'criu-work');
    await mkdir(workPath, { recursive: true });
    const spawned = await this.#runc.restore({
      bundle: this.#bundle.path,
      pidFile,
      fds: io.runtimeFds,
      consoleSocket: io.consoleSocket,
      imagePath: checkpoint.path,
      workPath,
      parentPath: checkpoint.parent,
    });
    init.pid = readPidFile(pidFile, 'runc restore', this.id);
    this.#watchExit(init, this.#ctx.monitor.adopt(init.pid, { startedAfter: spawned.spawnedAt }));
    await io.started();
    this.#watchCgroup(init.pid);
  }

  async #startExec(proc: Process): Promise<{ pid: number }> {
    const release = proc.claim('start');
    try {
      machine.start(proc.state, 'exec');
      if (this.init.reaped !== undefined) {
        throw failedPrecondition(`cannot start exec '${proc.execId}': the init process of container '${this.id}' has exited`);
      }
      this.#runningExecs += 1;
      try {
        await this.#spawnExec(proc);
      } catch (err) {
        await this.#abandonExec(proc);
        throw err;
      }
      proc.transition((s) => machine.start(s, 'exec'));
      this.#ctx.emit('exec-started', { containerId: this.id, execId: proc.execId, pid: proc.pid });
      this.#openGate(proc);
      return { pid: proc.pid };
    } finally {
      release();
    }
  }

  async #spawnExec(proc: Process): Promise<void> {
    proc.io = await this.#createIO(proc.execId, proc.stdio);
    const processFile = join(this.#workDir, `${proc.execId}.json`);
    await writeFile(processFile, JSON.stringify({ ...proc.spec, terminal: proc.stdio.terminal }), { mode: 0o600 });
    const pidFile = this.#pidFile(proc.execId);
    const logFile = join(this.#workDir, `${proc.execId}-log.json`);
    let spawned;
    try {
      spawned = await this.#runc.exec({ processFile, pidFile, fds: proc.io.runtimeFds, consoleSocket: proc.io.consoleSocket, logFile });
    } finally {
      // runc has read the spec, and any error it logged is in the exception by now.
      await Promise.all([rm(processFile, { force: true }), rm(logFile, { force: true })]);
    }
    proc.pid = readPidFile(pidFile, 'runc exec', this.id);
    this.#watchExit(proc, this.#ctx.monitor.adopt(proc.pid, { startedAfter: spawned.spawnedAt }));
    await proc.io.started();
  }

  /**
   * An exec whose start failed: kill what may have started, record a stopped state
   * with exit status 255 and no exit event (there was no exec-started to follow), and
   * release its place in the running-exec count so the init's exit is not held.
   */
  async #abandonExec(proc: Process): Promise<void> {
    let status: WaitStatus | undefined;
    if (proc.child !== undefined && proc.reaped === undefined) {
      try {
        proc.signal(this.#ctx.native, SIGKILL);
      } catch {
        // already gone
      }
    }
    if (proc.child !== undefined) status = await proc.child.exited;
    const info: ExitInfo = { pid: proc.pid, exitStatus: status === undefined ? 255 : exitStatusOf(status), exitedAt: new Date() };
    proc.delivering = true;
    await proc.io?.close().catch((err: unknown) => {
      this.#logger.warn({ err, exec: proc.execId }, 'closing stdio failed');
    });
    proc.transition((s) => machine.exit(s, info));
    proc.settleWaiters(info);
    this.#execFinished();
  }

  /** Adds an exec process (not started). Throws AlreadyExists for a taken exec id. */
  addExec(request: ExecRequest): void {
    this.#assertNotDeleting();
    machine.assertCanExec(this.init.state);
    if (this.#execs.has(request.execId)) {
      throw new RuntimeError('AlreadyExists', `exec '${request.execId}' already exists in container '${this.id}'`);
    }
    if (typeof request.spec !== 'object' || request.spec === null || Array.isArray(request.spec)) {
      throw invalidArgument(`the spec of exec '${request.execId}' is not an OCI Process object`);
    }
    const spec = request.spec as Record<string, unknown>;
    const args = spec['args'];
    if (!Array.isArray(args) || args.length === 0 || !args.every((a) => typeof a === 'string')) {
      throw invalidArgument(`the spec of exec '${request.execId}' has no args: an OCI Process needs a non-empty list of strings`);
    }
    const proc = new Process({ containerId: this.id, execId: request.execId, bundle: this.#bundle.path, stdio: request.stdio, spec });
    this.#execs.set(request.execId, proc);
    this.#ctx.emit('exec-added', { containerId: this.id, execId: request.execId });
  }

  /** Signals the init through runc (`all`: every process of the container) or an exec through its pidfd. */
  async kill(execId: string, signal: number, all: boolean): Promise<void> {
    if (!Number.isInteger(signal) || signal < 0 || signal > MAX_SIGNAL) {
      throw invalidArgument(`signal ${signal} is invalid: signals are numbers from 0 to ${MAX_SIGNAL}`);
    }
    if (execId !== '') {
      const proc = this.#exec(execId);
      machine.assertKillable(proc.state, 'exec');
      if (proc.child === undefined && proc.reaped === undefined) {
        throw failedPrecondition(`cannot kill exec '${execId}': it was not started`);
      }
      proc.signal(this.#ctx.native, signal);
      return;
    }
    machine.assertKillable(this.init.state, 'task');
    // Without a pid namespace of its own, processes may outlive the init: kill --all still has targets.
    if (this.init.reaped !== undefined && !(all && !this.#bundle.ownPidNamespace)) {
      throw notFound(`cannot kill task: process already finished`);
    }
    await this.#runc.kill(signal, all);
  }

  resizePty(execId: string, size: { width: number; height: number }): void {
    const proc = this.#process(execId);
    machine.assertHasIO(proc.state, proc.subject);
    proc.io?.resize(size);
  }

  closeIO(execId: string): void {
    const proc = this.#process(execId);
    machine.assertHasIO(proc.state, proc.subject);
    proc.io?.closeStdin();
  }

  /** Freezes the container; the init reports 'pausing' meanwhile. */
  async pause(): Promise<void> {
    const init = this.init;
    init.transition((s) => machine.beginPause(s, 'task'));
    try {
      await this.#runc.pause();
    } catch (err) {
      init.transition((s) => machine.endPause(s, false));
      throw err;
    }
    init.transition((s) => machine.endPause(s, true));
    this.#ctx.emit('task-paused', { containerId: this.id });
  }

  async resume(): Promise<void> {
    const init = this.init;
    const release = init.claim('resume');
    try {
      machine.resume(init.state, 'task');
      await this.#runc.resume();
      init.transition((s) => machine.resume(s, 'task'));
      this.#ctx.emit('task-resumed', { containerId: this.id });
    } finally {
      release();
    }
  }

  async update(resources: unknown): Promise<void> {
    machine.assertCanUpdate(this.init.state);
    if (typeof resources !== 'object' || resources === null || Array.isArray(resources)) {
      throw invalidArgument(`the resources for container '${this.id}' are not an OCI LinuxResources object`);
    }
    await this.#runc.update(resources);
  }

  async pids(): Promise<ProcessInfo[]> {
    const pids = await this.#runc.ps();
    const execByPid = new Map<number, string>();
    for (const proc of this.#execs.values()) {
      if (proc.pid !== 0 && proc.reaped === undefined) execByPid.set(proc.pid, proc.execId);
    }
    return pids.map((pid) => ({ pid, execId: execByPid.get(pid) }));
  }

  state(execId: string): ProcessState {
    return this.#process(execId).snapshot();
  }

  wait(execId: string): Promise<ExitInfo> {
    return this.#process(execId).wait();
  }

  async stats(): Promise<ContainerStats> {
    if (this.#cgroup === undefined) throw notFound(`container '${this.id}' has no cgroup to read stats from`);
    return readStats(this.#cgroup);
  }

  async checkpoint(request: CheckpointRequest): Promise<void> {
    const init = this.init;
    machine.assertCanCheckpoint(init.state);
    const imagePath = request.path !== '' ? request.path : this.#settings.criuImagePath;
    if (imagePath === '') throw invalidArgument(`checkpoint of container '${this.id}' needs an image path`);
    const workPath =
      request.workPath !== '' ? request.workPath : this.#settings.criuWorkPath !== '' ? this.#settings.criuWorkPath : join(this.#workDir, 'criu-work');
    const release = init.claim('checkpoint');
    try {
      await mkdir(imagePath, { recursive: true });
      await mkdir(workPath, { recursive: true });
      try {
        await this.#runc.checkpoint(request, imagePath, workPath);
      } catch (err) {
        // As the Go shim does: keep CRIU's own log where the user looks.
        const saved = await copyFile(join(workPath, 'dump.log'), join(this.#bundle.path, 'criu-dump.log')).then(
          () => true,
          () => false,
        );
        const hint = saved ? ` (CRIU's log: ${join(this.#bundle.path, 'criu-dump.log')})` : '';
        throw unknown(`${messageOf(err)}${hint}`, err);
      }
      this.#ctx.emit('task-checkpointed', { containerId: this.id, checkpoint: imagePath });
    } finally {
      release();
    }
  }

  /**
   * Deletes an exec (stopped or never started) or the container (init stopped or
   * never started): runc delete, stdio closed, rootfs unmounted, files removed,
   * task-delete emitted (init only). Throws FailedPrecondition for a live process.
   */
  async delete(execId: string): Promise<ExitInfo> {
    if (execId !== '') return this.#deleteExec(this.#exec(execId));
    const init = this.init;
    const release = init.claim('delete');
    try {
      machine.remove(init.state, 'task'); // validation only: throws for a live init
      this.#deleting = true;
      try {
        if (init.state.status === 'created' && init.child !== undefined) {
          // Never started: runc delete --force kills the waiting runc init; its exit
          // goes out first (create < exit < delete).
          await this.#runc.delete(true);
          await withTimeout(init.wait(), DELETE_EXIT_TIMEOUT_MS);
        } else {
          await this.#runc.delete(true);
        }
      } catch (err) {
        this.#deleting = false;
        throw err;
      }
      for (const proc of this.#execs.values()) {
        if (proc.state.status === 'created') proc.rejectWaiters(notFound(`exec '${proc.execId}' was deleted with its container`));
      }
      await this.#release();
      init.transition((s) => machine.remove(s, 'task'));
      if (init.state.status !== 'deleted') throw new Error('unreachable');
      const exit = init.state.exit ?? { pid: init.pid, exitStatus: 0, exitedAt: new Date() };
      init.rejectWaiters(notFound('task was deleted before it exited'));
      this.#ctx.emit('task-delete', { containerId: this.id, id: this.id, pid: exit.pid, exitStatus: exit.exitStatus, exitedAt: exit.exitedAt });
      return exit;
    } finally {
      release();
    }
  }

  async #deleteExec(proc: Process): Promise<ExitInfo> {
    const release = proc.claim('delete');
    try {
      proc.transition((s) => machine.remove(s, 'exec'));
      this.#execs.delete(proc.execId);
      const exit = machine.exitOf(proc.state) ?? { pid: proc.pid, exitStatus: 0, exitedAt: new Date() };
      proc.rejectWaiters(notFound(`exec '${proc.execId}' was deleted before it exited`));
      await proc.io?.close().catch((err: unknown) => {
        this.#logger.warn({ err, exec: proc.execId }, 'closing stdio failed');
      });
      await rm(this.#pidFile(proc.execId), { force: true });
      return exit;
    } finally {
      release();
    }
  }

  /** Releases watchers and stdio without touching the container (runtime close). */
  async close(): Promise<void> {
    for (const p of [this.init, ...this.#execs.values()]) {
      await p.io?.close().catch(() => undefined);
    }
    this.#oom?.close();
    this.#oom = undefined;
  }

  // ---- exits -------------------------------------------------------------------

  #watchExit(proc: Process, child: MonitoredChild): void {
    proc.child = child;
    void child.exited.then((status) => {
      try {
        this.#onReaped(proc, status);
      } catch (err) {
        this.#logger.error({ err, exec: proc.execId }, 'handling an exit failed');
      }
    });
  }

  /** Stage 1: the kernel's exit is known. */
  #onReaped(proc: Process, status: WaitStatus): void {
    proc.reaped = { pid: proc.pid, exitStatus: exitStatusOf(status), exitedAt: reapedAt(status) };
    proc.drained = proc.io === undefined ? Promise.resolve(true) : proc.io.drain(this.#ctx.ioDrainTimeoutMs).catch(() => false);
    this.#logger.debug({ exec: proc.execId, pid: proc.pid, exitStatus: proc.reaped.exitStatus }, 'process reaped');
    if (proc.gateOpen) this.#deliver(proc);
  }

  /** Opens a process's exit gate and delivers an exit held meanwhile. */
  #openGate(proc: Process): void {
    proc.gateOpen = true;
    if (proc.reaped !== undefined) this.#deliver(proc);
  }

  /** Stage 2, at most once per process. */
  #deliver(proc: Process): void {
    if (proc.delivering) return;
    proc.delivering = true;
    this.#deliverExit(proc).catch((err: unknown) => {
      this.#logger.error({ err, exec: proc.execId }, 'delivering an exit failed');
    });
  }

  async #deliverExit(proc: Process): Promise<void> {
    const exit = proc.reaped;
    if (exit === undefined) throw new Error('delivering an exit that was not reaped');
    if (proc === this.init) {
      if (!this.#bundle.ownPidNamespace) {
        await this.#runc.kill(SIGKILL, true).catch((err: unknown) => {
          this.#logger.debug({ err }, 'kill --all after the init exit');
        });
      }
      await this.#whenExecsIdle();
    }
    const drained = await (proc.drained ?? Promise.resolve(true));
    if (proc.state.status === 'deleted') {
      // Only a never-started init whose exit outlasted delete's wait: too late for an event.
      this.#logger.warn({ exec: proc.execId }, 'an exit arrived after its process was deleted; not publishing it');
      return;
    }
    if (!drained) {
      // core/io logged the bound (warn) when it passed; this notes which exit it delayed.
      this.#logger.debug({ exec: proc.execId, timeoutMs: this.#ctx.ioDrainTimeoutMs }, 'publishing an exit after the drain bound passed');
    }
    proc.transition((s) => machine.exit(s, exit));
    // An OOM kill is counted before its SIGKILL is sent: reading the counter here reports
    // the kill that ended this process before its exit, even when the OOM notification has
    // not reached the event loop yet (CRI reads the reason of an exit from the OOM event).
    this.#oom?.check();
    this.#ctx.emit('task-exit', { containerId: this.id, id: proc.eventId, pid: exit.pid, exitStatus: exit.exitStatus, exitedAt: exit.exitedAt });
    proc.settleWaiters(exit);
    if (proc !== this.init) this.#execFinished();
  }

  #execFinished(): void {
    this.#runningExecs -= 1;
    if (this.#runningExecs > 0) return;
    const idle = this.#execsIdle;
    this.#execsIdle = [];
    for (const resolve of idle) resolve();
  }

  #whenExecsIdle(): Promise<void> {
    if (this.#runningExecs === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.#execsIdle.push(resolve);
    });
  }

  // ---- helpers -------------------------------------------------------------------

  #watchCgroup(pid: number): void {
    try {
      this.#cgroup = cgroupOfPid(pid);
      this.#oom = watchOom(this.#cgroup, this.#ctx.native, () => {
        this.#ctx.emit('task-oom', { containerId: this.id });
      }, this.#logger);
    } catch (err) {
      // The init may already be gone (its cgroup with it): stats and OOM are then unavailable.
      this.#logger.warn({ err, pid }, 'cannot watch the cgroup of the init process');
    }
  }

  #createIO(execId: string, stdio: CreateRequest['stdio']): Promise<ProcessIO> {
    return createProcessIO({
      monitor: this.#ctx.monitor,
      native: this.#ctx.native,
      logger: this.#logger,
      namespace: this.#ctx.namespace,
      containerId: this.id,
      execId,
      stdio,
      ioUid: this.#settings.ioUid,
      ioGid: this.#settings.ioGid,
      workDir: this.#workDir,
    });
  }

  #pidFile(execId: string): string {
    return join(this.#bundle.path, execId === '' ? 'init.pid' : `${execId}.pid`);
  }

  #assertNotDeleting(): void {
    if (this.#deleting) throw failedPrecondition(`container '${this.id}' is being deleted`);
  }

  #exec(execId: string): Process {
    const proc = this.#execs.get(execId);
    if (proc === undefined) throw notFound(`exec '${execId}' not found in container '${this.id}'`);
    return proc;
  }

  #process(execId: string): Process {
    return execId === '' ? this.init : this.#exec(execId);
  }
}

/**
 * Reads a pid file runc just wrote. Synchronous: runc wrote the few bytes a moment ago;
 * a thread pool round trip is not worth it.
 */
function readPidFile(path: string, what: string, containerId: string): number {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw unknown(`${what} of container '${containerId}' succeeded but its pid file '${path}' cannot be read: ${messageOf(err)}`, err);
  }
  const pid = Number.parseInt(text.trim(), 10);
  if (!Number.isSafeInteger(pid) || pid <= 0) {
    throw unknown(`${what} of container '${containerId}' wrote an invalid pid file '${path}': '${text.trim()}'`);
  }
  return pid;
}

/** Resolves with the promise, or undefined once `ms` passed. */
async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => {
      resolve(undefined);
    }, ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
