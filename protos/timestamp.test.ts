import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dateFromTimestamp, google, int64FromBigInt, timestampFromDate } from './index.js';
import { plain } from './testing.js';

test('timestampFromDate splits milliseconds into seconds and nanos', () => {
  assert.deepEqual(plain(timestampFromDate(new Date(1_700_000_000_123))), {
    seconds: 1_700_000_000,
    nanos: 123_000_000,
  });
  assert.deepEqual(plain(timestampFromDate(new Date(0))), { seconds: 0, nanos: 0 });
});

test('dates before 1970 get negative seconds and nanos in [0, 1e9)', () => {
  assert.deepEqual(plain(timestampFromDate(new Date(-1))), { seconds: -1, nanos: 999_000_000 });
  assert.deepEqual(dateFromTimestamp({ seconds: -1, nanos: 999_000_000 }), new Date(-1));
});

test('Date -> Timestamp -> wire -> Timestamp -> Date is exact to the millisecond', () => {
  for (const millis of [0, 1, 999, 1_700_000_000_123, -86_400_001, 8.64e15, -8.64e15]) {
    const bytes = google.protobuf.Timestamp.encode(timestampFromDate(new Date(millis))).finish();
    assert.equal(dateFromTimestamp(google.protobuf.Timestamp.decode(bytes)).getTime(), millis);
  }
});

test('dateFromTimestamp drops sub-millisecond nanos and treats missing fields as 0', () => {
  assert.equal(dateFromTimestamp({ seconds: 1, nanos: 1_999_999 }).getTime(), 1001);
  assert.equal(dateFromTimestamp({}).getTime(), 0);
  assert.equal(dateFromTimestamp({ seconds: int64FromBigInt(2n), nanos: null }).getTime(), 2000);
});

test('invalid input is a RangeError that says what is wrong', () => {
  assert.throws(() => timestampFromDate(new Date(Number.NaN)), /invalid Date/);
  assert.throws(
    () => dateFromTimestamp({ seconds: 1, nanos: 1_000_000_000 }),
    /nanos must be an integer in \[0, 1e9\), got 1000000000/,
  );
  assert.throws(() => dateFromTimestamp({ seconds: 1, nanos: -1 }), RangeError);
  assert.throws(() => dateFromTimestamp({ seconds: 8.64e12 + 1 }), /outside the range of a Date/);
  assert.throws(() => dateFromTimestamp({ seconds: int64FromBigInt(1n << 62n) }), /MAX_SAFE_INTEGER/);
});
