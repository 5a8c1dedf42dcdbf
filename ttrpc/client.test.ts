import { test } from 'node:test';
import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { ttrpc } from '../protos/index.js';
import { connect, createClient, createServiceClient } from './client.js';
import { Code } from './code.js';
import { DiagnosticsChannel, type ProtocolErrorMessage } from './diagnostics.js';
import { decodeRequest, encodeErrorResponseFrame, encodeOkResponseFrame } from './envelope.js';
import { encodeFrame, MAX_FRAME_DATA_LENGTH, MessageType } from './frame.js';
import { createFrameDecoder, type Frame } from './frame-decoder.js';
import { createServer } from './server.js';
import { implement } from './service.js';
import { EchoService, kv, sleep, tempSocket, unkv, waitFor } from './testkit.js';
import { ConnectionClosedError, isConnectionClosed, TtrpcError } from './ttrpc-error.js';

const SERVICE = 'test.echo.v1.Echo';

/** A scripted server speaking raw frames: records every frame it receives; `onFrame` answers. */
async function rawServer(onFrame: (frame: Frame, socket: Socket) => void): Promise<{
  frames: Frame[];
  sockets: Socket[];
  path: string;
  cleanup(): Promise<void>;
}> {
  const dir = tempSocket();
  const frames: Frame[] = [];
  const sockets: Socket[] = [];
  const server: NetServer = createNetServer((socket) => {
    sockets.push(socket);
    socket.on('error', () => undefined);
    const decoder = createFrameDecoder();
    socket.on('data', (chunk: Buffer) => {
      for (const result of decoder.push(chunk)) {
        if (result.kind !== 'frame') continue;
        frames.push(result);
        onFrame(result, socket);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(dir.path, resolve));
  return {
    frames,
    sockets,
    path: dir.path,
    async cleanup() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => {
        server.close(() => {
          resolve();
        });
      });
      dir.cleanup();
    },
  };
}

async function rejection(promise: Promise<unknown>): Promise<TtrpcError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof TtrpcError, `expected a TtrpcError, got ${String(error)}`);
    return error;
  }
  assert.fail('expected a rejection');
}

test('stream ids are odd and increase from 1; requests carry service, method, payload, timeout and metadata', async () => {
  const server = await rawServer((frame, socket) => {
    socket.write(encodeOkResponseFrame(frame.streamId, kv('ok')));
  });
  const client = await connect(server.path);
  try {
    await client.call('a.B', 'C', kv('one'));
    await client.call('a.B', 'D', kv('two'), { timeoutMs: 2000, metadata: { 'X-Key': ['1', '2'] } });
    await Promise.all([client.call('a.B', 'E', new Uint8Array(0)), client.call('a.B', 'F', kv('four'))]);
    assert.deepEqual(
      server.frames.map((f) => [f.streamId, f.type, f.flags]),
      [
        [1, MessageType.Request, 0],
        [3, MessageType.Request, 0],
        [5, MessageType.Request, 0],
        [7, MessageType.Request, 0],
      ],
    );
    const first = decodeRequest(server.frames[0]!.data);
    assert.equal(first.service, 'a.B');
    assert.equal(first.method, 'C');
    assert.deepEqual(unkv(first.payload), { key: 'one', value: '' });
    assert.equal(first.timeoutNano, 0);
    const second = decodeRequest(server.frames[1]!.data);
    assert.ok(
      second.timeoutNano > 1_900_000_000 && second.timeoutNano <= 2_000_000_000,
      `timeout_nano ${second.timeoutNano}`,
    );
    assert.deepEqual(
      second.metadata.map((m) => [m.key, m.value]),
      [
        ['x-key', '1'],
        ['x-key', '2'],
      ],
    );
    assert.equal(decodeRequest(server.frames[2]!.data).payload.length, 0);
  } finally {
    await client.close();
    await server.cleanup();
  }
});

test('answers are matched by stream id, whatever their order', async () => {
  const held: Frame[] = [];
  const server = await rawServer((frame, socket) => {
    held.push(frame);
    if (held.length === 3) {
      for (const f of held.reverse()) socket.write(encodeOkResponseFrame(f.streamId, decodeRequest(f.data).payload));
    }
  });
  const client = await connect(server.path);
  try {
    const answers = await Promise.all(['a', 'b', 'c'].map((k) => client.call('s', 'm', kv(k))));
    assert.deepEqual(
      answers.map((a) => unkv(a).key),
      ['a', 'b', 'c'],
    );
  } finally {
    await client.close();
    await server.cleanup();
  }
});

test('a non-OK status rejects with its code, message and details', async () => {
  const server = await rawServer((frame, socket) => {
    socket.write(
      encodeErrorResponseFrame(frame.streamId, {
        code: Code.FailedPrecondition,
        message: 'cannot start task in stopped state',
        details: [{ typeUrl: 'type.googleapis.com/x.Y', value: new Uint8Array([1]) }],
      }),
    );
  });
  const client = await connect(server.path);
  try {
    const error = await rejection(client.call('s', 'm', kv('x')));
    assert.equal(error.code, Code.FailedPrecondition);
    assert.equal(error.message, 'cannot start task in stopped state');
    assert.deepEqual(
      error.details.map((d) => ({ typeUrl: d.typeUrl, value: [...d.value] })),
      [{ typeUrl: 'type.googleapis.com/x.Y', value: [1] }],
    );
    assert.ok(!isConnectionClosed(error));
  } finally {
    await client.close();
    await server.cleanup();
  }
});

test('the deadline is enforced locally with DeadlineExceeded, and a late answer is dropped', async () => {
  const late: ProtocolErrorMessage[] = [];
  const onProtocol = (m: unknown): void => {
    late.push(m as ProtocolErrorMessage);
  };
  subscribe(DiagnosticsChannel.ClientProtocolError, onProtocol);
  const server = await rawServer((frame, socket) => {
    setTimeout(() => socket.write(encodeOkResponseFrame(frame.streamId, kv('late'))), 150);
  });
  const client = await connect(server.path);
  try {
    const started = Date.now();
    for (const bad of [-1, Number.NaN, Number.POSITIVE_INFINITY]) {
      assert.equal((await rejection(client.call('s', 'm', kv('x'), { timeoutMs: bad }))).code, Code.InvalidArgument);
    }
    const error = await rejection(client.call('s', 'm', kv('x'), { timeoutMs: 50 }));
    assert.equal(error.code, Code.DeadlineExceeded);
    assert.ok(Date.now() - started >= 45);
    await waitFor(() => late.length === 1, 2000, 'the late answer');
    assert.equal(late[0]?.streamId, 1);
    // The connection is fine.
    assert.deepEqual(unkv(await client.call('s', 'm', kv('y'))), { key: 'late', value: '' });
  } finally {
    unsubscribe(DiagnosticsChannel.ClientProtocolError, onProtocol);
    await client.close();
    await server.cleanup();
  }
});

test('an aborted signal rejects with Canceled; an already aborted one sends nothing', async () => {
  const server = await rawServer(() => undefined);
  const client = await connect(server.path);
  try {
    const controller = new AbortController();
    const pending = rejection(client.call('s', 'm', kv('x'), { signal: controller.signal }));
    await waitFor(() => server.frames.length === 1, 2000, 'the request');
    controller.abort();
    assert.equal((await pending).code, Code.Canceled);
    const already = await rejection(client.call('s', 'm', kv('x'), { signal: AbortSignal.abort() }));
    assert.equal(already.code, Code.Canceled);
    const timedOut = new AbortController();
    timedOut.abort(new DOMException('too slow', 'TimeoutError'));
    assert.equal(
      (await rejection(client.call('s', 'm', kv('x'), { signal: timedOut.signal }))).code,
      Code.DeadlineExceeded,
    );
    await sleep(20);
    assert.equal(server.frames.length, 1);
  } finally {
    await client.close();
    await server.cleanup();
  }
});

test('an oversized request is refused with ResourceExhausted before sending, and the client still works', async () => {
  const server = await rawServer((frame, socket) => {
    socket.write(encodeOkResponseFrame(frame.streamId, new Uint8Array(0)));
  });
  const client = await connect(server.path);
  try {
    const error = await rejection(client.call('s', 'm', new Uint8Array(MAX_FRAME_DATA_LENGTH)));
    assert.equal(error.code, Code.ResourceExhausted);
    assert.match(error.message, /^message length \d+ exceed maximum message size of 4194304$/);
    assert.equal((await client.call('s', 'm', kv('small'))).length, 0);
    assert.equal(server.frames[0]?.streamId, 1, 'the refused call used no stream id');
  } finally {
    await client.close();
    await server.cleanup();
  }
});

test('an oversized answer rejects that call with ResourceExhausted; a Data answer with Internal', async () => {
  const server = await rawServer((frame, socket) => {
    if (frame.streamId === 1) {
      const header = Buffer.alloc(10);
      header.writeUInt32BE(MAX_FRAME_DATA_LENGTH + 1, 0);
      header.writeUInt32BE(1, 4);
      header[8] = MessageType.Response;
      socket.write(header);
      socket.write(Buffer.alloc(MAX_FRAME_DATA_LENGTH + 1));
    } else if (frame.streamId === 3) {
      socket.write(encodeFrame(3, MessageType.Data, 0, kv('stream data')));
    } else {
      socket.write(encodeOkResponseFrame(frame.streamId, kv('fine')));
    }
  });
  const client = await connect(server.path);
  try {
    assert.equal((await rejection(client.call('s', 'm', kv('x')))).code, Code.ResourceExhausted);
    assert.equal((await rejection(client.call('s', 'm', kv('x')))).code, Code.Internal);
    assert.deepEqual(unkv(await client.call('s', 'm', kv('x'))), { key: 'fine', value: '' });
  } finally {
    await client.close();
    await server.cleanup();
  }
});

test('a reset connection rejects pending and later calls with ConnectionClosedError', async () => {
  const server = await rawServer((_frame, socket) => {
    socket.destroy();
  });
  const client = await connect(server.path);
  try {
    const error = await rejection(client.call('s', 'm', kv('x')));
    assert.ok(error instanceof ConnectionClosedError);
    assert.equal(error.code, Code.Unavailable);
    assert.equal(error.closed, true);
    const closedReason = await client.closed;
    assert.ok(closedReason instanceof ConnectionClosedError);
    assert.equal(client.isClosed, true);
    const later = await rejection(client.call('s', 'm', kv('y')));
    assert.ok(later instanceof ConnectionClosedError);
  } finally {
    await client.close();
    await server.cleanup();
  }
});

test('close() rejects pending calls with ConnectionClosedError and resolves once closed', async () => {
  const server = await rawServer(() => undefined);
  const client = await connect(server.path);
  try {
    const pending = rejection(client.call('s', 'm', kv('x')));
    await waitFor(() => server.frames.length === 1, 2000, 'the request');
    await client.close();
    assert.ok((await pending) instanceof ConnectionClosedError);
    assert.equal(client.socket.destroyed, true);
    await client.close(); // idempotent
  } finally {
    await server.cleanup();
  }
});

test('connect to a missing socket rejects with Unavailable; createClient rejects its calls as closed', async () => {
  const dir = tempSocket();
  try {
    const error = await rejection(connect(dir.path));
    assert.equal(error.code, Code.Unavailable);
    assert.match(error.message, /cannot connect to .*ENOENT/);
    const lazy = createClient(dir.path);
    const callError = await rejection(lazy.call('s', 'm', kv('x')));
    assert.ok(callError instanceof ConnectionClosedError);
    assert.match(callError.message, /ENOENT/);
  } finally {
    dir.cleanup();
  }
});

test('createClient queues calls made before the connection is up', async () => {
  const dir = tempSocket();
  const server = createServer();
  server.register(
    SERVICE,
    implement(EchoService, {
      Echo: (r) => r,
      Slow: (r) => r,
      Fail: (r) => r,
      Context: (r) => r,
      Big: (r) => r,
    }),
  );
  await server.listen(dir.path);
  const client = createClient(dir.path);
  try {
    const echo = createServiceClient(client, SERVICE, EchoService);
    const answer = await echo.Echo({ key: 'early', value: 'bird' });
    assert.deepEqual(answer, ttrpc.KeyValue.create({ key: 'early', value: 'bird' }));
    // Typed clients reject undecodable answers with Internal.
    const broken = createServiceClient(client, SERVICE, {
      Echo: {
        requestType: ttrpc.KeyValue,
        responseType: {
          encode: (m: ttrpc.KeyValue.$Properties) => ttrpc.KeyValue.encode(m),
          decode: (): ttrpc.KeyValue => {
            throw new Error('nope');
          },
        },
      },
    });
    assert.equal((await rejection(broken.Echo({ key: 'x' }))).code, Code.Internal);
  } finally {
    await client.close();
    await server.close();
    dir.cleanup();
  }
});
