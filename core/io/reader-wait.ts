/**
 * Waiting for the client to read what we wrote into its fifo, so that a process's
 * exit is published only once its output has left the fifo (as long as someone is
 * reading it).
 *
 * Why: the drain (ProcessIO.drain) makes sure every byte is IN the client's fifo
 * before the exit goes out. That is not enough for containerd 1.6's client: on the
 * exit, `ctr` (1.6.20 here) calls task.Delete, which closes its fifo readers before
 * waiting for its copy goroutines (cio Close before Wait; containerd PR #8643, fixed
 * in 1.7), so whatever still sits in the fifo's pipe buffer when the exit reaches ctr
 * is lost: `ctr run --rm` lost the tail of stdout 1-4 times in 48 runs under load.
 * A copy loop writes out what it already read before its next read fails, so an
 * empty pipe buffer is what ctr needs. The Go shim is exposed the same way; this
 * narrows the window for tsrun.
 *
 * How: the kernel has no "pipe is empty" notification (POLLOUT on a write end means
 * room for PIPE_BUF bytes, not emptiness), so the count of unread bytes
 * (FIONREAD: `native.pendingBytes`, on the read end the fifo sink holds anyway) is
 * polled with a back-off:
 * - 0: done. Usually the first look already sees 0, and nothing is waited or logged.
 * - lower than at the previous look: a reader is taking bytes (nothing else lowers
 *   the count). Look again after {@link POLL_MIN_MS}, so the exit follows within
 *   about a millisecond of the reader catching up.
 * - not lower: the reader is descheduled or absent. Double the interval up to
 *   {@link POLL_MAX_MS}: a reader that resumes is seen within one step, and an
 *   absent one costs about 7 looks per window instead of 25. After
 *   {@link READER_STALL_MS} without a decrease the fifo is taken as unread (a
 *   detached task, containerd restarting) and the wait ends: such an exit is
 *   delayed by at most that window.
 * - `signal` aborted (the drain bound passed: the exit is out anyway; or the stdio
 *   is closing): stop.
 *
 * Races:
 * - The count may rise: only another writer of the same fifo (stdout and stderr
 *   naming one fifo) adds bytes. A rise is not progress and does not restart the
 *   window; only a decrease, which only a read causes, does.
 * - The fd closed under the loop: its owner aborts `signal` before closing it, and
 *   the loop checks the signal right before every ioctl on the one JS thread, so it
 *   never asks about a closed fd number that another open may have reused.
 */
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Native } from '../../native/facade.js';
import type { Logger } from '../api.js';

/** A reader that lowered the fifo's count of unread bytes within this window is still reading (ms). */
export const READER_STALL_MS = 25;
/** The interval between looks while the reader makes progress, and the first one (ms). */
export const POLL_MIN_MS = 1;
/** The longest interval between looks while the reader makes no progress (ms). */
export const POLL_MAX_MS = 8;

/** What {@link waitForReader} needs. */
export interface ReaderWaitOptions {
  /** Where the one debug line goes (only when there was something to wait for). */
  readonly log: Logger;
  /** 'stdout' or 'stderr' (a terminal's output is 'stdout'), for the log line. */
  readonly stream: string;
  /** Ends the wait; abort it before closing the fd. */
  readonly signal: AbortSignal;
  /** Default {@link READER_STALL_MS}. */
  readonly stallMs?: number;
}

/** How a wait ended. */
export interface ReaderWait {
  /**
   * 'read': nothing left unread (at once, or after waiting); 'stalled': the count did
   * not decrease for the stall window; 'stopped': the signal was aborted; 'failed':
   * the ioctl failed (a bug: logged at warn).
   */
  readonly outcome: 'read' | 'stalled' | 'stopped' | 'failed';
  /** Unread bytes at the first look (0: nothing was waited). */
  readonly pendingAtStart: number;
  /** Unread bytes at the last look. */
  readonly pendingAtEnd: number;
  /** ioctls made. */
  readonly looks: number;
  readonly waitedMs: number;
}

/**
 * Waits until the fifo under `fd` (any end of it) holds no unread bytes, while a
 * reader keeps taking them; see the module comment for when it stops. Logs one debug
 * line when it waited. Never rejects.
 */
export async function waitForReader(native: Pick<Native, 'pendingBytes'>, fd: number, options: ReaderWaitOptions): Promise<ReaderWait> {
  const stallMs = options.stallMs ?? READER_STALL_MS;
  const started = performance.now();
  let looks = 0;
  let pendingAtStart = 0;
  let pending = 0;
  // A function, not a narrowed property: the signal may be aborted while we sleep.
  const aborted = (): boolean => options.signal.aborted;
  const end = (outcome: ReaderWait['outcome'], err?: unknown): ReaderWait => {
    const result: ReaderWait = { outcome, pendingAtStart, pendingAtEnd: pending, looks, waitedMs: Math.round(performance.now() - started) };
    if (outcome === 'failed') {
      options.log.warn({ err, stream: options.stream, fd }, 'cannot count the unread bytes of the fifo; publishing the exit without waiting for its reader');
    } else if (pendingAtStart > 0) {
      options.log.debug({ stream: options.stream, ...result }, 'waited for the client to read its fifo');
    }
    return result;
  };
  try {
    if (aborted()) return end('stopped');
    looks += 1;
    pending = native.pendingBytes(fd);
    pendingAtStart = pending;
    if (pending === 0) return end('read');
    let lastProgress = started;
    let interval = POLL_MIN_MS;
    for (;;) {
      const left = lastProgress + stallMs - performance.now();
      if (left <= 0) return end('stalled');
      await sleep(Math.max(POLL_MIN_MS, Math.min(interval, Math.ceil(left))));
      // Checked right before the ioctl: the owner aborts before it closes the fd.
      if (aborted()) return end('stopped');
      looks += 1;
      const now = native.pendingBytes(fd);
      if (now < pending) {
        lastProgress = performance.now();
        interval = POLL_MIN_MS;
      } else {
        interval = Math.min(interval * 2, POLL_MAX_MS);
      }
      pending = now;
      if (pending === 0) return end('read');
    }
  } catch (err) {
    return end('failed', err);
  }
}
