/**
 * google.protobuf.Timestamp <-> Date. containerd stamps exits (exited_at) and
 * event envelopes with Timestamps; tsrun's core speaks Dates.
 */
import { google } from './gen/containerd.js';
import { int64ToNumber } from './int64.js';

const NANOS_PER_MILLI = 1_000_000;
const NANOS_PER_SECOND = 1_000_000_000;

/**
 * Converts a Date to a Timestamp with nanos in [0, 1e9), as the proto requires
 * (a Date before 1970 gets negative seconds and positive nanos).
 *
 * @throws RangeError if `date` is an invalid Date.
 */
export function timestampFromDate(date: Date): google.protobuf.Timestamp {
  const millis = date.getTime();
  if (Number.isNaN(millis)) throw new RangeError('cannot convert an invalid Date to a protobuf Timestamp');
  const seconds = Math.floor(millis / 1000);
  return google.protobuf.Timestamp.create({ seconds, nanos: (millis - seconds * 1000) * NANOS_PER_MILLI });
}

/**
 * Converts a Timestamp to a Date; missing fields count as 0 (the epoch).
 * Dates hold milliseconds, so nanoseconds below a millisecond are dropped
 * (rounded toward the past).
 *
 * @throws RangeError if nanos is outside [0, 1e9) or seconds do not fit a Date.
 */
export function dateFromTimestamp(timestamp: google.protobuf.Timestamp.$Properties): Date {
  const seconds = int64ToNumber(timestamp.seconds);
  const nanos = timestamp.nanos ?? 0;
  if (!Number.isInteger(nanos) || nanos < 0 || nanos >= NANOS_PER_SECOND) {
    throw new RangeError(`Timestamp nanos must be an integer in [0, 1e9), got ${nanos}`);
  }
  const date = new Date(seconds * 1000 + Math.floor(nanos / NANOS_PER_MILLI));
  if (Number.isNaN(date.getTime()))
    throw new RangeError(`Timestamp of ${seconds} seconds is outside the range of a Date`);
  return date;
}
