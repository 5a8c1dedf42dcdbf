/**
 * Test support for the protos tests (not part of the public entry point):
 * round-trip assertions over generated protobufjs message classes.
 *
 * @internal
 */
import assert from 'node:assert/strict';
import { int64ToBigInt } from './int64.js';

/** The part of a generated message class a round trip needs. */
export interface MessageCodec<P, M> {
  encode(message: P): { finish(): Uint8Array };
  decode(bytes: Uint8Array): M;
}

/** Lowercase hex of some bytes, for readable wire assertions. */
export function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}

/** Bytes from a hex string written with optional spaces, e.g. `'0a 01 63'`. */
export function fromHex(text: string): Uint8Array {
  return new Uint8Array(Buffer.from(text.replaceAll(' ', ''), 'hex'));
}

/**
 * Encodes `input`, decodes the bytes, and asserts that:
 * - the decoded message equals the input (field by field, see {@link plain});
 * - re-encoding the decoded message gives the same bytes;
 * - every field of every decoded message, nested ones included, holds a
 *   non-default value, so a fixture cannot silently skip a field.
 */
export function assertRoundTrip<P, M>(type: MessageCodec<P, M>, input: P): void {
  const bytes = type.encode(input).finish();
  const decoded = type.decode(bytes);
  assert.deepStrictEqual(plain(decoded), plain(input));
  assert.equal(
    hex(type.encode(decoded as unknown as P).finish()),
    hex(bytes),
    're-encoding the decoded message changed its bytes',
  );
  assertEveryFieldSet(decoded, '$');
}

/**
 * A decoded or hand-built message as plain data: own enumerable fields only
 * (protobufjs keeps defaults on the prototype), 64-bit Longs as numbers when
 * exact and bigints otherwise, bytes as `0x`-prefixed hex.
 */
export function plain(value: unknown): unknown {
  if (value instanceof Uint8Array) return `0x${hex(value)}`;
  if (Array.isArray(value)) return value.map(plain);
  if (isLong(value)) {
    const exact = int64ToBigInt(value);
    return Number.isSafeInteger(Number(exact)) ? Number(exact) : exact;
  }
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([key, field]) => [key, plain(field)]));
  }
  return value;
}

function isLong(value: unknown): value is { low: number; high: number; unsigned: boolean } {
  return typeof value === 'object' && value !== null && 'low' in value && 'high' in value && 'unsigned' in value;
}

function assertEveryFieldSet(value: unknown, path: string): void {
  if (typeof value !== 'object' || value === null || value instanceof Uint8Array || isLong(value)) return;
  if (Array.isArray(value)) {
    value.forEach((item, index) => {
      assertEveryFieldSet(item, `${path}[${index}]`);
    });
    return;
  }
  const prototype: unknown = Object.getPrototypeOf(value);
  if (prototype !== Object.prototype && typeof prototype === 'object' && prototype !== null) {
    // Generated classes declare each field on the prototype with its default.
    const missing = Object.keys(prototype).filter((field) => !Object.hasOwn(value, field));
    assert.deepEqual(
      missing,
      [],
      `${path} (${value.constructor.name}) decoded with default values for: ${missing.join(', ')}`,
    );
  }
  for (const [key, field] of Object.entries(value)) assertEveryFieldSet(field, `${path}.${key}`);
}

/**
 * Distinct non-zero counters for the named uint64 fields, starting at `start`:
 * fixtures for the cgroup stats messages, whose fields are mostly counters.
 */
export function counters<K extends string>(names: readonly K[], start: number): Record<K, number> {
  return Object.fromEntries(names.map((name, index) => [name, start + index])) as Record<K, number>;
}
