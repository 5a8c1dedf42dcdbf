/**
 * The pure frame decoder: bytes in, frames out. No I/O, no protobuf, no timers.
 *
 * Shaped after connect-es `protocol/envelope.ts` and grpc-js
 * `stream-decoder.ts`: feed it chunks exactly as a socket delivers them, in any
 * sizes, and it yields every complete frame in order. It follows
 * containerd/ttrpc `channel.recv` (channel.go) on what is valid:
 *
 * - Every 10 bytes are a valid header. The type and flags are reported as they
 *   are (the connection decides what an unknown type means), and the reserved
 *   first byte is not checked: it is only non-zero when the length exceeds
 *   16 MiB, and such a frame is oversized anyway.
 * - A frame whose data length exceeds {@link MAX_FRAME_DATA_LENGTH} is never
 *   buffered. It is reported as soon as its header arrives (`oversized`, with
 *   its stream id and length, so the server can answer that stream with
 *   ResourceExhausted) and its data is then skipped as it arrives, so the
 *   connection survives, as Go's `ch.br.Discard` does.
 *
 * So there is no input the decoder rejects, and nothing it throws: random bytes
 * decode to frames, oversized reports, or a partial frame it waits to finish.
 * Protocol errors (stream id rules, undecodable envelopes) belong to the layers
 * above, which know what a stream is.
 */
import { FRAME_HEADER_LENGTH, MAX_FRAME_DATA_LENGTH } from './frame.js';

/** A complete frame. */
export interface Frame {
  readonly kind: 'frame';
  /** The stream the frame belongs to (uint32). */
  readonly streamId: number;
  /** The message type byte (see `MessageType`; other values are possible). */
  readonly type: number;
  /** The flags byte (see `Flag`). */
  readonly flags: number;
  /**
   * The frame data. It may be a view into a chunk passed to `push` (no copy):
   * copy it if you keep it long after decoding.
   */
  readonly data: Uint8Array;
}

/**
 * A frame whose data length exceeded the maximum. Its data is skipped, never
 * buffered; the frames after it decode normally.
 */
export interface OversizedFrame {
  readonly kind: 'oversized';
  readonly streamId: number;
  readonly type: number;
  readonly flags: number;
  /** The data length the header announced. */
  readonly length: number;
}

/** What {@link FrameDecoder.push} yields. */
export type DecodedFrame = Frame | OversizedFrame;

/** Incremental frame decoder; see {@link createFrameDecoder}. */
export interface FrameDecoder {
  /**
   * Decodes as much as `chunk` completes and returns the results in stream
   * order (often empty). Never throws.
   */
  push(chunk: Uint8Array): DecodedFrame[];
  /**
   * Bytes of the frame in progress received so far, header included: a partial
   * header, or the header and received data of an unfinished frame (at most
   * 10 bytes + 4 MiB). Skipped bytes of an oversized frame never count: they
   * are not held.
   */
  readonly bufferedBytes: number;
  /** Bytes of an oversized frame still to be skipped. */
  readonly skippingBytes: number;
  /** True when the decoder sits exactly between frames (nothing partial held or skipped). */
  readonly idle: boolean;
}

/**
 * Creates a frame decoder.
 *
 * @param maxDataLength - the largest data length accepted; defaults to 4 MiB,
 *   ttrpc's limit. Larger frames are reported as `oversized`.
 */
export function createFrameDecoder(maxDataLength: number = MAX_FRAME_DATA_LENGTH): FrameDecoder {
  return new FrameDecoderImpl(maxDataLength);
}

const EMPTY = new Uint8Array(0);

class FrameDecoderImpl implements FrameDecoder {
  readonly #max: number;
  // Decoder state. Exactly one of these is "active":
  // - #headerFilled > 0: a header split across chunks is being collected;
  // - #body !== undefined: the data of a frame split across chunks is being collected;
  // - #skip > 0: the data of an oversized frame is being skipped;
  // - otherwise the decoder is between frames.
  readonly #header = new Uint8Array(FRAME_HEADER_LENGTH);
  #headerFilled = 0;
  #body: Uint8Array | undefined;
  #bodyFilled = 0;
  #bodyStreamId = 0;
  #bodyType = 0;
  #bodyFlags = 0;
  #skip = 0;

  constructor(max: number) {
    this.#max = max;
  }

  get bufferedBytes(): number {
    return this.#body === undefined ? this.#headerFilled : FRAME_HEADER_LENGTH + this.#bodyFilled;
  }

  get skippingBytes(): number {
    return this.#skip;
  }

  get idle(): boolean {
    return this.#headerFilled === 0 && this.#body === undefined && this.#skip === 0;
  }

  push(chunk: Uint8Array): DecodedFrame[] {
    const out: DecodedFrame[] = [];
    const end = chunk.length;
    let offset = 0;
    while (offset < end) {
      if (this.#skip > 0) {
        const n = Math.min(this.#skip, end - offset);
        this.#skip -= n;
        offset += n;
        continue;
      }
      if (this.#body !== undefined) {
        const body = this.#body;
        const n = Math.min(body.length - this.#bodyFilled, end - offset);
        body.set(chunk.subarray(offset, offset + n), this.#bodyFilled);
        this.#bodyFilled += n;
        offset += n;
        if (this.#bodyFilled === body.length) {
          out.push({
            kind: 'frame',
            streamId: this.#bodyStreamId,
            type: this.#bodyType,
            flags: this.#bodyFlags,
            data: body,
          });
          this.#body = undefined;
          this.#bodyFilled = 0;
        }
        continue;
      }

      // Between frames, or inside a split header.
      let h: Uint8Array;
      let at: number;
      if (this.#headerFilled === 0 && end - offset >= FRAME_HEADER_LENGTH) {
        h = chunk; // fast path: the whole header is in this chunk
        at = offset;
        offset += FRAME_HEADER_LENGTH;
      } else {
        const n = Math.min(FRAME_HEADER_LENGTH - this.#headerFilled, end - offset);
        this.#header.set(chunk.subarray(offset, offset + n), this.#headerFilled);
        this.#headerFilled += n;
        offset += n;
        if (this.#headerFilled < FRAME_HEADER_LENGTH) break;
        this.#headerFilled = 0;
        h = this.#header;
        at = 0;
      }
      const length = readUint32(h, at);
      const streamId = readUint32(h, at + 4);
      const type = h[at + 8] ?? 0;
      const flags = h[at + 9] ?? 0;

      if (length > this.#max) {
        out.push({ kind: 'oversized', streamId, type, flags, length });
        this.#skip = length;
      } else if (length === 0) {
        out.push({ kind: 'frame', streamId, type, flags, data: EMPTY });
      } else if (end - offset >= length) {
        // Fast path: the whole frame is in this chunk, hand out a view.
        out.push({ kind: 'frame', streamId, type, flags, data: chunk.subarray(offset, offset + length) });
        offset += length;
      } else {
        // The frame continues in later chunks: collect it into one buffer of
        // exactly its size (bounded by #max, checked above).
        this.#body = Buffer.allocUnsafe(length);
        this.#bodyFilled = 0;
        this.#bodyStreamId = streamId;
        this.#bodyType = type;
        this.#bodyFlags = flags;
      }
    }
    return out;
  }
}

function readUint32(b: Uint8Array, at: number): number {
  return (((b[at] ?? 0) << 24) | ((b[at + 1] ?? 0) << 16) | ((b[at + 2] ?? 0) << 8) | (b[at + 3] ?? 0)) >>> 0;
}
