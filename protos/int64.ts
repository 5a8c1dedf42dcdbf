/**
 * 64-bit integers on the wire. protobufjs decodes int64/uint64 fields (cgroup
 * counters, Timestamp.seconds, ttrpc timeout_nano) as long.js `Long` objects,
 * because `long` is installed with protobufjs, and accepts a `number` or a
 * `Long` when encoding. These helpers convert between that and the plain
 * numbers and bigints the rest of tsrun uses, without losing precision silently.
 */
import $protobuf from 'protobufjs/minimal.js';
import type Long from 'long';

/** A 64-bit protobuf field as protobufjs reads or writes it. */
export type Int64 = number | Long;

/** The part of a Long the read helpers need (a long.js Long is one). */
export interface LongBits {
  readonly low: number;
  readonly high: number;
  readonly unsigned: boolean;
}

const MAX_UINT64 = (1n << 64n) - 1n;
const MIN_INT64 = -(1n << 63n);

/**
 * Converts a 64-bit field to a bigint, exactly. A missing field (null or
 * undefined) is 0, as proto3 defines it. An unsigned Long reads as unsigned, a
 * signed one as two's complement.
 *
 * @throws RangeError if `value` is a number that is not an integer.
 */
export function int64ToBigInt(value: number | LongBits | null | undefined): bigint {
  if (value === null || value === undefined) return 0n;
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) throw new RangeError(`64-bit field holds ${value}, which is not an integer`);
    return BigInt(value);
  }
  const bits = (BigInt(value.high >>> 0) << 32n) | BigInt(value.low >>> 0);
  return value.unsigned ? bits : BigInt.asIntN(64, bits);
}

/**
 * Converts a 64-bit field to a number. A missing field is 0.
 *
 * @throws RangeError if the value does not fit a number exactly (beyond
 * ±Number.MAX_SAFE_INTEGER); use {@link int64ToBigInt} for fields such as
 * cgroup memory limits that can be that large.
 */
export function int64ToNumber(value: number | LongBits | null | undefined): number {
  const exact = int64ToBigInt(value);
  if (exact > BigInt(Number.MAX_SAFE_INTEGER) || exact < BigInt(Number.MIN_SAFE_INTEGER)) {
    throw new RangeError(
      `64-bit field holds ${exact}, which is beyond Number.MAX_SAFE_INTEGER; read it with int64ToBigInt`,
    );
  }
  return Number(exact);
}

/**
 * Converts a bigint to what a protobufjs int64/uint64 field accepts: a plain
 * number when it is exact, else a Long (unsigned when `value` is not negative).
 *
 * @throws RangeError if `value` fits neither int64 nor uint64.
 */
export function int64FromBigInt(value: bigint): Int64 {
  if (value > MAX_UINT64 || value < MIN_INT64) {
    throw new RangeError(`${value} does not fit a 64-bit protobuf field (int64 or uint64)`);
  }
  if (value <= BigInt(Number.MAX_SAFE_INTEGER) && value >= BigInt(Number.MIN_SAFE_INTEGER)) return Number(value);
  const bits = BigInt.asUintN(64, value);
  const low = Number(bits & 0xffffffffn) | 0;
  const high = Number(bits >> 32n) | 0;
  return longClass().fromBits(low, high, value >= 0n);
}

// protobufjs loads long.js itself (a dependency of protobufjs, not of tsrun)
// and exposes it as util.Long; its declaration types it as protobufjs's own
// minimal Long interface, so name the real class here.
function longClass(): typeof Long {
  const found = $protobuf.util.Long as unknown as typeof Long | null;
  if (found === null)
    throw new Error('protobufjs found no long.js; reinstall dependencies (npm ci) so 64-bit fields can be encoded');
  return found;
}
