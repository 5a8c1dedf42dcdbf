/**
 * The daemon's logger: pino, structured, one JSON line per event worth knowing,
 * `info` by default (quiet: one line per container lifecycle step and per
 * problem), `debug` with the `-debug` flag or `LogLevel = "debug"`.
 *
 * Lines go to fd 2, which the daemon points at a bundle's `log` fifo: containerd
 * copies that fifo into its own log with the runtime's fields (facts section 2.8).
 *
 * A group daemon outlives the container whose fifo it writes to: when containerd
 * deletes that bundle it stops reading, and writes fail with EPIPE. A log write
 * must never throw into the code that logged (a throwing logger would take the
 * daemon down), so the sink swallows write errors, counts the lines it lost, and
 * the daemon re-attaches fd 2 to the next container's fifo (see {@link LogSink.attach}).
 * A containerd restart also leaves the fifo without a reader for a while; the sink
 * keeps writing to it, and lines flow again once containerd reopens it.
 * Writes are synchronous so a line logged just before the daemon exits is not lost.
 */
import { writeSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import type { Logger } from '../core/index.js';
import type { Native } from '../native/facade.js';
import type { LogLevel } from './settings.js';

/** Where log lines go: an fd that can lose its reader. */
export interface LogSink {
  /** Writes one line; never throws. */
  write(line: string): void;
  /** Points the sink's fd at `<bundle>/log` unless a fifo with a reader is attached already (no EPIPE since the last line through). */
  attach(bundle: string): void;
  /** Lines lost because nobody was reading. */
  readonly dropped: number;
}

/**
 * A sink on `fd`. `attached` says whether `fd` already leads somewhere (a CLI's
 * stderr); the daemon starts detached and calls {@link LogSink.attach} with its
 * bundle, and again with each new container's bundle, which only re-points fd 2
 * after the current fifo lost its reader (EPIPE).
 */
export function createLogSink(fd: number, options: { readonly native?: Native; readonly attached: boolean }): LogSink {
  const { native } = options;
  let attached = options.attached;
  /** The last write found no reader (EPIPE): attach may re-point fd 2. */
  let readerLost = false;
  let dropped = 0;
  return {
    get dropped() {
      return dropped;
    },
    write(line) {
      if (!attached) {
        dropped++;
        return;
      }
      const bytes = Buffer.from(line);
      try {
        for (let offset = 0; offset < bytes.length; ) offset += writeSync(fd, bytes, offset);
        readerLost = false;
      } catch (error) {
        // EAGAIN (containerd is not keeping up with a full fifo) loses this line only.
        // EPIPE or EBADF: nobody reads the fifo now. Keep writing to it all the same: a
        // restarted containerd reopens the same fifo and the next line gets through
        // (shim-resilience.test.ts); a deleted bundle's fifo never gets a reader again,
        // so the next attach re-points fd 2.
        dropped++;
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'EPIPE' || code === 'EBADF') readerLost = true;
      }
    },
    attach(bundle) {
      if ((attached && !readerLost) || native === undefined) return;
      try {
        const logFd = native.openFifo(join(bundle, 'log'), 'write');
        try {
          native.dup2(logFd, fd);
        } finally {
          native.close(logFd);
        }
        attached = true;
        readerLost = false;
      } catch {
        // No fifo (a bundle made by hand) or no reader: stay detached.
      }
    },
  };
}

/** A pino logger writing through `sink`. */
export function createLogger(level: LogLevel, sink: LogSink, bindings: Record<string, unknown> = {}): pino.Logger & Logger {
  return pino(
    {
      level,
      base: { pid: process.pid, ...bindings },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    {
      write: (line: string) => {
        sink.write(line);
      },
    },
  );
}
