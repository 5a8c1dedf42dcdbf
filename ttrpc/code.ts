/**
 * Status codes of a ttrpc call: the gRPC code set, which ttrpc carries in
 * `google.rpc.Status.code` (containerd/ttrpc request.proto; grpc/codes). The
 * names are gRPC's own, so an error reads the same in Go and in TypeScript.
 *
 * @example
 * ```ts
 * throw new TtrpcError(Code.NotFound, 'container "web" does not exist');
 * ```
 */
export const Code = {
  /** Not an error; returned on success. */
  OK: 0,
  /** The operation was cancelled, typically by the caller. */
  Canceled: 1,
  /** An error with no better code; also what unknown errors become. */
  Unknown: 2,
  /** The client specified an invalid argument. */
  InvalidArgument: 3,
  /** The deadline expired before the operation could complete. */
  DeadlineExceeded: 4,
  /** Some requested entity was not found. */
  NotFound: 5,
  /** The entity that a client attempted to create already exists. */
  AlreadyExists: 6,
  /** The caller does not have permission to execute the operation. */
  PermissionDenied: 7,
  /** Some resource has been exhausted, e.g. a message over 4 MiB. */
  ResourceExhausted: 8,
  /** The system is not in a state required for the operation. */
  FailedPrecondition: 9,
  /** The operation was aborted, typically due to a concurrency issue. */
  Aborted: 10,
  /** The operation was attempted past the valid range. */
  OutOfRange: 11,
  /** The operation is not implemented or not supported. */
  Unimplemented: 12,
  /** An invariant of the underlying system was broken. */
  Internal: 13,
  /** The service is currently unavailable; retrying (maybe after reconnecting) may succeed. */
  Unavailable: 14,
  /** Unrecoverable data loss or corruption. */
  DataLoss: 15,
  /** The request does not have valid authentication credentials. */
  Unauthenticated: 16,
} as const;

/** One of the {@link Code} values (a number from 0 to 16). */
export type Code = (typeof Code)[keyof typeof Code];

const names: readonly string[] = Object.keys(Code);

/**
 * The gRPC name of a code, e.g. `codeName(Code.NotFound) === 'NotFound'`.
 * Never throws; a number outside the code set gives `'Code(<n>)'`.
 */
export function codeName(code: number): string {
  return names[code] ?? `Code(${code})`;
}

/**
 * Narrows a number received from the wire to a {@link Code}. Codes outside the
 * gRPC set become {@link Code.Unknown}, as grpc-go does for unknown codes.
 */
export function toCode(value: number): Code {
  return Number.isInteger(value) && value >= 0 && value <= 16 ? (value as Code) : Code.Unknown;
}
