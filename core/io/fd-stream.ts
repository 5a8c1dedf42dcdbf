/**
 * Node streams over raw fds: how core/io moves bytes without a thread per stream.
 *
 * Pipes and fifos become `net.Socket`s (libuv `uv_pipe_open`: non-blocking, epoll,
 * 64 KiB reads, writes queued with backpressure). `fs.createReadStream` would park
 * a threadpool thread in a blocking read() per stream, and the pool has 4 threads.
 *
 * Ownership: every function here takes ownership of the fd it is given, also when
 * it throws (the fd is closed then). Destroying the returned stream closes the fd.
 */
import { readSync } from 'node:fs';
import net from 'node:net';
import type { Native } from '../../native/facade.js';
import { hasErrno } from '../errors.js';

/** A read-only stream over our end of a pipe or fifo. EOF ends it and closes the fd. */
export function pipeReader(native: Native, fd: number): net.Socket {
  return adopt(native, fd, () => new net.Socket({ fd, readable: true, writable: false }));
}

/** A write-only stream over our end of a pipe or fifo; `end()` flushes, then closes the fd. */
export function pipeWriter(native: Native, fd: number): net.Socket {
  return adopt(native, fd, () => new net.Socket({ fd, readable: false, writable: true }));
}

/** The part of Node's internal `pipe_wrap` binding that {@link terminalStream} uses. */
interface PipeWrapBinding {
  readonly Pipe: new (type: number) => { open(fd: number): number };
  readonly constants: { readonly SOCKET: number };
}

let pipeWrap: PipeWrapBinding | undefined;

/**
 * A duplex stream over a pty master. Reading after the terminal's last slave fd
 * closed fails with EIO: that is the terminal's end of file.
 *
 * Why not the public APIs: `net.Socket({ fd })` refuses a tty fd, and
 * `tty.ReadStream` opens a pty master in libuv's "blocking writes" mode, which
 * blocks (or, on a non-blocking fd, spins) the event loop when the container does
 * not read its terminal input. A libuv pipe handle over the master is what
 * microsoft/node-pty does (its `PipeSocket`): non-blocking reads and writes, with
 * backpressure. `process.binding('pipe_wrap')` is a documentation-only deprecation
 * (DEP0111) and on Node's allow-list; Node 20 is pinned in package.json.
 */
export function terminalStream(native: Native, fd: number): net.Socket {
  return adopt(native, fd, () => {
    pipeWrap ??= (process as unknown as { binding(name: string): PipeWrapBinding }).binding('pipe_wrap');
    const handle = new pipeWrap.Pipe(pipeWrap.constants.SOCKET);
    const status = handle.open(fd);
    if (status !== 0) throw Object.assign(new Error(`cannot open the terminal fd ${fd} (uv error ${status})`), { code: 'EINVAL' });
    // `handle` is documented only internally; it is how net.Server wraps accepted connections.
    const socket = new net.Socket({ handle, readable: true, writable: true } as net.SocketConstructorOpts);
    endWithoutLoss(socket, fd);
    return socket;
  });
}

/**
 * Makes the end of a pty master's output lossless. libuv reads a pty master as a pipe,
 * and two pipe rules lost the tail of a terminal's output (a burst right before the
 * process exits, a slow client; integration/shim-ctr-tty.test.ts):
 * - end of file on POLLHUP after a short read (libuv uv__stream_io): a pipe's short read
 *   drained it, but a pty master hands out at most a few KiB per read, so more may wait;
 * - a read error (EIO: the last slave fd closed and the master is drained) makes Node
 *   destroy the stream, dropping what it had buffered for a slow consumer.
 * At either, the rest is read here synchronously (the fd is non-blocking and the slave
 * is gone, so every read returns at once until EIO), and the stream ends normally once
 * its consumer has everything.
 */
function endWithoutLoss(socket: net.Socket, fd: number): void {
  const push = socket.push.bind(socket);
  const destroy = socket.destroy.bind(socket);
  const scratch = Buffer.allocUnsafe(64 * 1024);
  let ending = false;
  const end = (): void => {
    if (ending) return;
    ending = true;
    for (let rest = readNow(fd, scratch); rest !== undefined; rest = readNow(fd, scratch)) push(rest);
    push(null);
  };
  socket.push = (chunk: unknown, encoding?: BufferEncoding): boolean => {
    if (chunk !== null) return push(chunk, encoding);
    end();
    return false;
  };
  socket.destroy = (error?: Error): net.Socket => {
    if (error === undefined || !hasErrno(error, 'EIO') || ending || socket.readableEnded) return destroy(error);
    end();
    // Closed once the consumer has read everything, as Node does after an end of file.
    socket.once('end', () => destroy());
    socket.read(0);
    return socket;
  };
}

/** One non-blocking read of `fd`; undefined at EIO (drained), EAGAIN (nothing now) or EOF. */
function readNow(fd: number, scratch: Buffer): Buffer | undefined {
  try {
    const n = readSync(fd, scratch, 0, scratch.length, null);
    return n > 0 ? Buffer.from(scratch.subarray(0, n)) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The fd under a connected `net.Socket` (e.g. one accepted by a `net.Server`), to
 * use with `native.receiveFds`. Node has no public accessor; `_handle.fd` is what
 * every libuv stream handle exposes. Throws when the socket has no fd (closed).
 */
export function socketFd(socket: net.Socket): number {
  const handle = (socket as unknown as { _handle?: { fd?: unknown } | null })._handle;
  const fd = handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new Error('the socket has no file descriptor (it is closed)');
  return fd;
}

/** Calls `make`; if it throws, the fd it was meant to own is closed before rethrowing. */
function adopt(native: Native, fd: number, make: () => net.Socket): net.Socket {
  try {
    return make();
  } catch (err) {
    native.close(fd);
    throw err;
  }
}
