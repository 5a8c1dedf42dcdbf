import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import fc from 'fast-check';
import { Code } from './code.js';
import { encodeFrame, FRAME_HEADER_LENGTH, MAX_FRAME_DATA_LENGTH, writeFrameHeader } from './frame.js';
import { createFrameDecoder, type DecodedFrame } from './frame-decoder.js';
import { TtrpcError } from './ttrpc-error.js';

interface PlainFrame {
  streamId: number;
  type: number;
  flags: number;
  data: Uint8Array;
}

const frameArb: fc.Arbitrary<PlainFrame> = fc.record({
  streamId: fc.nat({ max: 0xffff_ffff }),
  type: fc.nat({ max: 255 }),
  flags: fc.nat({ max: 255 }),
  data: fc.oneof(
    { weight: 8, arbitrary: fc.uint8Array({ maxLength: 64 }) },
    { weight: 2, arbitrary: fc.uint8Array({ minLength: 1000, maxLength: 20_000 }) },
  ),
});

/** Splits `bytes` at the given cut points (fractions of its length). */
function chunk(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => Math.floor(c * bytes.length)))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let at = 0;
  for (const p of points) {
    if (p > at) out.push(bytes.subarray(at, p));
    at = Math.max(at, p);
  }
  out.push(bytes.subarray(at));
  return out;
}

function concat(parts: Uint8Array[]): Uint8Array {
  return Buffer.concat(parts);
}

function plain(results: DecodedFrame[]): PlainFrame[] {
  return results.map((r) => {
    assert.equal(r.kind, 'frame');
    return { streamId: r.streamId, type: r.type, flags: r.flags, data: Uint8Array.from(r.data) };
  });
}

test('any chunking of a stream of valid frames decodes to the same frames', () => {
  fc.assert(
    fc.property(
      fc.array(frameArb, { maxLength: 20 }),
      fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 40 }),
      (frames, cuts) => {
        const stream = concat(frames.map((f) => encodeFrame(f.streamId, f.type, f.flags, f.data)));
        const decoder = createFrameDecoder();
        const decoded = chunk(stream, cuts).flatMap((c) => decoder.push(c));
        assert.deepEqual(
          plain(decoded),
          frames.map((f) => ({ ...f, data: Uint8Array.from(f.data) })),
        );
        assert.equal(decoder.idle, true);
        assert.equal(decoder.bufferedBytes, 0);
      },
    ),
    { numRuns: 300 },
  );
});

test('a stream fed one byte at a time decodes like a stream fed at once', () => {
  const frames = [
    encodeFrame(1, 1, 0, new Uint8Array([1, 2, 3])),
    encodeFrame(3, 2, 4, new Uint8Array(0)),
    encodeFrame(5, 3, 1, new Uint8Array(300).fill(7)),
  ];
  const stream = concat(frames);
  const whole = createFrameDecoder().push(stream);
  const decoder = createFrameDecoder();
  const bytewise: DecodedFrame[] = [];
  for (let i = 0; i < stream.length; i++) bytewise.push(...decoder.push(stream.subarray(i, i + 1)));
  assert.deepEqual(plain(bytewise), plain(whole));
  assert.equal(whole.length, 3);
});

test('random bytes never throw out of the decoder, and every byte is accounted for', () => {
  // Per containerd/ttrpc channel.go every 10 bytes are a valid header, so the
  // decoder has no error result: garbage decodes to frames, oversized reports
  // (skipped, not buffered) or a partial frame it waits to finish. The
  // invariant: consumed + held == fed, and nothing beyond 4 MiB is held.
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ maxLength: 3000 }), { maxLength: 20 }), (chunks) => {
      const decoder = createFrameDecoder();
      let fed = 0;
      let consumed = 0;
      let skippedTotal = 0;
      for (const c of chunks) {
        fed += c.length;
        const before = decoder.skippingBytes;
        const results = decoder.push(c);
        let announced = 0;
        for (const r of results) {
          if (r.kind === 'frame') {
            assert.ok(r.data.length <= MAX_FRAME_DATA_LENGTH);
            consumed += FRAME_HEADER_LENGTH + r.data.length;
          } else {
            assert.ok(r.length > MAX_FRAME_DATA_LENGTH);
            consumed += FRAME_HEADER_LENGTH;
            announced += r.length;
          }
        }
        skippedTotal += before + announced - decoder.skippingBytes;
        assert.ok(decoder.bufferedBytes <= MAX_FRAME_DATA_LENGTH + FRAME_HEADER_LENGTH);
      }
      assert.equal(consumed + skippedTotal + decoder.bufferedBytes, fed);
    }),
    { numRuns: 1000 },
  );
});

test('random garbage between valid frames: the decoder resynchronises only by length, never throws', () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 500 }),
      fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 10 }),
      (garbage, cuts) => {
        const decoder = createFrameDecoder();
        for (const c of chunk(garbage, cuts)) decoder.push(c);
        // Whatever state garbage left, the decoder still takes input.
        decoder.push(encodeFrame(1, 1, 0, new Uint8Array([9])));
      },
    ),
    { numRuns: 300 },
  );
});

test('an oversized frame fed in 64 KiB chunks is skipped without buffering, and the next frame decodes', async () => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;

  const length = MAX_FRAME_DATA_LENGTH + 1;
  const header = new Uint8Array(FRAME_HEADER_LENGTH);
  writeFrameHeader(header, length, 7, 1, 0);
  const decoder = createFrameDecoder();

  const first = decoder.push(header);
  assert.deepEqual(first, [{ kind: 'oversized', streamId: 7, type: 1, flags: 0, length }]);

  const chunkSize = 64 * 1024;
  const refs: WeakRef<Uint8Array>[] = [];
  let remaining = length;
  let results: DecodedFrame[] = [];
  while (remaining > 0) {
    const n = Math.min(chunkSize, remaining);
    // A fresh chunk each time, as a socket delivers them.
    const c = new Uint8Array(n).fill(0xab);
    refs.push(new WeakRef(c));
    results = decoder.push(c);
    assert.deepEqual(results, []);
    assert.equal(decoder.bufferedBytes, 0, 'no byte of an oversized frame is held');
    remaining -= n;
  }
  assert.equal(decoder.skippingBytes, 0);
  assert.equal(decoder.idle, true);

  const next = decoder.push(encodeFrame(9, 1, 0, new Uint8Array([1, 2, 3])));
  assert.deepEqual(plain(next), [{ streamId: 9, type: 1, flags: 0, data: new Uint8Array([1, 2, 3]) }]);

  // The chunks themselves are not retained: once dropped, they are collectable.
  await new Promise((resolve) => setImmediate(resolve));
  gc();
  await new Promise((resolve) => setImmediate(resolve));
  gc();
  const alive = refs.filter((r) => r.deref() !== undefined).length;
  assert.ok(alive <= 1, `${alive} of ${refs.length} skipped chunks are still reachable`);
});

test('an oversized frame inside one big chunk is skipped and the frame after it decodes', () => {
  const length = MAX_FRAME_DATA_LENGTH + 100;
  const big = new Uint8Array(FRAME_HEADER_LENGTH + length);
  writeFrameHeader(big, length, 3, 1, 0);
  const stream = concat([big, encodeFrame(5, 1, 0, new Uint8Array([4]))]);
  const results = createFrameDecoder().push(stream);
  assert.equal(results.length, 2);
  assert.deepEqual(results[0], { kind: 'oversized', streamId: 3, type: 1, flags: 0, length });
  assert.deepEqual(plain(results.slice(1)), [{ streamId: 5, type: 1, flags: 0, data: new Uint8Array([4]) }]);
});

test('a frame of exactly 4 MiB is accepted', () => {
  const data = new Uint8Array(MAX_FRAME_DATA_LENGTH).fill(1);
  const frame = encodeFrame(1, 1, 0, data);
  const decoder = createFrameDecoder();
  const results = [...decoder.push(frame.subarray(0, 100_000)), ...decoder.push(frame.subarray(100_000))];
  assert.equal(results.length, 1);
  const [only] = results as [DecodedFrame];
  assert.equal(only.kind, 'frame');
  assert.equal(only.data.length, MAX_FRAME_DATA_LENGTH);
});

test('the reserved first header byte is not checked (as in Go): such a frame is oversized', () => {
  const header = new Uint8Array([0x01, 0, 0, 0, 0, 0, 0, 1, 1, 0]);
  const results = createFrameDecoder().push(header);
  assert.deepEqual(results, [{ kind: 'oversized', streamId: 1, type: 1, flags: 0, length: 0x0100_0000 }]);
});

test('encodeFrame refuses data over 4 MiB with ResourceExhausted', () => {
  assert.throws(
    () => encodeFrame(1, 1, 0, new Uint8Array(MAX_FRAME_DATA_LENGTH + 1)),
    (error: unknown) =>
      error instanceof TtrpcError &&
      error.code === Code.ResourceExhausted &&
      error.message === `message length ${MAX_FRAME_DATA_LENGTH + 1} exceed maximum message size of 4194304`,
  );
});

test('the header is big-endian: length, stream id, type, flags', () => {
  const frame = encodeFrame(0x01020304, 0x02, 0x05, new Uint8Array([0xaa, 0xbb]));
  assert.deepEqual([...frame], [0, 0, 0, 2, 1, 2, 3, 4, 2, 5, 0xaa, 0xbb]);
});
