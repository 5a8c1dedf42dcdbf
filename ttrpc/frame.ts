/**
 * The ttrpc message frame (containerd/ttrpc PROTOCOL.md "Message Frame",
 * channel.go): a 10-byte big-endian header, then the data.
 *
 * ```
 * +----------------+----------------+------------+-----------+------------+
 * | length (u32)   | stream id (u32)| type (u8)  | flags (u8)| data       |
 * +----------------+----------------+------------+-----------+------------+
 * ```
 *
 * Pure functions only: no I/O. The decoder is in frame-decoder.ts.
 */
import { Code } from './code.js';
import { TtrpcError } from './ttrpc-error.js';

/** Bytes in a frame header. */
export const FRAME_HEADER_LENGTH = 10;

/**
 * Largest data length of one frame: 4 MiB (channel.go `messageLengthMax`).
 * Larger frames are refused by the sender and skipped by the receiver.
 */
export const MAX_FRAME_DATA_LENGTH = 4 << 20;

/** Message types of PROTOCOL.md "Message Types". Other values are reserved. */
export const MessageType = {
  /** Initiates a stream (for unary calls: the whole request). */
  Request: 0x1,
  /** Final stream data; terminates the stream. */
  Response: 0x2,
  /** Stream data on an already initiated stream. */
  Data: 0x3,
} as const;

/** One of the {@link MessageType} values. */
export type MessageType = (typeof MessageType)[keyof typeof MessageType];

/**
 * Frame flags (channel.go). Their meaning depends on the message type: on a
 * Request, `RemoteClosed`/`RemoteOpen` mark a non-unary call (no flags: unary);
 * on Data, `RemoteClosed` ends the sender's side and `NoData` marks a frame
 * that carries no message (as opposed to an empty one). Responses carry none.
 */
export const Flag = {
  /** The sender will send no more data on this stream. */
  RemoteClosed: 0x1,
  /** The sender is still sending data (Request only). */
  RemoteOpen: 0x2,
  /** This Data frame carries no message (Data only). */
  NoData: 0x4,
} as const;

/** The message a receiver answers an oversized frame with, and a sender refuses one with (channel.go, errors.go). */
export function oversizedMessage(length: number): string {
  return `message length ${length} exceed maximum message size of ${MAX_FRAME_DATA_LENGTH}`;
}

/**
 * Encodes one frame into a single buffer: header and data together, so the
 * socket sees one write.
 *
 * @param streamId - a uint32; client-initiated streams are odd.
 * @param type - a {@link MessageType} (any uint8 is written as is).
 * @param flags - a uint8 of {@link Flag} bits.
 * @throws TtrpcError {@link Code.ResourceExhausted} when `data` is longer than
 *   {@link MAX_FRAME_DATA_LENGTH}; nothing is encoded then.
 */
export function encodeFrame(streamId: number, type: number, flags: number, data: Uint8Array): Buffer {
  if (data.length > MAX_FRAME_DATA_LENGTH) throw new TtrpcError(Code.ResourceExhausted, oversizedMessage(data.length));
  const frame = Buffer.allocUnsafe(FRAME_HEADER_LENGTH + data.length);
  writeFrameHeader(frame, data.length, streamId, type, flags);
  frame.set(data, FRAME_HEADER_LENGTH);
  return frame;
}

/**
 * Writes a frame header into the first 10 bytes of `target`. Does not check
 * the length against the maximum: {@link encodeFrame} does.
 */
export function writeFrameHeader(
  target: Uint8Array,
  length: number,
  streamId: number,
  type: number,
  flags: number,
): void {
  target[0] = length >>> 24;
  target[1] = length >>> 16;
  target[2] = length >>> 8;
  target[3] = length;
  target[4] = streamId >>> 24;
  target[5] = streamId >>> 16;
  target[6] = streamId >>> 8;
  target[7] = streamId;
  target[8] = type;
  target[9] = flags;
}
