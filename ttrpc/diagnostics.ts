/**
 * node:diagnostics_channel channels published by ttrpc-ts, after undici's
 * `lib/core/diagnostics.js`. Publishing is guarded by `hasSubscribers`, so a
 * channel nobody listens to costs one property read per event.
 *
 * @example
 * ```ts
 * import { subscribe } from 'node:diagnostics_channel';
 * subscribe('ttrpc:server:request', (m) => log.debug(m as ServerRequestMessage));
 * ```
 */
import { channel } from 'node:diagnostics_channel';
import type { Socket } from 'node:net';
import type { Code } from './code.js';
import type { TtrpcError } from './ttrpc-error.js';

/** Channel names, stable across versions. */
export const DiagnosticsChannel = {
  /** A server answered a call: {@link ServerRequestMessage}. */
  ServerRequest: 'ttrpc:server:request',
  /** A server connection opened, closed, or was refused by `checkPeer`: {@link ServerConnectionMessage}. */
  ServerConnection: 'ttrpc:server:connection',
  /** A server's listener failed, e.g. accept hit EMFILE: {@link ServerErrorMessage}. */
  ServerError: 'ttrpc:server:error',
  /** A server received something it could not serve as a call: {@link ProtocolErrorMessage}. */
  ServerProtocolError: 'ttrpc:server:protocol-error',
  /** A client call settled: {@link ClientRequestMessage}. */
  ClientRequest: 'ttrpc:client:request',
  /** A client received something that matches no pending call: {@link ProtocolErrorMessage}. */
  ClientProtocolError: 'ttrpc:client:protocol-error',
} as const;

/** Published on `ttrpc:server:request` once a call's answer is written (or dropped). */
export interface ServerRequestMessage {
  readonly service: string;
  readonly method: string;
  readonly streamId: number;
  /** Milliseconds from the request frame's arrival to its answer. */
  readonly durationMs: number;
  /** The answer's status code. */
  readonly code: Code;
  /** The error, when the code is not OK; its `cause` holds what the handler threw. */
  readonly error: TtrpcError | undefined;
  readonly peer: Socket;
}

/** Published on `ttrpc:server:connection`. */
export interface ServerConnectionMessage {
  readonly event: 'open' | 'close' | 'refused';
  readonly peer: Socket;
  /** Why `checkPeer` refused the peer (`refused` only). */
  readonly error?: unknown;
}

/** Published on `ttrpc:server:error`. Node keeps accepting after such an error. */
export interface ServerErrorMessage {
  readonly error: Error;
}

/** Published on `ttrpc:server:protocol-error` and `ttrpc:client:protocol-error`. */
export interface ProtocolErrorMessage {
  readonly streamId: number;
  /** The message type byte of the offending frame. */
  readonly type: number;
  /** What was wrong, in words. */
  readonly message: string;
  /** True when the peer was sent an error status for it, false when it was dropped. */
  readonly answered: boolean;
  readonly peer: Socket;
}

/** Published on `ttrpc:client:request` when a call settles. */
export interface ClientRequestMessage {
  readonly service: string;
  readonly method: string;
  readonly streamId: number;
  readonly durationMs: number;
  readonly code: Code;
  readonly error: TtrpcError | undefined;
}

/** @internal */
export const serverRequestChannel = channel(DiagnosticsChannel.ServerRequest);
/** @internal */
export const serverConnectionChannel = channel(DiagnosticsChannel.ServerConnection);
/** @internal */
export const serverErrorChannel = channel(DiagnosticsChannel.ServerError);
/** @internal */
export const serverProtocolErrorChannel = channel(DiagnosticsChannel.ServerProtocolError);
/** @internal */
export const clientRequestChannel = channel(DiagnosticsChannel.ClientRequest);
/** @internal */
export const clientProtocolErrorChannel = channel(DiagnosticsChannel.ClientProtocolError);
