import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  LAUNCHER_MAGIC,
  MAX_FRAME_BYTES,
  createFrameReader,
  decodeRequest,
  decodeResponse,
  encodeRequest,
  encodeResponse,
  environmentOf,
  type FrameState,
  type LauncherRequest,
} from './launcher-protocol.js';

const sample: LauncherRequest = {
  argv: ['-namespace', 'default', '-address', '/run/containerd/containerd.sock', '-id', 'c1', 'start'],
  env: ['TTRPC_ADDRESS=/run/containerd/containerd.sock.ttrpc', 'GOMAXPROCS=2', 'EMPTY=', 'ünïcode=✓'],
  cwd: '/run/containerd/io.containerd.runtime.v2.task/default/c1',
  parentPid: 4242,
  stdin: new Uint8Array([0x0a, 0x00, 0xff]),
};

/** The payload of a whole frame, through the reader. */
function payloadOf(frame: Uint8Array): Uint8Array {
  const state = createFrameReader().push(frame);
  if (state.kind !== 'frame') throw new Error(`a whole frame read as ${state.kind}`);
  return state.payload;
}

function u32(value: number): Uint8Array {
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setUint32(0, value);
  return bytes;
}

test('a request round-trips, byte-exact stdin and UTF-8 strings included', () => {
  const frame = encodeRequest(sample);
  assert.equal(new DataView(frame.buffer).getUint32(0), frame.length - 4, 'the length prefix counts the payload');
  assert.equal(new DataView(frame.buffer).getUint32(4), LAUNCHER_MAGIC);
  const decoded = decodeRequest(payloadOf(frame));
  assert.deepEqual(decoded, { ok: true, value: sample });
});

test('a response round-trips', () => {
  const response = { exitCode: 137, stdout: new Uint8Array([1, 2, 3]), stderr: new TextEncoder().encode('warning\n') };
  assert.deepEqual(decodeResponse(payloadOf(encodeResponse(response))), { ok: true, value: response });
});

test('the wire layout is the one PROTOCOL.md gives (a hand-built request decodes)', () => {
  const text = (s: string): Uint8Array[] => [u32(Buffer.byteLength(s)), Buffer.from(s)];
  const parts = [u32(LAUNCHER_MAGIC), u32(1), ...text('-v'), u32(1), ...text('A=b'), ...text('/'), u32(7), u32(0)];
  const payload = Buffer.concat(parts);
  assert.deepEqual(decodeRequest(payload), { ok: true, value: { argv: ['-v'], env: ['A=b'], cwd: '/', parentPid: 7, stdin: new Uint8Array(0) } });
});

test('every truncation of a request is an error with a sentence, never a throw', () => {
  const payload = payloadOf(encodeRequest(sample));
  for (let length = 0; length < payload.length; length++) {
    const decoded = decodeRequest(payload.subarray(0, length));
    if (decoded.ok) assert.fail(`a request cut at ${length} bytes decoded`);
    assert.match(decoded.error, /truncated frame|more than the frame can hold/);
  }
});

test('bad magic, stray bytes and impossible counts are refused', () => {
  const payload = Buffer.from(payloadOf(encodeRequest(sample)));
  const badMagic = Buffer.from(payload);
  badMagic.writeUInt32BE(0x47455420, 0); // "GET "
  assert.deepEqual(decodeRequest(badMagic), { ok: false, error: 'bad magic 0x47455420 (want 0x54535231, "TSR1"): the peer does not speak the launcher protocol' });
  const stray = Buffer.concat([payload, Buffer.from([0])]);
  assert.deepEqual(decodeRequest(stray), { ok: false, error: '1 stray bytes after the last field' });
  const hugeArgc = Buffer.concat([u32(LAUNCHER_MAGIC), u32(0xffffffff)]);
  const decoded = decodeRequest(hugeArgc);
  if (decoded.ok) assert.fail('an argc of 2^32-1 decoded');
  assert.match(decoded.error, /argc 4294967295 is more than the frame can hold/);
});

test('the frame reader refuses an oversized length from the header alone', () => {
  const reader = createFrameReader();
  assert.deepEqual(reader.push(u32(MAX_FRAME_BYTES + 1)), { kind: 'oversized', length: MAX_FRAME_BYTES + 1 });
  assert.deepEqual(reader.push(new Uint8Array(10)), { kind: 'oversized', length: MAX_FRAME_BYTES + 1 }, 'later bytes are ignored');
  assert.deepEqual(createFrameReader(8).push(u32(9)), { kind: 'oversized', length: 9 });
  assert.equal(createFrameReader(8).push(Buffer.concat([u32(8), new Uint8Array(8)])).kind, 'frame', 'exactly the cap is fine');
});

test('any chunking of a frame yields the same payload', () => {
  fc.assert(
    fc.property(
      fc.record({
        argv: fc.array(fc.string(), { maxLength: 8 }),
        env: fc.array(fc.string(), { maxLength: 8 }),
        cwd: fc.string(),
        parentPid: fc.nat({ max: 0xffffffff }),
        stdin: fc.uint8Array({ maxLength: 64 }),
      }),
      fc.array(fc.nat({ max: 16 }), { minLength: 1, maxLength: 20 }),
      (request, cuts) => {
        const frame = encodeRequest(request);
        const reader = createFrameReader();
        let state: FrameState = { kind: 'partial' };
        let offset = 0;
        for (const cut of cuts) {
          if (offset >= frame.length) break;
          state = reader.push(frame.subarray(offset, offset + cut));
          offset += cut;
        }
        if (offset < frame.length) state = reader.push(frame.subarray(offset));
        if (state.kind !== 'frame') assert.fail(`the whole frame read as ${state.kind}`);
        const decoded = decodeRequest(state.payload);
        if (!decoded.ok) assert.fail(decoded.error);
        // Lone surrogates do not survive UTF-8; compare what UTF-8 keeps.
        const wellFormed = (s: string): string => Buffer.from(s).toString();
        assert.deepEqual(decoded.value.argv, request.argv.map(wellFormed));
        assert.deepEqual(decoded.value.env, request.env.map(wellFormed));
        assert.equal(decoded.value.cwd, wellFormed(request.cwd));
        assert.equal(decoded.value.parentPid, request.parentPid);
        assert.deepEqual(decoded.value.stdin, request.stdin);
      },
    ),
  );
});

test('random bytes never make the decoders throw', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 256 }), fc.boolean(), (bytes, withMagic) => {
      const payload = withMagic ? Buffer.concat([u32(LAUNCHER_MAGIC), bytes]) : bytes;
      const request = decodeRequest(payload);
      const response = decodeResponse(payload);
      if (!request.ok) assert.equal(typeof request.error, 'string');
      if (!response.ok) assert.equal(typeof response.error, 'string');
      const reader = createFrameReader(1024);
      const state = reader.push(payload);
      assert.ok(['partial', 'frame', 'oversized'].includes(state.kind));
    }),
    { numRuns: 2000 },
  );
});

test('environment entries become a record: no `=` skipped, last duplicate wins, values keep their `=`', () => {
  assert.deepEqual(environmentOf(['A=1', 'B', '=x', 'C=a=b', 'A=2', 'E=']), { A: '2', C: 'a=b', E: '' });
});
