import { test } from 'node:test';
import assert from 'node:assert/strict';
import { int64FromBigInt, int64ToBigInt, int64ToNumber, io } from './index.js';

const roundTrip = (value: bigint): bigint => {
  const bytes = io.containerd.cgroups.v2.PidsStat.encode({ limit: int64FromBigInt(value) }).finish();
  return int64ToBigInt(io.containerd.cgroups.v2.PidsStat.decode(bytes).limit);
};

test('uint64 values survive the wire exactly, small and beyond 2^53', () => {
  for (const value of [1n, 4096n, 2n ** 53n - 1n, 2n ** 53n + 1n, 9223372036854771712n, 2n ** 64n - 1n]) {
    assert.equal(roundTrip(value), value);
  }
});

test('int64FromBigInt gives a plain number while exact, a Long beyond', () => {
  assert.equal(int64FromBigInt(42n), 42);
  assert.equal(int64FromBigInt(-42n), -42);
  const big = int64FromBigInt(2n ** 63n);
  assert.equal(typeof big, 'object');
  assert.equal(int64ToBigInt(big), 2n ** 63n);
  assert.equal(int64ToBigInt(int64FromBigInt(-(2n ** 63n))), -(2n ** 63n));
});

test('int64FromBigInt refuses what fits neither int64 nor uint64', () => {
  assert.throws(() => int64FromBigInt(2n ** 64n), /does not fit a 64-bit protobuf field/);
  assert.throws(() => int64FromBigInt(-(2n ** 63n) - 1n), RangeError);
});

test("int64ToBigInt reads missing fields as 0 and signed Longs as two's complement", () => {
  assert.equal(int64ToBigInt(null), 0n);
  assert.equal(int64ToBigInt(undefined), 0n);
  assert.equal(int64ToBigInt({ low: -1, high: -1, unsigned: false }), -1n);
  assert.equal(int64ToBigInt({ low: -1, high: -1, unsigned: true }), 2n ** 64n - 1n);
  assert.throws(() => int64ToBigInt(1.5), /not an integer/);
});

test('int64ToNumber is exact or throws', () => {
  assert.equal(int64ToNumber({ low: 5, high: 0, unsigned: true }), 5);
  assert.equal(int64ToNumber(Number.MAX_SAFE_INTEGER), Number.MAX_SAFE_INTEGER);
  assert.throws(
    () => int64ToNumber({ low: 0, high: 0x200000, unsigned: true }),
    /beyond Number.MAX_SAFE_INTEGER; read it with int64ToBigInt/,
  );
});
