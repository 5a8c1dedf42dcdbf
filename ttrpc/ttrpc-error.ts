import { inspect } from 'node:util';
import { Code } from './code.js';

/**
 * One `google.protobuf.Any` carried in `google.rpc.Status.details`: a type URL
 * and the serialized message. ttrpc-ts passes details through untouched.
 */
export interface StatusDetail {
  /** The type URL, e.g. `type.googleapis.com/google.rpc.ErrorInfo`. */
  readonly typeUrl: string;
  /** The serialized message. */
  readonly value: Uint8Array;
}

/** Options of the {@link TtrpcError} constructor. */
export interface TtrpcErrorOptions {
  /** The original error. Kept on this process for logs; never sent on the wire. */
  readonly cause?: unknown;
  /** Status details, sent as `google.rpc.Status.details`. */
  readonly details?: readonly StatusDetail[];
}

/**
 * The one error type of ttrpc-ts: a status code, a message, optional status
 * details, and a local `cause`.
 *
 * A server handler throws it to choose the status of its answer (anything else
 * it throws goes through {@link TtrpcError.from}); a client call rejects with it
 * when the answer's status is not OK. Only `code`, `message` and `details` cross
 * the wire; `cause` and the stack stay in the process that created the error.
 */
export class TtrpcError extends Error {
  override name = 'TtrpcError';
  /** The status code. */
  readonly code: Code;
  /** Status details (empty unless the thrower or the peer set some). */
  readonly details: readonly StatusDetail[];

  /**
   * @param code - the status code; {@link Code.OK} is not an error and is
   *   replaced by {@link Code.Unknown}.
   * @param message - the status message, sent as is; say what failed and what to do.
   */
  constructor(code: Code, message: string, options: TtrpcErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code === Code.OK ? Code.Unknown : code;
    this.details = options.details ?? [];
  }

  /**
   * Normalises anything caught into a TtrpcError, the way containerd/ttrpc's
   * `convertCode` (services.go) does for Go errors:
   *
   * - a TtrpcError is returned as is;
   * - an `AbortError` becomes {@link Code.Canceled}, a `TimeoutError`
   *   {@link Code.DeadlineExceeded};
   * - a Node system error keeps a code where Go's `os.IsExist`, `os.IsNotExist`
   *   and `os.IsPermission` would: `EEXIST`/`ENOTEMPTY` -> AlreadyExists,
   *   `ENOENT` -> NotFound, `EACCES`/`EPERM` -> PermissionDenied;
   * - anything else becomes `code` (default {@link Code.Unknown}) with the
   *   message only: never the stack. The original is kept as `cause`.
   *
   * Never throws.
   */
  static from(reason: unknown, code: Code = Code.Unknown): TtrpcError {
    if (reason instanceof TtrpcError) return reason;
    const message = messageOf(reason);
    return new TtrpcError(codeOf(reason) ?? code, message, { cause: reason });
  }
}

/**
 * The connection under a client is gone: closed by either side, reset, or never
 * established. Like Go's `ttrpc.ErrClosed`, it means "reconnect and retry if the
 * call is safe to repeat". Every call pending on that connection, and every
 * later call on the same client, rejects with it. Its code is
 * {@link Code.Unavailable}.
 */
export class ConnectionClosedError extends TtrpcError {
  override name = 'ConnectionClosedError';
  /** Always true: lets a caller test `err.closed` without `instanceof`. */
  readonly closed = true;

  /** @param message - what happened, e.g. `ttrpc: connection closed: read ECONNRESET`. */
  constructor(message: string, options: { readonly cause?: unknown } = {}) {
    super(Code.Unavailable, message, options);
  }
}

/** True when `error` is a {@link ConnectionClosedError} (from any copy of this package). */
export function isConnectionClosed(error: unknown): error is ConnectionClosedError {
  return (
    error instanceof ConnectionClosedError ||
    (error instanceof TtrpcError && (error as { closed?: unknown }).closed === true)
  );
}

function codeOf(reason: unknown): Code | undefined {
  if (typeof reason !== 'object' || reason === null) return undefined;
  const { name, code } = reason as { name?: unknown; code?: unknown };
  if (name === 'AbortError') return Code.Canceled;
  if (name === 'TimeoutError') return Code.DeadlineExceeded;
  switch (code) {
    case 'EEXIST':
    case 'ENOTEMPTY':
      return Code.AlreadyExists;
    case 'ENOENT':
      return Code.NotFound;
    case 'EACCES':
    case 'EPERM':
      return Code.PermissionDenied;
    default:
      return undefined;
  }
}

function messageOf(reason: unknown): string {
  if (typeof reason === 'string') return reason;
  if (reason instanceof Error) return reason.message === '' ? reason.name : reason.message;
  if (typeof reason === 'object' && reason !== null) {
    const { message } = reason as { message?: unknown };
    if (typeof message === 'string' && message !== '') return message;
  }
  // A thrown non-Error (a number, a plain object): describe it briefly rather
  // than send "[object Object]"; cap it so a huge object cannot bloat a status.
  const described = inspect(reason, { depth: 1, breakLength: Infinity });
  return `non-error value thrown: ${described.length > 200 ? `${described.slice(0, 200)}...` : described}`;
}
