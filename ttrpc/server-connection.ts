/**
 * One server connection: owns the socket, the frame decoder, the stream-id
 * rules and the in-flight calls, and writes the answers. This is the one place
 * where an error becomes a `google.rpc.Status` (`#answerError`), as `unaryCall`
 * in containerd/ttrpc services.go is for Go.
 *
 * Frame handling follows `serverConn.run` in containerd/ttrpc server.go:
 *
 * | frame                                  | answer                                                      |
 * |----------------------------------------|-------------------------------------------------------------|
 * | oversized (data > 4 MiB)               | ResourceExhausted on its stream id; data skipped            |
 * | even stream id (any type)              | InvalidArgument "StreamID must be odd for client initiated streams" |
 * | Request, id <= last request id         | InvalidArgument "StreamID cannot be re-used and must increment" |
 * | Request, envelope does not decode      | InvalidArgument "unmarshal request error: ..."              |
 * | Request, unknown service / method      | Unimplemented "service X" / "method Y"                      |
 * | Request (any flags)                    | dispatched as a unary call; answered when it completes      |
 * | Data, stream not in flight             | InvalidArgument "StreamID is no longer active"              |
 * | Data, stream in flight (unary)         | dropped: unary streams take no data (PROTOCOL.md "Data")    |
 * | Response, or an unknown type           | ignored, for future compatibility (server.go)               |
 *
 * Calls are served concurrently and answered in completion order.
 */
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { Code } from './code.js';
import { serverConnectionChannel, serverProtocolErrorChannel, serverRequestChannel } from './diagnostics.js';
import type { Dispatcher } from './dispatcher.js';
import { decodeRequest, encodeErrorResponseFrame, encodeOkResponseFrame } from './envelope.js';
import { oversizedMessage, MessageType } from './frame.js';
import { createFrameDecoder, type DecodedFrame } from './frame-decoder.js';
import { metadataFromKeyValues } from './metadata.js';
import { ServerCall } from './server-call.js';
import { TtrpcError } from './ttrpc-error.js';

/**
 * Bytes of answers queued in the socket above which the connection stops
 * reading requests until the peer catches up ('drain'). Without it a peer that
 * sends requests but never reads answers would grow our memory without bound.
 */
const WRITE_BACKLOG_LIMIT = 1 << 20;

/** Connection lifecycle: serving calls, finishing in-flight calls before closing, or closed. */
type ConnectionState = 'open' | 'draining' | 'closed';

/** @internal */
export class ServerConnection {
  readonly socket: Socket;
  /** Resolves once the socket is closed and every call has been cancelled. */
  readonly closed: Promise<void>;

  readonly #dispatcher: Dispatcher;
  readonly #decoder = createFrameDecoder();
  /** Calls whose handler has not finished, by stream id. */
  readonly #calls = new Map<number, ServerCall>();
  #lastRequestId = 0;
  #state: ConnectionState = 'open';
  #corked = false;
  #readPaused = false;
  #resolveClosed!: () => void;

  constructor(socket: Socket, dispatcher: Dispatcher) {
    this.socket = socket;
    this.#dispatcher = dispatcher;
    this.closed = new Promise((resolve) => {
      this.#resolveClosed = resolve;
    });
  }

  /** Starts reading. Call once, after the peer was accepted. */
  start(): void {
    const socket = this.socket;
    socket.on('data', (chunk: Buffer) => {
      this.#onData(chunk);
    });
    // The client went away (Go: io.EOF in the receive loop). In-flight
    // handlers are cancelled; their answers have nowhere to go.
    socket.on('end', () => {
      this.#cancelCalls(new TtrpcError(Code.Canceled, 'ttrpc: the client closed the connection'));
      // Node ends our side itself unless the listener allows half-open sockets.
      socket.end();
    });
    socket.on('drain', () => {
      if (this.#readPaused && this.#state !== 'closed') {
        this.#readPaused = false;
        socket.resume();
      }
    });
    socket.on('close', () => {
      this.#onClose();
    });
    if (serverConnectionChannel.hasSubscribers) serverConnectionChannel.publish({ event: 'open', peer: socket });
    socket.resume();
  }

  /** Graceful close: answer the calls in flight, then close. New requests get Unavailable. */
  drain(): void {
    if (this.#state !== 'open') return;
    this.#state = 'draining';
    this.#closeIfDrained();
  }

  /** Immediate close: cancel every call and destroy the socket. */
  destroy(reason: TtrpcError): void {
    this.#cancelCalls(reason);
    this.socket.destroy();
  }

  #onData(chunk: Buffer): void {
    let results: DecodedFrame[];
    try {
      results = this.#decoder.push(chunk);
      for (const result of results) this.#onFrame(result);
    } catch (error) {
      this.#internalError(error);
    }
  }

  /**
   * Nothing in the frame and answer paths throws by design. If something ever
   * does, losing this one connection beats an uncaught exception taking the
   * whole process (and every other task) down.
   */
  #internalError(error: unknown): void {
    this.#protocolError(0, 0, `ttrpc: internal error, connection dropped: ${String(error)}`, false);
    this.destroy(TtrpcError.from(error, Code.Internal));
  }

  #onFrame(frame: DecodedFrame): void {
    const { streamId, type } = frame;
    if (frame.kind === 'oversized') {
      this.#reject(streamId, type, new TtrpcError(Code.ResourceExhausted, oversizedMessage(frame.length)));
      return;
    }
    if (streamId % 2 !== 1) {
      this.#reject(
        streamId,
        type,
        new TtrpcError(Code.InvalidArgument, 'StreamID must be odd for client initiated streams'),
      );
      return;
    }
    switch (type) {
      case MessageType.Request:
        this.#onRequest(streamId, frame.data);
        return;
      case MessageType.Data:
        if (this.#calls.has(streamId)) {
          this.#protocolError(streamId, type, 'data frame on a unary stream dropped', false);
        } else {
          this.#reject(streamId, type, new TtrpcError(Code.InvalidArgument, 'StreamID is no longer active'));
        }
        return;
      default:
        this.#protocolError(streamId, type, `frame of type ${type} ignored`, false);
        return;
    }
  }

  #onRequest(streamId: number, data: Uint8Array): void {
    if (streamId <= this.#lastRequestId) {
      this.#reject(
        streamId,
        MessageType.Request,
        new TtrpcError(Code.InvalidArgument, 'StreamID cannot be re-used and must increment'),
      );
      return;
    }
    this.#lastRequestId = streamId;
    if (this.#state !== 'open') {
      this.#reject(streamId, MessageType.Request, new TtrpcError(Code.Unavailable, 'ttrpc: server is shutting down'));
      return;
    }
    const startedAt = performance.now();
    let request;
    let method;
    try {
      request = decodeRequest(data);
      method = this.#dispatcher.lookup(request.service, request.method);
    } catch (error) {
      this.#reject(streamId, MessageType.Request, error, request?.service, request?.method, startedAt);
      return;
    }
    const call = new ServerCall({
      service: request.service,
      method: request.method,
      streamId,
      // Go: context.WithTimeout(ctx, time.Duration(TimeoutNano)) when non-zero.
      deadline: request.timeoutNano === 0 ? undefined : Date.now() + request.timeoutNano / 1e6,
      metadata: metadataFromKeyValues(request.metadata),
      peer: this.socket,
      startedAt,
    });
    this.#calls.set(streamId, call);
    this.#dispatcher
      .invoke(method, request.payload, call)
      .then(
        (payload) => {
          this.#finishCall(call);
          this.#answerOk(call, payload);
        },
        (error: unknown) => {
          this.#finishCall(call);
          this.#answerError(streamId, error, call);
        },
      )
      .catch((error: unknown) => {
        this.#internalError(error);
      });
  }

  #finishCall(call: ServerCall): void {
    call.finish();
    this.#calls.delete(call.streamId);
  }

  #answerOk(call: ServerCall, payload: Uint8Array): void {
    let frame: Buffer;
    try {
      frame = encodeOkResponseFrame(call.streamId, payload);
    } catch (error) {
      // The answer exceeds 4 MiB: say so on the stream instead of dropping the
      // connection (Go's send fails and closes it).
      this.#answerError(call.streamId, error, call);
      return;
    }
    this.#send(frame);
    if (serverRequestChannel.hasSubscribers) {
      serverRequestChannel.publish({
        service: call.service,
        method: call.method,
        streamId: call.streamId,
        durationMs: performance.now() - call.startedAt,
        code: Code.OK,
        error: undefined,
        peer: this.socket,
      });
    }
    this.#closeIfDrained();
  }

  /**
   * The one place where an error becomes a status: anything thrown is
   * normalised by TtrpcError.from (unknown errors: Unknown, message only, never
   * the stack) and sent as the Response of `streamId`.
   */
  #answerError(
    streamId: number,
    thrown: unknown,
    call?: ServerCall,
    service?: string,
    method?: string,
    startedAt?: number,
  ): void {
    const error = TtrpcError.from(thrown);
    this.#send(
      encodeErrorResponseFrame(streamId, { code: error.code, message: error.message, details: error.details }),
    );
    if (serverRequestChannel.hasSubscribers && (call !== undefined || service !== undefined)) {
      serverRequestChannel.publish({
        service: call?.service ?? service ?? '',
        method: call?.method ?? method ?? '',
        streamId,
        durationMs: performance.now() - (call?.startedAt ?? startedAt ?? performance.now()),
        code: error.code,
        error,
        peer: this.socket,
      });
    }
    this.#closeIfDrained();
  }

  /** Answers a frame that could not become a call, and reports it. */
  #reject(
    streamId: number,
    type: number,
    thrown: unknown,
    service?: string,
    method?: string,
    startedAt?: number,
  ): void {
    this.#answerError(streamId, thrown, undefined, service, method, startedAt);
    if (serverProtocolErrorChannel.hasSubscribers) {
      this.#protocolError(streamId, type, TtrpcError.from(thrown).message, true);
    }
  }

  #protocolError(streamId: number, type: number, message: string, answered: boolean): void {
    if (serverProtocolErrorChannel.hasSubscribers) {
      serverProtocolErrorChannel.publish({ streamId, type, message, answered, peer: this.socket });
    }
  }

  /**
   * Queues a frame. Frames written in the same tick go out in one writev: the
   * socket is corked on the first and uncorked on the next tick. A closed
   * socket drops the frame silently (the peer is gone; nobody is waiting).
   */
  #send(frame: Buffer): void {
    const socket = this.socket;
    if (socket.destroyed || !socket.writable) return;
    if (!this.#corked) {
      this.#corked = true;
      socket.cork();
      process.nextTick(this.#uncork);
    }
    socket.write(frame);
    if (socket.writableLength > WRITE_BACKLOG_LIMIT && !this.#readPaused) {
      this.#readPaused = true;
      socket.pause();
    }
  }

  readonly #uncork = (): void => {
    this.#corked = false;
    this.socket.uncork();
  };

  #closeIfDrained(): void {
    if (this.#state !== 'draining' || this.#calls.size > 0) return;
    this.#state = 'closed';
    const socket = this.socket;
    // end() flushes the queued answers, then destroy() closes the fd even if
    // the peer never closes its side.
    if (socket.destroyed) return;
    socket.end(() => {
      socket.destroy();
    });
  }

  #cancelCalls(reason: TtrpcError): void {
    for (const call of this.#calls.values()) call.cancel(reason);
  }

  #onClose(): void {
    this.#state = 'closed';
    this.#cancelCalls(new TtrpcError(Code.Canceled, 'ttrpc: connection closed'));
    if (serverConnectionChannel.hasSubscribers) serverConnectionChannel.publish({ event: 'close', peer: this.socket });
    this.#resolveClosed();
  }
}
