/**
 * Output sinks: where the copy of a process's stdout or stderr is written.
 *
 * A sink may be shared by several sources (stdout and stderr appended to one
 * file, with one writer so their writes keep the order they were read in); it is
 * ended when its last source is done.
 */
import { constants, createWriteStream, fstatSync, mkdirSync, openSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { Writable } from 'node:stream';
import type { Native } from '../../native/facade.js';
import type { Logger } from '../api.js';
import type { RuntimeError } from '../errors.js';
import { hasErrno, invalidArgument, messageOf, unknown } from '../errors.js';
import { pipeWriter } from './fd-stream.js';
import { waitForReader } from './reader-wait.js';

/** A destination for copied output. */
export interface OutputSink {
  /** What the copiers write into (backpressure through `write()`'s return value). */
  readonly stream: Writable;
  /** Registers one more source; {@link release} must be called once per source. */
  retain(): void;
  /**
   * One source fewer. When none is left the stream is ended; resolves once what was
   * written reached the destination (or the sink failed, which was logged by the
   * copier) and, for a fifo, once its client read it or stopped reading (see
   * {@link fifoSink}). Never rejects.
   */
  release(): Promise<void>;
  /** Drops anything buffered and closes every fd; resolves once they are closed. Idempotent. */
  destroy(): Promise<void>;
}

/** What a fifo sink needs to wait for its client (reader-wait.ts). */
export interface FifoReaderOptions {
  /** For the wait's one debug line. */
  readonly log: Logger;
  /** Aborted when waiting for the client no longer helps (the drain bound passed, the stdio is closing). */
  readonly signal: AbortSignal;
  /** Default READER_STALL_MS. */
  readonly stallMs?: number;
}

/**
 * A fifo sink that holds both ends of the fifo: the write end it copies into and a
 * read end it never reads. While we hold a read end, a reader going away
 * (containerd restarting) makes our writes wait, never fail with EPIPE, and the
 * container never sees SIGPIPE (process/io.go copyPipes). The read end is opened
 * first: a non-blocking open of the write end fails with ENXIO while the fifo has
 * no reader, and ours guarantees one (so neither open ever waits for containerd).
 *
 * At the end (release), once everything was written and the write end closed, the
 * read end we still hold counts what the client has not read yet: release waits
 * (waitForReader) until the client read it all, or stopped reading for a short
 * window, before closing the read end, so the exit that follows does not make
 * containerd 1.6's client drop the tail. `what` names the stream ('stdout', 'stderr').
 */
export function fifoSink(native: Native, path: string, what: string, readers: FifoReaderOptions): OutputSink {
  let readFd: number;
  try {
    readFd = native.openFifo(path, 'read');
  } catch (err) {
    throw openError(what, path, err);
  }
  let stream: Writable;
  try {
    stream = pipeWriter(native, native.openFifo(path, 'write'));
  } catch (err) {
    native.close(readFd);
    throw openError(what, path, err);
  }
  let heldRead = true;
  // Aborted before readFd is closed: a wait still polling it stops first (reader-wait.ts, races).
  const closing = new AbortController();
  const closeRead = (): void => {
    if (!heldRead) return;
    heldRead = false;
    closing.abort();
    native.close(readFd);
  };
  const signal = AbortSignal.any([closing.signal, readers.signal]);
  const readerCaughtUp = async (): Promise<void> => {
    await waitForReader(native, readFd, { ...readers, stream: what, signal });
  };
  // The write end first, then our read end: the order of process/io.go.
  return sharedSink(stream, closeRead, readerCaughtUp);
}

/**
 * A sink appending to a regular file (mode 0644 when created), optionally creating
 * its directory (0755) first. Used for `file://` and for a plain stdout path that is
 * not a fifo. Throws InvalidArgument when the file cannot be opened.
 */
export function fileSink(path: string, what: string, options: { create: boolean }): OutputSink {
  let fd: number;
  try {
    if (options.create) mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
    // Node opens with O_CLOEXEC; no O_CREAT for an existing plain path (as the Go shim).
    const flags = constants.O_WRONLY | constants.O_APPEND | (options.create ? constants.O_CREAT : 0);
    fd = openSync(path, flags, 0o644);
  } catch (err) {
    throw openError(what, path, err);
  }
  const stream = createWriteStream('', { fd, autoClose: true, highWaterMark: 64 * 1024 });
  return sharedSink(stream, () => undefined);
}

/** A sink that drops everything (a terminal whose output nobody asked for). */
export function discardSink(): OutputSink {
  const stream = new Writable({
    write(_chunk: Buffer, _encoding, callback) {
      callback();
    },
  });
  return sharedSink(stream, () => undefined);
}

/** A sink over the write end of a pipe (terminal output to a binary logger). Takes ownership of `fd`. */
export function pipeSink(native: Native, fd: number): OutputSink {
  return sharedSink(pipeWriter(native, fd), () => undefined);
}

/**
 * Opens the sink for one output stream of the `fifo` scheme: a fifo (which waits for
 * its reader at the end, see {@link fifoSink}), or a regular file appended to (the Go
 * shim checks `fifo.IsFifo` the same way). `shared` holds the file sink already
 * opened for the same path, so stdout and stderr naming one file get one writer.
 */
export function pathSink(
  native: Native,
  path: string,
  what: string,
  shared: Map<string, OutputSink>,
  readers: FifoReaderOptions,
): OutputSink {
  const existing = shared.get(path);
  if (existing !== undefined) return existing;
  let isFifo: boolean;
  try {
    isFifo = statSync(path).isFIFO();
  } catch (err) {
    throw openError(what, path, err);
  }
  if (isFifo) return fifoSink(native, path, what, readers);
  const sink = fileSink(path, what, { create: false });
  shared.set(path, sink);
  return sink;
}

/** True when `fd` is a fifo (stdin must be one: it is read as a stream). */
export function isFifoFd(fd: number): boolean {
  return fstatSync(fd).isFIFO();
}

/**
 * `settle` runs at the end of release only, after the stream closed and before
 * `afterEnd` (a fifo's wait for its reader); destroy skips it.
 */
function sharedSink(stream: Writable, afterEnd: () => void, settle: () => Promise<void> = () => Promise.resolve()): OutputSink {
  let sources = 0;
  let ended: Promise<void> | undefined;
  // Errors are reported by the copiers (they listen too); without a listener here an
  // error emitted while no copier is attached would crash the daemon.
  stream.on('error', () => undefined);
  // 'close' comes after 'finish' (everything written) and after the fd was closed
  // (a file stream closes it on the threadpool), and also after an error.
  const closed = (): Promise<void> =>
    new Promise<void>((resolve) => {
      if (stream.closed) {
        resolve();
        return;
      }
      stream.once('close', () => {
        resolve();
      });
    });
  return {
    stream,
    retain() {
      sources += 1;
    },
    release() {
      sources -= 1;
      if (sources > 0) return Promise.resolve();
      ended ??= (async () => {
        if (!stream.writableEnded && !stream.destroyed) stream.end();
        await closed();
        await settle();
        afterEnd();
      })();
      return ended;
    },
    destroy() {
      stream.destroy();
      afterEnd();
      return closed();
    },
  };
}

/** The error for a stdio path that cannot be opened: InvalidArgument when the path itself is wrong. */
export function openError(what: string, path: string, err: unknown): RuntimeError {
  if (hasErrno(err, 'ENOENT') || hasErrno(err, 'ENOTDIR') || hasErrno(err, 'EACCES') || hasErrno(err, 'EISDIR') || hasErrno(err, 'ENXIO')) {
    return invalidArgument(`${what} '${path}' cannot be opened: ${messageOf(err)}`, err);
  }
  return unknown(`${what} '${path}' cannot be opened: ${messageOf(err)}`, err);
}
