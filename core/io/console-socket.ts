/**
 * The console socket of a terminal process: a temporary unix socket that the OCI
 * runtime (`runc create|exec --console-socket <path>`) connects to, sending the pty
 * master it made for the container with SCM_RIGHTS (go-runc console.go
 * NewTempConsoleSocket / ReceiveMaster). The message's bytes are the pty's name.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { join } from 'node:path';
import type { FdWatcher, Native } from '../../native/facade.js';
import { hasErrno, invalidArgument, messageOf, RuntimeError, unknown } from '../errors.js';
import { socketFd } from './fd-stream.js';

/** A listening console socket. */
export interface ConsoleSocket {
  /** Absolute path to pass as `--console-socket`. */
  readonly path: string;
  /**
   * Resolves with the pty master the runtime sent (an fd the caller owns from then
   * on). Rejects with DeadlineExceeded after `timeoutMs`, or when the runtime closed
   * the connection without sending exactly one fd. Call once.
   */
  receiveMaster(timeoutMs: number): Promise<number>;
  /** Stops listening and removes the socket and its directory. Idempotent; never rejects. */
  close(): Promise<void>;
}

/** sun_path holds 108 bytes, the terminating NUL included. */
const MAX_SOCKET_PATH = 107;

/** runc sends the pty's name (a path) as the message bytes. */
const MAX_MESSAGE = 4096;

/**
 * Creates a private directory (0700) under `workDir` holding a listening socket
 * `pty.sock`. Throws InvalidArgument when the path would not fit in a socket
 * address (choose a shorter workDir).
 */
export async function createConsoleSocket(native: Native, workDir: string): Promise<ConsoleSocket> {
  const dir = await mkdtemp(join(workDir, 'pty'));
  const path = join(dir, 'pty.sock');
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH) {
    await rm(dir, { recursive: true, force: true });
    throw invalidArgument(`console socket path '${path}' is longer than ${MAX_SOCKET_PATH} bytes: use a shorter work directory`);
  }
  // Connections stay paused: libuv must not read the message we receive with recvmsg.
  const server = net.createServer({ pauseOnConnect: true });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw unknown(`cannot listen on the console socket '${path}': ${messageOf(err)}`, err);
  }
  return new ListeningConsoleSocket(native, server, dir, path);
}

class ListeningConsoleSocket implements ConsoleSocket {
  readonly path: string;
  readonly #native: Native;
  readonly #server: net.Server;
  readonly #dir: string;
  /** The runtime's connection: the first one; any later one is refused. */
  #connection: net.Socket | undefined;
  #onConnection: (() => void) | undefined;
  #watcher: FdWatcher | undefined;
  /** Rejects a pending receiveMaster (close() was called). */
  #abort: (() => void) | undefined;
  #closing: Promise<void> | undefined;

  constructor(native: Native, server: net.Server, dir: string, path: string) {
    this.#native = native;
    this.#server = server;
    this.#dir = dir;
    this.path = path;
    server.on('connection', (socket: net.Socket) => {
      socket.on('error', () => undefined);
      if (this.#connection !== undefined || this.#closing !== undefined) {
        socket.destroy();
        return;
      }
      this.#connection = socket;
      this.#onConnection?.();
    });
    server.on('error', () => undefined);
  }

  async receiveMaster(timeoutMs: number): Promise<number> {
    if (this.#closing !== undefined) throw unknown('the console socket is closed');
    let timer: NodeJS.Timeout | undefined;
    try {
      return await new Promise<number>((resolve, reject) => {
        let settled = false;
        const settle = (outcome: { fd: number } | { err: Error }): void => {
          if (settled) {
            if ('fd' in outcome) this.#native.close(outcome.fd);
            return;
          }
          settled = true;
          this.#onConnection = undefined;
          this.#abort = undefined;
          if ('fd' in outcome) resolve(outcome.fd);
          else reject(outcome.err);
        };
        timer = setTimeout(() => {
          settle({ err: new RuntimeError('DeadlineExceeded', `the OCI runtime did not send the pty master on the console socket within ${timeoutMs} ms`) });
        }, timeoutMs);
        this.#abort = () => {
          settle({ err: unknown('the console socket was closed before the OCI runtime sent the pty master') });
        };
        const receive = (): void => {
          const connection = this.#connection;
          if (settled || connection === undefined) return;
          let fd: number | undefined;
          try {
            fd = this.#tryReceive(connection);
          } catch (err) {
            settle({ err: err instanceof RuntimeError ? err : unknown(`receiving the pty master failed: ${messageOf(err)}`, err) });
            return;
          }
          if (fd !== undefined) {
            settle({ fd });
            return;
          }
          // Nothing yet: wait for the message (runc normally sent it before it exited).
          try {
            this.#watcher ??= this.#native.watchReadable(socketFd(connection), receive);
          } catch (err) {
            settle({ err: unknown(`waiting for the pty master failed: ${messageOf(err)}`, err) });
          }
        };
        this.#onConnection = receive;
        receive();
      });
    } finally {
      clearTimeout(timer);
      // One pty per socket: stop listening now rather than at close().
      await this.close();
    }
  }

  /** One recvmsg: the master, or undefined when nothing arrived yet (EAGAIN). */
  #tryReceive(connection: net.Socket): number | undefined {
    let message;
    try {
      message = this.#native.receiveFds(socketFd(connection), MAX_MESSAGE, 4);
    } catch (err) {
      if (hasErrno(err, 'EAGAIN')) return undefined;
      throw err;
    }
    const [master, ...extra] = message.fds;
    for (const fd of extra) this.#native.close(fd);
    if (master === undefined) {
      throw unknown('the OCI runtime closed the console socket without sending the pty master');
    }
    if (extra.length > 0) {
      this.#native.close(master);
      throw unknown(`the OCI runtime sent ${message.fds.length} fds on the console socket instead of one pty master`);
    }
    return master;
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#abort?.();
      this.#watcher?.close();
      this.#watcher = undefined;
      this.#connection?.destroy();
      await new Promise<void>((resolve) => {
        this.#server.close(() => {
          resolve();
        });
      });
      await rm(this.#dir, { recursive: true, force: true }).catch(() => undefined);
    })();
    return this.#closing;
  }
}
