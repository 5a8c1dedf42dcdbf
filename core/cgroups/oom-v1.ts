/**
 * cgroup v1 OOM notifications: an eventfd registered through cgroup.event_control
 * with memory.oom_control (containerd/cgroups cgroup1 memory.go memoryEvent;
 * containerd pkg/oom/v1), one onOom per OOM kill.
 *
 * Why the counter: the kernel signals the eventfd when the memcg enters OOM, *before*
 * the OOM killer picks a victim (mm/memcontrol-v1.c memcg1_oom_prepare), and again when
 * the cgroup is removed. containerd publishes one TaskOOM per wakeup; we count kills
 * instead, comparing memory.oom_control's oom_kill with the last value seen. A wakeup
 * with no new kill is re-checked a few times shortly after (the kill is usually
 * microseconds behind), so a kill is reported once and a removal never. One exception
 * keeps containerd's behaviour: with the OOM killer disabled (oom_kill_disable 1) there
 * is no kill to count, so a wakeup that finds the memcg under_oom reports one OOM.
 * @internal
 */
import { closeSync, openSync, readSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FdWatcher, Native } from '../../native/facade.js';
import type { Logger } from '../api.js';
import { RuntimeError } from '../errors.js';
import { errnoCode, isNotExist, readKVFileSync } from './cgroupfs.js';

/** A running OOM watch. */
export interface OomWatcher {
  /**
   * Reads the kill counter now and reports the kills not reported yet. The kernel counts
   * an OOM kill before it sends the SIGKILL, so calling this before publishing a process's
   * exit puts the OOM of a killed process ahead of its exit, whatever order the
   * notification and the exit reach the event loop in. Never throws; no-op once closed.
   */
  check(): void;
  /** Stops watching and releases its fds and handles. Idempotent. */
  close(): void;
}

/**
 * Delays of the re-checks after a wakeup that found no new kill yet (3.5 s in all). The
 * kernel notifies just before it picks a victim, under the global oom_lock (an OOM
 * elsewhere can hold it for a while), so the kill is usually microseconds behind. These
 * re-checks are for processes the shim does not track; a tracked process's exit calls
 * check() first, so its kill never depends on them. (An earlier CI failure blamed on a
 * late kill was more likely the one seen since: one OOM run costing two kills.)
 */
const RECHECK_DELAYS_MS = [5, 20, 100, 400, 1000, 2000] as const;

interface OomControl {
  readonly oomKillDisable: bigint;
  readonly underOom: bigint;
  readonly oomKill: bigint;
}

/**
 * Read synchronously: cgroupfs never waits for a disk, and an asynchronous read could still
 * hold its fd open when close() returns.
 */
function readOomControl(dir: string): OomControl {
  const raw = readKVFileSync(join(dir, 'memory.oom_control'));
  return {
    oomKillDisable: raw.get('oom_kill_disable') ?? 0n,
    underOom: raw.get('under_oom') ?? 0n,
    oomKill: raw.get('oom_kill') ?? 0n,
  };
}

/**
 * Watches the v1 memory cgroup at `dir` (e.g. /sys/fs/cgroup/memory/<path>).
 *
 * Throws {@link RuntimeError} `NotFound` when the memory cgroup does not exist, or the
 * native/file system error when the registration fails (nothing is left open then).
 */
export function watchOomV1(dir: string, native: Native, onOom: () => void, logger: Logger): OomWatcher {
  let initial: OomControl;
  try {
    initial = readOomControl(dir);
  } catch (error) {
    if (isNotExist(error))
      throw new RuntimeError('NotFound', `memory cgroup ${dir} does not exist: cannot watch it for OOM kills`, {
        cause: error,
      });
    throw error;
  }
  const eventFd = native.eventfd();
  let poll: FdWatcher | undefined;
  try {
    // cgroupfs calls, made synchronously: they never wait for a disk, and three thread
    // pool round trips would add about 1.5 ms to every Create on this 2-core box.
    const control = openSync(join(dir, 'memory.oom_control'), 'r');
    try {
      writeFileSync(join(dir, 'cgroup.event_control'), `${eventFd} ${control}`);
    } finally {
      // The kernel holds its own reference from here on (containerd closes it too).
      closeSync(control);
    }
    const watcher = new V1OomWatcher(dir, eventFd, initial.oomKill, onOom, logger, native);
    poll = native.watchReadable(eventFd, () => {
      watcher.onReadable();
    });
    watcher.attach(poll);
    logger.debug({ cgroup: dir, oomKill: initial.oomKill.toString() }, 'watching cgroup v1 OOM events');
    return watcher;
  } catch (error) {
    poll?.close();
    native.close(eventFd);
    throw error;
  }
}

class V1OomWatcher implements OomWatcher {
  readonly #dir: string;
  readonly #eventFd: number;
  readonly #onOom: () => void;
  readonly #logger: Logger;
  readonly #native: Native;
  #poll: FdWatcher | undefined;
  /** oom_kill as last reported; only #check changes it (checks are synchronous). */
  #lastOomKill: bigint;
  readonly #timers = new Set<NodeJS.Timeout>();
  #closed = false;
  readonly #counter = Buffer.alloc(8);

  constructor(dir: string, eventFd: number, oomKill: bigint, onOom: () => void, logger: Logger, native: Native) {
    this.#dir = dir;
    this.#eventFd = eventFd;
    this.#lastOomKill = oomKill;
    this.#onOom = onOom;
    this.#logger = logger;
    this.#native = native;
  }

  attach(poll: FdWatcher): void {
    this.#poll = poll;
  }

  /** The eventfd is readable: drain it (uv_poll is level-triggered) and check the counter. */
  onReadable(): void {
    if (this.#closed) return;
    try {
      readSync(this.#eventFd, this.#counter, 0, 8, null);
    } catch (error) {
      if (errnoCode(error) !== 'EAGAIN')
        this.#logger.warn({ cgroup: this.#dir, err: error }, 'reading the OOM eventfd failed');
    }
    this.#checkAndReport(0, true);
  }

  check(): void {
    this.#checkAndReport('no-recheck', false);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    this.#poll?.close();
    // Closing the eventfd also drops the kernel's registration (EPOLLHUP on the memcg event).
    this.#native.close(this.#eventFd);
  }

  /** `attempt` numbers the re-checks of a wakeup; 'no-recheck' for an outside check(). */
  #checkAndReport(attempt: number | 'no-recheck', wakeup: boolean): void {
    try {
      this.#check(attempt, wakeup);
    } catch (error) {
      this.#logger.warn({ cgroup: this.#dir, err: error }, 'checking memory.oom_control failed');
    }
  }

  #check(attempt: number | 'no-recheck', wakeup: boolean): void {
    if (this.#closed) return;
    let state: OomControl;
    try {
      state = readOomControl(this.#dir);
    } catch (error) {
      if (!isNotExist(error)) throw error;
      // The cgroup was removed (that also signals the eventfd): stop quietly.
      this.#logger.debug({ cgroup: this.#dir }, 'memory cgroup removed: OOM watch ends');
      this.close();
      return;
    }
    if (state.oomKill > this.#lastOomKill) {
      const kills = Number(state.oomKill - this.#lastOomKill);
      this.#lastOomKill = state.oomKill;
      for (let i = 0; i < kills; i++) this.#report();
      return;
    }
    if (wakeup && state.oomKillDisable === 1n && state.underOom === 1n) {
      this.#report();
      return;
    }
    if (attempt === 'no-recheck') return;
    const delay = RECHECK_DELAYS_MS[attempt];
    if (delay === undefined) return;
    if (attempt === 0)
      this.#logger.debug(
        { cgroup: this.#dir, oomKill: state.oomKill.toString() },
        'OOM wakeup without a new kill yet: re-checking',
      );
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      this.#checkAndReport(attempt + 1, false);
    }, delay);
    timer.unref();
    this.#timers.add(timer);
  }

  #report(): void {
    try {
      this.#onOom();
    } catch (error) {
      this.#logger.error({ cgroup: this.#dir, err: error }, 'OOM callback threw');
    }
  }
}
