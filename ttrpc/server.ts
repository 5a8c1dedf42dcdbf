/**
 * The ttrpc server: listeners, connections, and the service registry. Its
 * lifecycle follows containerd/ttrpc server.go: `shutdown()` is graceful (stop
 * accepting, let calls in flight finish and their answers be written, then
 * close), `close()` is immediate.
 */
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { Code } from './code.js';
import { serverConnectionChannel, serverErrorChannel, type ServerErrorMessage } from './diagnostics.js';
import { Dispatcher } from './dispatcher.js';
import { ServerConnection } from './server-connection.js';
import type { ServiceMethods } from './service.js';
import { TtrpcError } from './ttrpc-error.js';

/**
 * Decides whether a freshly accepted connection may talk to the server, before
 * a byte of it is read: containerd's shim checks the peer's credentials
 * (SO_PEERCRED) here, as Go's `UnixSocketRequireSameUser` handshaker does.
 * Return (or resolve to) `false`, or throw, to refuse: the connection is then
 * closed without an answer.
 */
export type CheckPeer = (socket: Socket) => boolean | undefined | Promise<boolean | undefined>;

/** Options of {@link createServer}. */
export interface ServerOptions {
  /** Run on each accepted connection before it is served; see {@link CheckPeer}. */
  readonly checkPeer?: CheckPeer;
}

/** Where {@link TtrpcServer.listen} listens: a unix socket path, or an inherited listening fd. */
export type ListenTarget = string | { readonly path: string } | { readonly fd: number };

/** Options of {@link TtrpcServer.shutdown}. */
export interface ShutdownOptions {
  /** When it aborts before the calls in flight finish, the shutdown turns into {@link TtrpcServer.close}. */
  readonly signal?: AbortSignal;
}

/** A ttrpc server; see {@link createServer}. */
export interface TtrpcServer {
  /**
   * Registers a service under `name` (e.g. `containerd.task.v2.Task`). Build
   * `methods` with `implement()` or `unary()`. The same methods may be
   * registered under several names. Allowed while serving.
   *
   * @throws Error when `name` is already registered; TypeError when a method
   *   lacks `requestType.decode`, `responseType.encode` or a handler.
   */
  register(name: string, methods: ServiceMethods): void;
  /**
   * Listens on a unix socket path, or on an inherited listening socket fd
   * (containerd hands a shim its socket as fd 3: `listen({ fd: 3 })`).
   * Resolves once listening.
   *
   * @throws the listen error as Node reports it (e.g. `EADDRINUSE` when the
   *   path exists: remove a stale socket first), or a TtrpcError Unavailable
   *   when the server is already shutting down or closed.
   */
  listen(target: ListenTarget): Promise<void>;
  /**
   * Serves the connections of an existing `net.Server`, listening or not yet.
   * The ttrpc server takes it over: shutdown() and close() close it too.
   *
   * @throws TtrpcError Unavailable when the server is shutting down or closed.
   */
  serve(server: NetServer): void;
  /**
   * Serves one already-accepted socket (it goes through `checkPeer` first).
   * After shutdown or close the socket is destroyed at once.
   */
  handleConnection(socket: Socket): void;
  /**
   * Graceful stop: stop accepting, answer new requests on open connections
   * with Unavailable, let calls in flight finish and their answers be written,
   * close each connection once it is idle, and resolve when every listener and
   * connection is closed. Do not await it inside a handler: it waits for that
   * handler. Never rejects.
   */
  shutdown(options?: ShutdownOptions): Promise<void>;
  /**
   * Immediate stop: close listeners, destroy every connection, abort every
   * handler's signal (Canceled). Resolves when all is closed. Never rejects.
   */
  close(): Promise<void>;
  /** Connections currently open (accepted and past `checkPeer`). */
  readonly connectionCount: number;
}

/**
 * Creates a ttrpc server. Register services, then listen (or serve an existing
 * listener, or hand it accepted sockets).
 *
 * @example
 * ```ts
 * const server = createServer({ checkPeer: (socket) => sameUser(socket) });
 * server.register('containerd.task.v2.Task', implement(TaskService, task));
 * server.register('containerd.task.v3.Task', implement(TaskService, task));
 * await server.listen({ fd: 3 });
 * ```
 */
export function createServer(options: ServerOptions = {}): TtrpcServer {
  return new Server(options);
}

type ServerState = 'serving' | 'draining' | 'closed';

class Server implements TtrpcServer {
  readonly #dispatcher = new Dispatcher();
  readonly #checkPeer: CheckPeer | undefined;
  readonly #listeners = new Set<NetServer>();
  readonly #connections = new Set<ServerConnection>();
  /** Sockets accepted but still in checkPeer. */
  readonly #pending = new Set<Socket>();
  #state: ServerState = 'serving';
  #stopped: Promise<void> | undefined;

  constructor(options: ServerOptions) {
    this.#checkPeer = options.checkPeer;
  }

  get connectionCount(): number {
    return this.#connections.size;
  }

  register(name: string, methods: ServiceMethods): void {
    this.#dispatcher.register(name, methods);
  }

  async listen(target: ListenTarget): Promise<void> {
    this.#assertServing();
    const server = createNetServer({ pauseOnConnect: true });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      const options = typeof target === 'string' ? { path: target } : target;
      server.listen(options, () => {
        server.off('error', reject);
        resolve();
      });
    });
    if (this.#state !== 'serving') {
      // Shut down while we were binding.
      server.close();
      this.#assertServing();
    }
    this.serve(server);
  }

  serve(server: NetServer): void {
    this.#assertServing();
    if (this.#listeners.has(server)) return;
    server.on('connection', (socket: Socket) => {
      this.handleConnection(socket);
    });
    // Without a listener, an 'error' (accept failing with EMFILE, say) would
    // be thrown and take the process down. Node keeps accepting afterwards.
    server.on('error', (error: Error) => {
      if (serverErrorChannel.hasSubscribers) serverErrorChannel.publish({ error } satisfies ServerErrorMessage);
    });
    this.#listeners.add(server);
  }

  handleConnection(socket: Socket): void {
    // A socket must always have an 'error' listener: an EPIPE or ECONNRESET
    // on an unwatched socket is an uncaught exception. 'close' follows errors.
    socket.on('error', ignore);
    if (this.#state !== 'serving') {
      socket.destroy();
      return;
    }
    const checkPeer = this.#checkPeer;
    if (checkPeer === undefined) {
      this.#open(socket);
      return;
    }
    this.#pending.add(socket);
    let verdict: ReturnType<CheckPeer>;
    try {
      verdict = checkPeer(socket);
    } catch (error) {
      this.#refuse(socket, error);
      return;
    }
    Promise.resolve(verdict).then(
      (accepted) => {
        if (accepted === false) this.#refuse(socket, new Error('ttrpc: checkPeer refused the peer'));
        else this.#open(socket);
      },
      (error: unknown) => {
        this.#refuse(socket, error);
      },
    );
  }

  #open(socket: Socket): void {
    this.#pending.delete(socket);
    // The server stopped, or the peer left, while checkPeer ran.
    if (this.#state !== 'serving' || socket.destroyed) {
      socket.destroy();
      return;
    }
    const connection = new ServerConnection(socket, this.#dispatcher);
    this.#connections.add(connection);
    void connection.closed.then(() => {
      this.#connections.delete(connection);
    });
    connection.start();
  }

  #refuse(socket: Socket, error: unknown): void {
    this.#pending.delete(socket);
    socket.destroy();
    if (serverConnectionChannel.hasSubscribers)
      serverConnectionChannel.publish({ event: 'refused', peer: socket, error });
  }

  shutdown(options: ShutdownOptions = {}): Promise<void> {
    if (this.#state === 'serving') {
      this.#state = 'draining';
      for (const socket of this.#pending) socket.destroy();
      this.#pending.clear();
      for (const connection of this.#connections) connection.drain();
      this.#stopped = this.#allClosed();
    }
    const signal = options.signal;
    if (signal !== undefined && this.#state === 'draining') {
      if (signal.aborted) return this.close();
      const onAbort = (): void => void this.close();
      signal.addEventListener('abort', onAbort, { once: true });
      void this.#stopped?.then(() => {
        signal.removeEventListener('abort', onAbort);
      });
    }
    return this.#stopped ?? Promise.resolve();
  }

  close(): Promise<void> {
    if (this.#state !== 'closed') {
      this.#state = 'closed';
      for (const socket of this.#pending) socket.destroy();
      this.#pending.clear();
      const reason = new TtrpcError(Code.Canceled, 'ttrpc: server closed');
      for (const connection of this.#connections) connection.destroy(reason);
      this.#stopped ??= this.#allClosed();
    }
    return this.#stopped ?? Promise.resolve();
  }

  /** Closes the listeners and resolves once they and every connection are closed. */
  async #allClosed(): Promise<void> {
    // net.Server.close() calls back on 'close', which Node emits once the
    // listener is closed and every socket it accepted is gone; calling it on a
    // server that is not listening still calls back.
    const listenersClosed = [...this.#listeners].map(
      (server) =>
        new Promise<void>((resolve) => {
          server.close(() => {
            resolve();
          });
        }),
    );
    // Connections still open when close() escalates a shutdown are awaited
    // through the same set: close() destroys them, so their promises settle.
    while (this.#connections.size > 0) {
      await Promise.all([...this.#connections].map((c) => c.closed));
    }
    await Promise.all(listenersClosed);
    this.#listeners.clear();
  }

  #assertServing(): void {
    if (this.#state !== 'serving') throw new TtrpcError(Code.Unavailable, 'ttrpc: server closed');
  }
}

function ignore(): void {
  // Errors are handled through 'close'.
}
