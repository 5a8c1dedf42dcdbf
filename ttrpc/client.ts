/**
 * The ttrpc client: one connection, many concurrent unary calls, matched to
 * their answers by stream id (odd, increasing, from 1: containerd/ttrpc
 * client.go `createStream`).
 *
 * Closed connections follow Go's `filterCloseErr`: EOF, EPIPE, ECONNRESET and a
 * destroyed socket all become one {@link ConnectionClosedError}, so a caller
 * can tell "reconnect" apart from an error status.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { Code } from './code.js';
import { setDeadlineTimer, type DeadlineTimer } from './deadline-timer.js';
import { clientProtocolErrorChannel, clientRequestChannel } from './diagnostics.js';
import { decodeResponse, encodeRequestFrame } from './envelope.js';
import { MessageType, oversizedMessage } from './frame.js';
import { createFrameDecoder, type DecodedFrame } from './frame-decoder.js';
import { metadataToKeyValues, type MetadataInit } from './metadata.js';
import type { MessageInput, MessageOutput, ServiceDefinition } from './service.js';
import { ConnectionClosedError, TtrpcError } from './ttrpc-error.js';

/** Per-call options. */
export interface CallOptions {
  /**
   * Time allowed for the call, in milliseconds. Sent as `timeout_nano` (the
   * server's handler sees it as its deadline) and enforced here: when it passes
   * the call rejects with {@link Code.DeadlineExceeded}.
   */
  readonly timeoutMs?: number;
  /** Aborting it rejects the call (Canceled, or DeadlineExceeded for a TimeoutError reason). */
  readonly signal?: AbortSignal;
  /** Request metadata; keys are lower-cased. */
  readonly metadata?: MetadataInit;
}

/** A ttrpc client over one connection; see {@link createClient} and {@link connect}. */
export interface TtrpcClient {
  /**
   * Makes a unary call with an already-encoded request and resolves to the
   * encoded response.
   *
   * @throws (rejects with) TtrpcError carrying the server's status when it is
   *   not OK; DeadlineExceeded or Canceled per `options`; ResourceExhausted when
   *   the request exceeds 4 MiB (nothing is sent); {@link ConnectionClosedError}
   *   when the connection is or becomes closed before the answer.
   */
  call(service: string, method: string, request: Uint8Array, options?: CallOptions): Promise<Uint8Array>;
  /**
   * Closes the connection. Pending calls reject with ConnectionClosedError.
   * Resolves once the socket is closed. Never rejects.
   */
  close(): Promise<void>;
  /** Resolves (never rejects) with the reason once the connection is closed, for whoever reconnects. */
  readonly closed: Promise<ConnectionClosedError>;
  /** True once the connection is closed. */
  readonly isClosed: boolean;
  /** The underlying socket. */
  readonly socket: Socket;
}

/**
 * Creates a client on a unix socket path (connecting in the background: calls
 * made before the connection is up are sent once it is) or on a socket you
 * connected yourself. A failed connect rejects the calls with
 * ConnectionClosedError; use {@link connect} to wait for the connection first.
 */
export function createClient(target: string | Socket): TtrpcClient {
  return new Client(typeof target === 'string' ? netConnect(target) : target);
}

/**
 * Connects to a unix socket path and resolves to a client once connected.
 *
 * @throws (rejects with) TtrpcError Unavailable "ttrpc: cannot connect to
 *   PATH: ..." (cause: the Node error, e.g. ENOENT or ECONNREFUSED).
 */
export async function connect(path: string): Promise<TtrpcClient> {
  const socket = netConnect(path);
  await new Promise<void>((resolve, reject) => {
    const onError = (cause: Error): void => {
      reject(new TtrpcError(Code.Unavailable, `ttrpc: cannot connect to ${path}: ${cause.message}`, { cause }));
    };
    socket.once('error', onError);
    socket.once('connect', () => {
      socket.off('error', onError);
      resolve();
    });
  });
  return new Client(socket);
}

/** A typed client for a service definition: one async function per method. */
export type ServiceClient<S extends ServiceDefinition> = {
  readonly [K in keyof S]: (
    request: MessageInput<S[K]['requestType']>,
    options?: CallOptions,
  ) => Promise<MessageOutput<S[K]['responseType']>>;
};

/**
 * Wraps a client for one service: each method encodes its request with the
 * definition's `requestType`, calls `service/method`, and decodes the answer
 * with `responseType`.
 *
 * A request that does not encode rejects with TtrpcError InvalidArgument, a
 * response that does not decode with Internal; otherwise methods reject as
 * {@link TtrpcClient.call} does.
 */
export function createServiceClient<S extends ServiceDefinition>(
  client: TtrpcClient,
  service: string,
  definition: S,
): ServiceClient<S> {
  const methods: Record<string, (request: unknown, options?: CallOptions) => Promise<unknown>> = {};
  for (const [name, method] of Object.entries(definition)) {
    const requestType = method.requestType as unknown as { encode(message: unknown): { finish(): Uint8Array } };
    const responseType = method.responseType;
    methods[name] = async (request: unknown, options?: CallOptions): Promise<unknown> => {
      let encoded: Uint8Array;
      try {
        encoded = requestType.encode(request).finish();
      } catch (cause) {
        throw new TtrpcError(
          Code.InvalidArgument,
          `ttrpc: cannot encode the request of ${service}/${name}: ${String(cause)}`,
          { cause },
        );
      }
      const bytes = await client.call(service, name, encoded, options);
      try {
        return responseType.decode(bytes);
      } catch (cause) {
        throw new TtrpcError(
          Code.Internal,
          `ttrpc: cannot decode the response of ${service}/${name}: ${String(cause)}`,
          { cause },
        );
      }
    };
  }
  return methods as ServiceClient<S>;
}

/** Largest stream id: ids are uint32. */
const MAX_STREAM_ID = 0xffff_ffff;

interface PendingCall {
  readonly service: string;
  readonly method: string;
  readonly startedAt: number;
  resolve(payload: Uint8Array): void;
  reject(error: TtrpcError): void;
  timer: DeadlineTimer | undefined;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

class Client implements TtrpcClient {
  readonly socket: Socket;
  readonly closed: Promise<ConnectionClosedError>;
  readonly #decoder = createFrameDecoder();
  readonly #pending = new Map<number, PendingCall>();
  #nextStreamId = 1;
  #closedError: ConnectionClosedError | undefined;
  /** The last socket error, reported as the cause of the close. */
  #socketError: Error | undefined;
  #corked = false;
  #resolveClosed!: (error: ConnectionClosedError) => void;

  constructor(socket: Socket) {
    this.socket = socket;
    this.closed = new Promise((resolve) => {
      this.#resolveClosed = resolve;
    });
    socket.on('data', (chunk: Buffer) => {
      this.#onData(chunk);
    });
    socket.on('error', (error: Error) => {
      this.#socketError ??= error;
    });
    // The server closed its side: nothing more will be answered. (Node ends
    // ours too unless the socket allows half-open connections.)
    socket.on('end', () => {
      this.#fail(new ConnectionClosedError('ttrpc: connection closed by the server'));
      socket.end();
    });
    socket.on('close', () => {
      const cause = this.#socketError;
      this.#fail(
        new ConnectionClosedError(
          cause === undefined ? 'ttrpc: connection closed' : `ttrpc: connection closed: ${cause.message}`,
          cause === undefined ? {} : { cause },
        ),
      );
    });
    if (socket.destroyed) this.#fail(new ConnectionClosedError('ttrpc: connection closed'));
  }

  get isClosed(): boolean {
    return this.#closedError !== undefined;
  }

  call(service: string, method: string, request: Uint8Array, options: CallOptions = {}): Promise<Uint8Array> {
    const closedError = this.#closedError;
    if (closedError !== undefined)
      return Promise.reject(new ConnectionClosedError(closedError.message, { cause: closedError.cause }));
    const { signal, timeoutMs } = options;
    if (signal?.aborted === true) return Promise.reject(abortError(signal));
    if (timeoutMs !== undefined && !(Number.isFinite(timeoutMs) && timeoutMs >= 0)) {
      return Promise.reject(
        new TtrpcError(Code.InvalidArgument, `ttrpc: timeoutMs must be a finite number >= 0, got ${String(timeoutMs)}`),
      );
    }
    if (this.#nextStreamId > MAX_STREAM_ID) {
      // Stream ids must increase (server.go); once they run out the connection
      // is spent. Closing it makes every caller reconnect.
      this.#fail(new ConnectionClosedError('ttrpc: stream ids exhausted on this connection; reconnect'));
      this.socket.destroy();
      return this.call(service, method, request, options);
    }
    const deadline = timeoutMs === undefined ? undefined : Date.now() + timeoutMs;
    let frame: Buffer;
    const streamId = this.#nextStreamId;
    try {
      frame = encodeRequestFrame(
        streamId,
        {
          service,
          method,
          timeoutNano: timeoutMs === undefined ? 0 : Math.max(1, Math.round(timeoutMs * 1e6)),
          metadata: options.metadata === undefined ? [] : metadataToKeyValues(options.metadata),
        },
        request,
      );
    } catch (error) {
      return Promise.reject(TtrpcError.from(error, Code.Internal));
    }
    this.#nextStreamId += 2;

    return new Promise<Uint8Array>((resolve, reject) => {
      const pending: PendingCall = {
        service,
        method,
        startedAt: performance.now(),
        resolve,
        reject,
        timer: undefined,
        signal,
        onAbort: undefined,
      };
      this.#pending.set(streamId, pending);
      if (signal !== undefined) {
        pending.onAbort = (): void => {
          this.#settle(streamId, abortError(signal));
        };
        signal.addEventListener('abort', pending.onAbort, { once: true });
      }
      this.#send(frame);
      if (deadline !== undefined && this.#pending.has(streamId)) {
        pending.timer = setDeadlineTimer(deadline, () => {
          this.#settle(
            streamId,
            new TtrpcError(
              Code.DeadlineExceeded,
              `ttrpc: ${service}/${method} exceeded its ${timeoutMs ?? 0} ms deadline`,
            ),
          );
        });
      }
    });
  }

  close(): Promise<void> {
    if (this.#closedError === undefined) this.#fail(new ConnectionClosedError('ttrpc: client closed'));
    const socket = this.socket;
    if (socket.closed) return Promise.resolve();
    return new Promise((resolve) => {
      socket.once('close', () => {
        resolve();
      });
      socket.destroy();
    });
  }

  #onData(chunk: Buffer): void {
    let results: DecodedFrame[];
    try {
      results = this.#decoder.push(chunk);
      for (const result of results) this.#onFrame(result);
    } catch (error) {
      // By design nothing above throws; never let a bug become an uncaught exception.
      this.#fail(
        new ConnectionClosedError(`ttrpc: internal error handling a frame: ${String(error)}`, { cause: error }),
      );
      this.socket.destroy();
    }
  }

  #onFrame(frame: DecodedFrame): void {
    const { streamId, type } = frame;
    if (!this.#pending.has(streamId)) {
      // An answer after the caller gave up (deadline, abort), or junk. Go logs
      // "ttrpc: received message on inactive stream".
      if (clientProtocolErrorChannel.hasSubscribers) {
        clientProtocolErrorChannel.publish({
          streamId,
          type,
          message: 'received message on inactive stream',
          answered: false,
          peer: this.socket,
        });
      }
      return;
    }
    if (frame.kind === 'oversized') {
      this.#settle(streamId, new TtrpcError(Code.ResourceExhausted, oversizedMessage(frame.length)));
      return;
    }
    switch (type) {
      case MessageType.Response: {
        const decoded = decodeResponse(frame.data);
        this.#settle(streamId, decoded.ok ? decoded.payload : decoded.error);
        return;
      }
      case MessageType.Data:
        // Go: "unexpected data message received: protocol error" for unary calls.
        this.#settle(
          streamId,
          new TtrpcError(Code.Internal, 'ttrpc: unexpected data message received on a unary call'),
        );
        return;
      default:
        if (clientProtocolErrorChannel.hasSubscribers) {
          clientProtocolErrorChannel.publish({
            streamId,
            type,
            message: `frame of type ${type} ignored`,
            answered: false,
            peer: this.socket,
          });
        }
        return;
    }
  }

  /** Completes one call with a payload or an error, exactly once. */
  #settle(streamId: number, outcome: Uint8Array | TtrpcError): void {
    const pending = this.#pending.get(streamId);
    if (pending === undefined) return;
    this.#pending.delete(streamId);
    pending.timer?.clear();
    if (pending.onAbort !== undefined) pending.signal?.removeEventListener('abort', pending.onAbort);
    const failed = outcome instanceof TtrpcError;
    if (failed) pending.reject(outcome);
    else pending.resolve(outcome);
    if (clientRequestChannel.hasSubscribers) {
      clientRequestChannel.publish({
        service: pending.service,
        method: pending.method,
        streamId,
        durationMs: performance.now() - pending.startedAt,
        code: failed ? outcome.code : Code.OK,
        error: failed ? outcome : undefined,
      });
    }
  }

  /** Marks the connection closed and rejects every pending call. */
  #fail(error: ConnectionClosedError): void {
    if (this.#closedError !== undefined) return;
    this.#closedError = error;
    for (const streamId of [...this.#pending.keys()]) {
      this.#settle(streamId, new ConnectionClosedError(error.message, { cause: error.cause }));
    }
    this.#resolveClosed(error);
  }

  /** Queues a frame; frames of one tick leave in one writev (see the server's #send). */
  #send(frame: Buffer): void {
    const socket = this.socket;
    if (!this.#corked) {
      this.#corked = true;
      socket.cork();
      process.nextTick(this.#uncork);
    }
    socket.write(frame);
  }

  readonly #uncork = (): void => {
    this.#corked = false;
    this.socket.uncork();
  };
}

function abortError(signal: AbortSignal): TtrpcError {
  return TtrpcError.from(signal.reason, Code.Canceled);
}
