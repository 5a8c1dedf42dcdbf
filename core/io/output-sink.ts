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
import type { RuntimeError } from '../errors.js';
import { hasErrno, invalidArgument, messageOf, unknown } from '../errors.js';
import { pipeWriter } from './fd-stream.js';

/** A destination for copied output. */
export interface OutputSink {
  /** What the copiers write into (backpressure through `write()`'s return value). */
  readonly stream: Writable;
  /** Registers one more source; {@link release} must be called once per source. */
  retain(): void;
  /**
   * One source fewer. When none is left the stream is ended; resolves once what was
   * written reached the destination (or the sink failed, which was logged by the
   * copier). Never rejects.
   */
  release(): Promise<void>;
  /** Drops anything buffered and closes every fd; resolves once they are closed. Idempotent. */
  destroy(): Promise<void>;
}

/**
 * A fifo sink that holds both ends of the fifo: the write end it copies into and a
 * read end it never reads. While we hold a read end, a reader going away
 * (containerd restarting) makes our writes wait, never fail with EPIPE, and the
 * container never sees SIGPIPE (process/io.go copyPipes). The read end is opened
 * first: a non-blocking open of the write end fails with ENXIO while the fifo has
 * no reader, and ours guarantees one (so neither open ever waits for containerd).
 */
export function fifoSink(native: Native, path: string, what: string): OutputSink {
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
  const closeRead = (): void => {
    if (!heldRead) return;
    heldRead = false;
    native.close(readFd);
  };
  // The write end first, then our read end: the order of process/io.go.
  return sharedSink(stream, closeRead);
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
 * Opens the sink for one output stream of the `fifo` scheme: a fifo, or a regular
 * file appended to (the Go shim checks `fifo.IsFifo` the same way). `shared` holds
 * the file sink already opened for the same path, so stdout and stderr naming one
 * file get one writer.
 */
export function pathSink(native: Native, path: string, what: string, shared: Map<string, OutputSink>): OutputSink {
  const existing = shared.get(path);
  if (existing !== undefined) return existing;
  let isFifo: boolean;
  try {
    isFifo = statSync(path).isFIFO();
  } catch (err) {
    throw openError(what, path, err);
  }
  if (isFifo) return fifoSink(native, path, what);
  const sink = fileSink(path, what, { create: false });
  shared.set(path, sink);
  return sink;
}

/** True when `fd` is a fifo (stdin must be one: it is read as a stream). */
export function isFifoFd(fd: number): boolean {
  return fstatSync(fd).isFIFO();
}

function sharedSink(stream: Writable, afterEnd: () => void): OutputSink {
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
