/**
 * cgroup v2 OOM notifications: inotify (fs.watch) on memory.events and cgroup.events,
 * re-reading memory.events on each change and reporting one onOom per increment of
 * its oom_kill counter (containerd/cgroups cgroup2 manager.go EventChan, containerd
 * pkg/oom/v2). Like containerd, the watch ends once cgroup.events says the cgroup is
 * no longer populated, or the files are gone.
 *
 * Machine fact (kernel 6.18 here): fs.watch sees kernfs notifications on cgroupfs
 * files (cgroup.events changes on populate/depopulate), but no event at all when the
 * cgroup directory is removed; that is why cgroup.events is watched too, and why a
 * cgroup removed while populated-state changes were missed is only noticed at the
 * next event. If inotify is unavailable (e.g. out of watches) the files are polled.
 *
 * The files are read synchronously, each check whole in one turn of the event loop: an
 * asynchronous read that close() landed in would keep its file open past close(), and
 * checks could overlap (cgroupfs never waits for a disk).
 * @internal
 */
import { readFileSync, watch, type FSWatcher } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../api.js';
import { RuntimeError } from '../errors.js';
import { isNotExist, readKVFileSync } from './cgroupfs.js';
import type { OomWatcher } from './oom-v1.js';

/** Polling interval when inotify cannot be used. */
const POLL_INTERVAL_MS = 1000;

function readOomKill(dir: string): bigint {
  return readKVFileSync(join(dir, 'memory.events')).get('oom_kill') ?? 0n;
}

/**
 * Watches the v2 cgroup at `dir` for OOM kills.
 *
 * Throws {@link RuntimeError} `NotFound` when `dir` has no memory.events (the cgroup is
 * gone or its memory controller is not enabled), or the file system error.
 */
export function watchOomV2(dir: string, onOom: () => void, logger: Logger): OomWatcher {
  let initial: bigint;
  try {
    initial = readOomKill(dir);
  } catch (error) {
    if (isNotExist(error)) {
      throw new RuntimeError(
        'NotFound',
        `${join(dir, 'memory.events')} does not exist: the cgroup is gone or its memory controller is not enabled`,
        { cause: error },
      );
    }
    throw error;
  }
  const watcher = new V2OomWatcher(dir, initial, onOom, logger);
  watcher.start();
  logger.debug({ cgroup: dir, oomKill: initial.toString() }, 'watching cgroup v2 OOM events');
  return watcher;
}

class V2OomWatcher implements OomWatcher {
  readonly #dir: string;
  readonly #onOom: () => void;
  readonly #logger: Logger;
  readonly #watchers: FSWatcher[] = [];
  #poll: NodeJS.Timeout | undefined;
  /** oom_kill as last reported; only #check changes it. */
  #lastOomKill: bigint;
  #closed = false;

  constructor(dir: string, oomKill: bigint, onOom: () => void, logger: Logger) {
    this.#dir = dir;
    this.#lastOomKill = oomKill;
    this.#onOom = onOom;
    this.#logger = logger;
  }

  start(): void {
    try {
      for (const name of ['memory.events', 'cgroup.events']) {
        let watcher: FSWatcher;
        try {
          watcher = watch(join(this.#dir, name), { persistent: false }, () => {
            this.#check();
          });
        } catch (error) {
          // The root cgroup has no cgroup.events; memory.events alone will do.
          if (name === 'cgroup.events' && isNotExist(error)) continue;
          throw error;
        }
        watcher.on('error', (error) => {
          // Typically the file went away; the check finds out and stops.
          this.#logger.debug({ cgroup: this.#dir, err: error }, 'fs.watch error on cgroup file');
          this.#check();
        });
        this.#watchers.push(watcher);
      }
    } catch (error) {
      for (const watcher of this.#watchers.splice(0)) watcher.close();
      this.#logger.warn(
        { cgroup: this.#dir, err: error },
        `cannot watch cgroup files: polling every ${POLL_INTERVAL_MS} ms instead`,
      );
      this.#poll = setInterval(() => {
        this.#check();
      }, POLL_INTERVAL_MS);
      this.#poll.unref();
    }
  }

  check(): void {
    this.#check();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const watcher of this.#watchers.splice(0)) watcher.close();
    if (this.#poll !== undefined) clearInterval(this.#poll);
  }

  /** Re-reads the files; reports new kills, stops when the cgroup is empty or gone. Never throws. */
  #check(): void {
    if (this.#closed) return;
    let oomKill: bigint;
    let populated: boolean;
    try {
      oomKill = readOomKill(this.#dir);
      populated = this.#populated();
    } catch (error) {
      if (isNotExist(error)) {
        this.#stop('cgroup removed');
      } else {
        this.#logger.warn({ cgroup: this.#dir, err: error }, 'checking memory.events failed');
      }
      return;
    }
    if (oomKill > this.#lastOomKill) {
      const kills = Number(oomKill - this.#lastOomKill);
      this.#lastOomKill = oomKill;
      for (let i = 0; i < kills; i++) this.#report();
    }
    // Read after memory.events, so a kill that emptied the cgroup is reported first.
    if (!populated) this.#stop('cgroup no longer populated');
  }

  /** cgroup.events "populated"; a cgroup without the file counts as populated. */
  #populated(): boolean {
    let text: string;
    try {
      text = readFileSync(join(this.#dir, 'cgroup.events'), 'utf8');
    } catch (error) {
      if (!isNotExist(error)) throw error;
      // memory.events was just read: cgroup.events is missing, or the cgroup is going.
      return true;
    }
    return !/^populated 0$/m.test(text);
  }

  #stop(reason: string): void {
    this.#logger.debug({ cgroup: this.#dir, reason }, 'OOM watch ends');
    this.close();
  }

  #report(): void {
    try {
      this.#onOom();
    } catch (error) {
      this.#logger.error({ cgroup: this.#dir, err: error }, 'OOM callback threw');
    }
  }
}
