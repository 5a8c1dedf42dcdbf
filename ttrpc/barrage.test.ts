/**
 * Bad input never takes the server down (DESIGN.md section 3): a barrage of
 * malformed frames over several connections, then a correct call on a new
 * connection. The barrage is generated from a fixed seed so a failure replays.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ttrpc } from '../protos/index.js';
import { connect } from './client.js';
import { Code } from './code.js';
import { decodeResponse } from './envelope.js';
import { encodeFrame, MAX_FRAME_DATA_LENGTH, MessageType, writeFrameHeader } from './frame.js';
import { createServer } from './server.js';
import { implement } from './service.js';
import { EchoService, kv, RawPeer, sleep, tempSocket, unkv, waitFor } from './testkit.js';
import { TtrpcError } from './ttrpc-error.js';

const SERVICE = 'test.echo.v1.Echo';
const SEED = 0x5eed_77c1;
const CONNECTIONS = 20;
const FRAMES_PER_CONNECTION = 500;

/** xorshift32: small, fast, deterministic. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

function makeGenerator(seed: number) {
  const next = rng(seed);
  const int = (max: number): number => next() % max;
  const bytes = (n: number): Uint8Array => {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = next() & 0xff;
    return out;
  };
  const pick = <T>(items: readonly T[]): T => items[int(items.length)] as T;
  const streamId = (): number => pick([0, 1, 2, int(1000), int(1000) | 1, 0xffff_ffff, 0xffff_fffe, next()]);
  const text = (): string =>
    pick([
      '',
      SERVICE,
      'Echo',
      'Slow',
      'Fail',
      'Context',
      'x'.repeat(int(300)),
      '\u{1f4a9}',
      'containerd.task.v2.Task',
    ]);

  /**
   * One malformed (or sometimes valid) frame as bytes. Kinds 0-5 keep the
   * framing intact; kinds 6-7 break it (everything after them on that
   * connection is garbage, or is skipped as part of an "oversized" frame).
   */
  return (framingBreakers: boolean): Uint8Array => {
    switch (int(framingBreakers ? 8 : 6)) {
      case 0: {
        // A fully random header with a small length, then that many random bytes.
        const data = bytes(int(200));
        const header = bytes(10);
        writeFrameHeader(header, data.length, next(), header[8] ?? 0, header[9] ?? 0);
        return Buffer.concat([header, data]);
      }
      case 1:
        // A valid header of random type and flags around a random payload.
        return encodeFrame(streamId(), int(256), int(256), bytes(int(300)));
      case 2:
        // A Request with a garbage envelope.
        return encodeFrame(streamId(), MessageType.Request, int(256), bytes(int(300)));
      case 3: {
        // A well-formed envelope with random names, payload, deadline and metadata.
        const envelope = ttrpc.Request.encode({
          service: pick([SERVICE, text()]),
          method: text(),
          payload: pick([bytes(int(100)), kv('k', 'v'), new Uint8Array(0)]),
          timeoutNano: pick([0, -1, 1, 1_000_000, Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER]),
          metadata: Array.from({ length: int(4) }, () => ({ key: text(), value: text() })),
        }).finish();
        return encodeFrame(streamId(), MessageType.Request, pick([0, 0, 1, 2, 4, int(256)]), envelope);
      }
      case 4:
        // Data frames with every flag combination.
        return encodeFrame(streamId(), MessageType.Data, int(8), bytes(int(50)));
      case 5: {
        // A valid call to a real method (may be refused for its stream id).
        const envelope = ttrpc.Request.encode({
          service: SERVICE,
          method: pick(['Echo', 'Slow', 'Fail', 'Context']),
          payload: kv(text(), text()),
        });
        return encodeFrame(streamId(), MessageType.Request, 0, envelope.finish());
      }
      case 6:
        // A few random bytes: shifts the framing of everything after it.
        return bytes(1 + int(9));
      default: {
        // An oversized header with no data: the server answers and skips what follows.
        const header = new Uint8Array(10);
        writeFrameHeader(header, MAX_FRAME_DATA_LENGTH + 1 + int(1000), streamId(), int(4), int(8));
        return int(20) === 0 ? header : bytes(int(20));
      }
    }
  };
}

test('10,000 malformed frames over 20 connections: the server stays up and serves a correct call after', async () => {
  const dir = tempSocket();
  const crashes: unknown[] = [];
  const onCrash = (error: unknown): void => {
    crashes.push(error);
  };
  process.on('uncaughtException', onCrash);
  process.on('unhandledRejection', onCrash);
  const server = createServer({ checkPeer: () => true });
  server.register(
    SERVICE,
    implement(EchoService, {
      Echo: (request) => request,
      Slow: async (request, context) => {
        await sleep(1);
        return { key: request.key, value: String(context.signal.aborted) };
      },
      Fail: (request) => {
        throw new TtrpcError(Code.FailedPrecondition, request.value);
      },
      Context: (_request, context) => ({ key: context.method, value: String(context.deadline) }),
      Big: (request) => ({ key: request.key, value: 'x'.repeat(Math.min(Number(request.value) || 0, 1 << 20)) }),
    }),
  );
  await server.listen(dir.path);
  try {
    const generate = makeGenerator(SEED);
    let frames = 0;
    let answers = 0;
    const peers = await Promise.all(Array.from({ length: CONNECTIONS }, () => RawPeer.connect(dir.path)));
    for (const [index, peer] of peers.entries()) {
      // Most connections keep their framing until their last few frames, so
      // the server sees (and answers) thousands of bad frames; a few are
      // garbage from the start.
      const garbageFrom = index < 4 ? 0 : FRAMES_PER_CONNECTION - 5;
      const parts: Uint8Array[] = [];
      for (let i = 0; i < FRAMES_PER_CONNECTION; i++) parts.push(generate(i >= garbageFrom));
      frames += parts.length;
      // Send in uneven writes so frames straddle reads.
      const all = Buffer.concat(parts);
      for (let at = 0; at < all.length; at += 1 + ((at * 7919) % 9000))
        peer.send(all.subarray(at, at + 1 + ((at * 7919) % 9000)));
    }
    // Let the server chew until its answers stop coming (the box may be busy),
    // then check that everything it said decodes.
    let seen = -1;
    for (let rounds = 0; rounds < 100; rounds++) {
      const now = peers.reduce((sum, p) => sum + p.frames.length, 0);
      if (now === seen) break;
      seen = now;
      await sleep(200);
    }
    for (const peer of peers) {
      for (const frame of peer.frames) {
        assert.equal(frame.kind, 'frame');
        assert.equal(frame.type, MessageType.Response, 'the server only ever sends Response frames');
        // Never throws: either an OK payload or a TtrpcError with a status.
        decodeResponse(frame.data);
        answers++;
      }
      peer.destroy();
    }
    assert.equal(frames, CONNECTIONS * FRAMES_PER_CONNECTION);
    assert.ok(answers > frames / 2, `only ${answers} answers to ${frames} frames`);
    await waitFor(() => server.connectionCount === 0, 5000, 'the barrage connections to close');

    const client = await connect(dir.path);
    const answer = unkv(await client.call(SERVICE, 'Echo', kv('after', 'the barrage')));
    assert.deepEqual(answer, { key: 'after', value: 'the barrage' });
    await client.close();
    assert.deepEqual(crashes, []);
  } finally {
    process.off('uncaughtException', onCrash);
    process.off('unhandledRejection', onCrash);
    await server.close();
    dir.cleanup();
  }
});
