/**
 * The process monitor: the one place in core/ that starts processes and collects
 * their exits (DESIGN.md section 3, "One reaper").
 *
 * Exits are collected in two disjoint ways, following the split of the native facade:
 *
 * - **Tracked** children (returned by `native.spawn`, or opened with `native.pidfdOpen`
 *   by {@link ProcessMonitor.adopt}) are watched through their pidfd: when it turns
 *   readable, a non-blocking `waitid(P_PIDFD)` reaps the child and yields its status.
 *   The orphan sweep never takes a tracked child's status.
 * - **Untracked** children (grandchildren reparented to us as child subreaper, a
 *   container init between the exit of `runc create` and the moment we read its pid
 *   file) are reaped by the orphan sweep, `native.reapOrphans()`, run on every
 *   SIGCHLD. Their exits are kept for a while in the *unclaimed exits* table, so that
 *   {@link ProcessMonitor.adopt} of a process that exited before its pid was known
 *   (an early exit) still delivers its real status.
 *
 * The sweep and its table are shared by every monitor built on the same `Native`
 * (one reaper per process): a second monitor must not reap, and then lose, an exit
 * that the first one is about to adopt.
 */
import { performance } from 'node:perf_hooks';
import type { FdWatcher, Native, SpawnOptions, WaitStatus } from '../native/facade.js';
import type { Logger } from './api.js';
import { hasErrno } from './errors.js';

/** A process whose exit the monitor collects. */
export interface MonitoredChild {
  readonly pid: number;
  /**
   * A pidfd of the process, for `native.pidfdSendSignal`: open while `exited` is
   * pending. The monitor closes it right after reaping, before `exited` resolves, so
   * never use it once `exited` has resolved. `-1` when the process had already exited
   * when it was adopted.
   */
  readonly pidfd: number;
  /** resolves once, with the exit status, after the child was reaped */
  readonly exited: Promise<WaitStatus>;
}

/** Options of {@link ProcessMonitor.adopt}. */
export interface AdoptOptions {
  /**
   * `performance.now()` taken before starting whatever reported this pid (e.g. before
   * spawning `runc create`). An unclaimed exit reaped before that moment belonged to an
   * older process with the same (since recycled) pid, and is not delivered.
   */
  readonly startedAfter?: number;
}

/** Starts and watches processes; see the module comment for the exactly-once split. */
export interface ProcessMonitor {
  /** native.spawn + watch the pidfd; the only way core/ starts processes. Throws the native spawn error. */
  spawn(options: SpawnOptions): MonitoredChild;
  /**
   * Track an existing pid we learned from a pid file (container init, exec): pidfdOpen
   * it; if it already exited and the orphan sweep took its status, that status is
   * delivered (early exit). When its status cannot be known (it was reaped by another
   * process, or evicted from the unclaimed table), {@link UNKNOWN_EXIT} is delivered
   * and a warning logged. Throws only on unexpected native errors (not ESRCH).
   */
  adopt(pid: number, options?: AdoptOptions): MonitoredChild;
  /**
   * Stops watching: closes every pidfd watcher and pidfd and stops the orphan sweep
   * (when this was the last monitor of its `Native`). The `exited` promises of children
   * still running stay pending. Does not signal any process. Idempotent.
   */
  close(): void;
}

/**
 * The status delivered when a process's real status cannot be collected: 255, the
 * value containerd itself reports as "unknown exit status" (containerd's
 * `UnknownExitStatus`).
 */
export const UNKNOWN_EXIT: WaitStatus = Object.freeze({ kind: 'exited', code: 255 });

/** When each delivered status was reaped: keyed by the status object `exited` resolved with. */
const reapTimes = new WeakMap<WaitStatus, Date>();

/**
 * When the process whose `exited` resolved with `status` was reaped: for an early
 * exit this is the moment the orphan sweep took it, not the later moment it was
 * adopted. The current time for a status that did not come from a monitor.
 */
export function reapedAt(status: WaitStatus): Date {
  return reapTimes.get(status) ?? new Date();
}

/** A fresh copy of `status` stamped with its reap time (the same kernel status may be delivered once only). */
function stamped(status: WaitStatus, at: Date): WaitStatus {
  const copy: WaitStatus = { ...status };
  reapTimes.set(copy, at);
  return copy;
}

/** The exit status containerd reports: the exit code, or 128 + the signal number. */
export function exitStatusOf(status: WaitStatus): number {
  switch (status.kind) {
    case 'exited':
      return status.code;
    case 'signaled':
      return 128 + status.signal;
  }
}

/**
 * Bounds of the unclaimed exits table. An entry is only useful for the few
 * milliseconds between a process's exit and the read of its pid file, so a minute is
 * generous; the size bound keeps a container that forks and orphans thousands of
 * short-lived grandchildren from growing the table without limit. The oldest entries
 * go first.
 */
export const UNCLAIMED_EXITS_MAX_ENTRIES = 1024;
export const UNCLAIMED_EXITS_MAX_AGE_MS = 60_000;

/**
 * A backstop sweep, in case a SIGCHLD is ever missed (a signal listener removed and
 * re-added by another part of the process, a zombie that existed before we
 * listened). On this machine SIGCHLD alone sufficed; the timer is unref'd.
 */
const BACKSTOP_SWEEP_MS = 2000;

/** Creates a monitor on `native`. Several monitors on one `Native` share one orphan sweep. */
export function createProcessMonitor(native: Native, logger: Logger): ProcessMonitor {
  return new Monitor(native, logger);
}

interface UnclaimedExit {
  /** Stamped with the wall-clock reap time (see {@link reapedAt}). */
  readonly status: WaitStatus;
  /** performance.now() when the sweep reaped it. */
  readonly reapedAt: number;
}

/** The orphan sweep of one `Native` and its unclaimed exits table. */
class OrphanSweep {
  readonly #native: Native;
  readonly #logger: Logger;
  /** pid -> exit, in insertion (= reap) order, so the first entry is the oldest. */
  readonly #unclaimed = new Map<number, UnclaimedExit>();
  #users = 0;
  #timer: NodeJS.Timeout | undefined;
  readonly #onSignal = (): void => {
    this.sweep();
  };

  constructor(native: Native, logger: Logger) {
    this.#native = native;
    this.#logger = logger;
  }

  acquire(): void {
    this.#users += 1;
    if (this.#users > 1) return;
    process.on('SIGCHLD', this.#onSignal);
    this.#timer = setInterval(this.#onSignal, BACKSTOP_SWEEP_MS);
    this.#timer.unref();
    // Zombies that appeared before we listened would otherwise wait for the next signal.
    this.sweep();
  }

  release(): void {
    this.#users -= 1;
    if (this.#users > 0) return;
    process.off('SIGCHLD', this.#onSignal);
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#unclaimed.clear();
    sweeps.delete(this.#native);
  }

  /** Reaps every untracked exited child into the unclaimed table. */
  sweep(): void {
    let reaped;
    try {
      reaped = this.#native.reapOrphans();
    } catch (err) {
      this.#logger.error({ err }, 'orphan sweep failed');
      return;
    }
    const now = performance.now();
    const wallClock = new Date();
    for (const exit of reaped) {
      this.#logger.debug({ pid: exit.pid, status: exit.status }, 'reaped untracked process');
      this.#unclaimed.delete(exit.pid);
      this.#unclaimed.set(exit.pid, { status: stamped(exit.status, wallClock), reapedAt: now });
    }
    this.#evict(now);
  }

  /** Takes the unclaimed exit of `pid`, if it was reaped at or after `startedAfter`. */
  claim(pid: number, startedAfter: number): WaitStatus | undefined {
    const entry = this.#unclaimed.get(pid);
    if (entry === undefined) return undefined;
    this.#unclaimed.delete(pid);
    if (entry.reapedAt < startedAfter) {
      this.#logger.debug({ pid }, 'ignored the unclaimed exit of an older process with the same pid');
      return undefined;
    }
    return entry.status;
  }

  #evict(now: number): void {
    for (const [pid, entry] of this.#unclaimed) {
      const tooMany = this.#unclaimed.size > UNCLAIMED_EXITS_MAX_ENTRIES;
      if (!tooMany && now - entry.reapedAt <= UNCLAIMED_EXITS_MAX_AGE_MS) break;
      this.#unclaimed.delete(pid);
    }
  }
}

/** One sweep per Native: the process has one set of children. */
const sweeps = new Map<Native, OrphanSweep>();

function sweepFor(native: Native, logger: Logger): OrphanSweep {
  let sweep = sweeps.get(native);
  if (sweep === undefined) {
    sweep = new OrphanSweep(native, logger);
    sweeps.set(native, sweep);
  }
  return sweep;
}

interface Watched {
  readonly pidfd: number;
  watcher: FdWatcher | undefined;
}

class Monitor implements ProcessMonitor {
  readonly #native: Native;
  readonly #logger: Logger;
  readonly #sweep: OrphanSweep;
  /** Children whose exit is still pending: released by close(). */
  readonly #watched = new Set<Watched>();
  #closed = false;

  constructor(native: Native, logger: Logger) {
    this.#native = native;
    this.#logger = logger;
    this.#sweep = sweepFor(native, logger);
    this.#sweep.acquire();
  }

  spawn(options: SpawnOptions): MonitoredChild {
    this.#assertOpen();
    const { pid, pidfd } = this.#native.spawn(options);
    return this.#watch(pid, pidfd);
  }

  adopt(pid: number, options?: AdoptOptions): MonitoredChild {
    this.#assertOpen();
    // The table first: if the process exited and was swept, its pid may already
    // belong to another process, which pidfdOpen would wrongly open.
    const early = this.#sweep.claim(pid, options?.startedAfter ?? Number.NEGATIVE_INFINITY);
    if (early !== undefined) {
      this.#logger.debug({ pid, status: early }, 'adopted a process that had already exited');
      return { pid, pidfd: -1, exited: Promise.resolve(early) };
    }
    let pidfd: number;
    try {
      pidfd = this.#native.pidfdOpen(pid);
    } catch (err) {
      if (!hasErrno(err, 'ESRCH')) throw err;
      // Gone and reaped by someone else (not our child), or swept so long ago that
      // the unclaimed table evicted it: its status is lost.
      this.#logger.warn({ pid }, 'adopted process is gone and its exit status is unknown; reporting 255');
      return { pid, pidfd: -1, exited: Promise.resolve(stamped(UNKNOWN_EXIT, new Date())) };
    }
    return this.#watch(pid, pidfd);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const watched of this.#watched) {
      watched.watcher?.close();
      watched.watcher = undefined;
      this.#native.close(watched.pidfd);
    }
    this.#watched.clear();
    this.#sweep.release();
  }

  #assertOpen(): void {
    if (this.#closed) throw new Error('the process monitor is closed');
  }

  /**
   * Watches a tracked pidfd until its process is reaped.
   *
   * Race handled: the process may already have exited before the watcher exists, so
   * a non-blocking wait runs right after registering (as runwasi's pid_fd.rs does).
   * A process that is not our child (waitid says ECHILD: it was reparented elsewhere)
   * cannot be reaped by us; its pidfd still turns readable when it exits, and then
   * {@link UNKNOWN_EXIT} is delivered because the kernel gives its status only to its
   * parent. (On this machine exec processes of runc are our children, so this is a
   * safety net, not the normal path.)
   */
  #watch(pid: number, pidfd: number): MonitoredChild {
    let resolveExit!: (status: WaitStatus) => void;
    const exited = new Promise<WaitStatus>((resolve) => {
      resolveExit = resolve;
    });
    const watched: Watched = { pidfd, watcher: undefined };
    let notOurChild = false;
    let done = false;

    const finish = (kernelStatus: WaitStatus): void => {
      if (done) return;
      done = true;
      const status = stamped(kernelStatus, new Date());
      watched.watcher?.close();
      watched.watcher = undefined;
      this.#watched.delete(watched);
      this.#native.close(pidfd);
      this.#logger.debug({ pid, status }, 'process exited');
      resolveExit(status);
    };

    const check = (readable: boolean): void => {
      if (done) return;
      if (notOurChild) {
        if (readable) finish(UNKNOWN_EXIT);
        return;
      }
      let status: WaitStatus | undefined;
      try {
        status = this.#native.pidfdWait(pidfd);
      } catch (err) {
        if (hasErrno(err, 'ECHILD')) {
          notOurChild = true;
          this.#logger.warn({ pid }, 'process is not our child: its exit status will be reported as 255');
          if (readable) finish(UNKNOWN_EXIT);
          return;
        }
        this.#logger.error({ pid, err }, 'waiting for a process failed; reporting exit status 255');
        finish(UNKNOWN_EXIT);
        return;
      }
      if (status !== undefined) finish(status);
    };

    try {
      watched.watcher = this.#native.watchReadable(pidfd, () => {
        check(true);
      });
    } catch (err) {
      this.#native.close(pidfd);
      throw err;
    }
    this.#watched.add(watched);
    check(false);
    return { pid, pidfd, exited };
  }
}
