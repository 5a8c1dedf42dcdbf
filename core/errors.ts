/**
 * The runtime core's one error class. Every method of the {@link Runtime} rejects with
 * a {@link RuntimeError}; shim/ converts its `code` to a ttrpc status once, at the
 * server edge (DESIGN.md section 3, "One error vocabulary").
 *
 * Native errors keep Node's errno shape (`code`, `errno`, `syscall`); this module is
 * where core/ decides what an errno means for a user.
 */
import type { ErrorCode } from './api.js';

/** An error with a stable gRPC-style code and a message that is a whole sentence. */
export class RuntimeError extends Error {
  override readonly name = 'RuntimeError';
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    Object.setPrototypeOf(this, new.target.prototype);
  }

  /**
   * Normalises anything caught into a RuntimeError: a RuntimeError is returned as is,
   * an Error keeps its message (and becomes the cause), anything else is stringified.
   */
  static from(reason: unknown, code: ErrorCode = 'Unknown'): RuntimeError {
    if (reason instanceof RuntimeError) return reason;
    if (reason instanceof Error) return new RuntimeError(code, reason.message, { cause: reason });
    return new RuntimeError(code, String(reason), { cause: reason });
  }
}

/** NotFound: the named container or process does not exist (or has already finished). */
export function notFound(message: string, cause?: unknown): RuntimeError {
  return new RuntimeError('NotFound', message, cause === undefined ? undefined : { cause });
}

/** AlreadyExists: a container or exec id is taken. */
export function alreadyExists(message: string, cause?: unknown): RuntimeError {
  return new RuntimeError('AlreadyExists', message, cause === undefined ? undefined : { cause });
}

/** FailedPrecondition: the call is valid but not in the current state. */
export function failedPrecondition(message: string, cause?: unknown): RuntimeError {
  return new RuntimeError('FailedPrecondition', message, cause === undefined ? undefined : { cause });
}

/** InvalidArgument: the request itself is malformed (bad id, missing bundle, bad spec). */
export function invalidArgument(message: string, cause?: unknown): RuntimeError {
  return new RuntimeError('InvalidArgument', message, cause === undefined ? undefined : { cause });
}

/** Unimplemented: the runtime does not support this call. */
export function unimplemented(message: string, cause?: unknown): RuntimeError {
  return new RuntimeError('Unimplemented', message, cause === undefined ? undefined : { cause });
}

/** Unknown: an unexpected failure; the message says what failed. */
export function unknown(message: string, cause?: unknown): RuntimeError {
  return new RuntimeError('Unknown', message, cause === undefined ? undefined : { cause });
}

/** True when `err` is a native or Node error with the given errno name (e.g. `ESRCH`). */
export function hasErrno(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && 'code' in err && err.code === code;
}

/** The message of anything thrown, for wrapping into a sentence. */
export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
