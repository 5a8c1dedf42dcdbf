import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { createServer as createNetServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { ttrpc } from '../protos/index.js';
import { connect, createServiceClient, type TtrpcClient } from './client.js';
import { Code } from './code.js';
import { DiagnosticsChannel, type ServerRequestMessage } from './diagnostics.js';
import { decodeResponse } from './envelope.js';
import { Flag, MAX_FRAME_DATA_LENGTH, MessageType, writeFrameHeader } from './frame.js';
import { createServer, type ServerOptions, type TtrpcServer } from './server.js';
import { implement, type HandlerContext, type ServiceImplementation } from './service.js';
import { countFds, EchoService, kv, RawPeer, sleep, tempSocket, unkv, waitFor } from './testkit.js';
import { ConnectionClosedError, TtrpcError } from './ttrpc-error.js';

const SERVICE = 'test.echo.v1.Echo';

/** Gates for the Slow method: a call with key K waits until release(K). */
class Gates {
  readonly #waiting = new Map<string, () => void>();
  readonly #released = new Set<string>();
  wait(key: string): Promise<void> {
    if (this.#released.has(key)) return Promise.resolve();
    return new Promise((resolve) => {
      this.#waiting.set(key, resolve);
    });
  }
  release(key: string): void {
    this.#released.add(key);
    this.#waiting.get(key)?.();
  }
  get waiting(): number {
    return this.#waiting.size - [...this.#waiting.keys()].filter((k) => this.#released.has(k)).length;
  }
}

function echoImplementation(gates: Gates, seen: HandlerContext[] = []): ServiceImplementation<typeof EchoService> {
  return {
    Echo: (request) => ({ key: request.key, value: request.value }),
    async Slow(request, context) {
      seen.push(context);
      if (request.key === 'await-abort') {
        const reason = await new Promise<unknown>((resolve) => {
          context.signal.addEventListener(
            'abort',
            () => {
              resolve(context.signal.reason);
            },
            { once: true },
          );
        });
        return { key: 'aborted', value: String(reason instanceof TtrpcError ? reason.code : -1) };
      }
      await gates.wait(request.key);
      return { key: request.key, value: 'done' };
    },
    Fail(request) {
      switch (request.key) {
        case 'ttrpc':
          throw new TtrpcError(Code.NotFound, request.value);
        case 'plain':
          throw new Error(request.value);
        case 'string':
          // eslint-disable-next-line @typescript-eslint/only-throw-error -- the test is about non-Error throws
          throw request.value;
        case 'big':
          return { key: 'big', value: 'x'.repeat(MAX_FRAME_DATA_LENGTH) };
        case 'nothing':
          return undefined as unknown as { key: string };
        default:
          return Promise.reject(new Error(`async ${request.value}`));
      }
    },
    Big: (request) => ({ key: request.key, value: 'x'.repeat(Number(request.value)) }),
    Context(_request, context) {
      return {
        key: `${context.service}/${context.method}#${context.streamId}`,
        value: JSON.stringify({ deadline: context.deadline ?? null, metadata: [...context.metadata], now: Date.now() }),
      };
    },
  };
}

interface Harness {
  server: TtrpcServer;
  path: string;
  gates: Gates;
  seen: HandlerContext[];
  cleanup(): Promise<void>;
}

async function startServer(options: ServerOptions = {}): Promise<Harness> {
  const socket = tempSocket();
  const gates = new Gates();
  const seen: HandlerContext[] = [];
  const server = createServer(options);
  server.register(SERVICE, implement(EchoService, echoImplementation(gates, seen)));
  await server.listen(socket.path);
  return {
    server,
    path: socket.path,
    gates,
    seen,
    async cleanup() {
      await server.close();
      socket.cleanup();
    },
  };
}

function echoClient(client: TtrpcClient) {
  return createServiceClient(client, SERVICE, EchoService);
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

test('1,000 concurrent calls on one connection are all answered correctly', async () => {
  const h = await startServer();
  const client = await connect(h.path);
  try {
    const echo = echoClient(client);
    const answers = await Promise.all(
      Array.from({ length: 1000 }, (_, i) => echo.Echo({ key: `k${i}`, value: `v${i}` })),
    );
    answers.forEach((answer, i) => {
      assert.equal(answer.key, `k${i}`);
      assert.equal(answer.value, `v${i}`);
    });
  } finally {
    await client.close();
    await h.cleanup();
  }
});

test('a slow handler does not block a fast one: answers go out as calls complete', async () => {
  const h = await startServer();
  const client = await connect(h.path);
  try {
    const echo = echoClient(client);
    const order: string[] = [];
    const slow = echo.Slow({ key: 'slow' }).then(() => order.push('slow'));
    await waitFor(() => h.gates.waiting === 1, 2000, 'the slow call to start');
    await echo.Echo({ key: 'fast' }).then(() => order.push('fast'));
    assert.deepEqual(order, ['fast']);
    h.gates.release('slow');
    await slow;
    assert.deepEqual(order, ['fast', 'slow']);
  } finally {
    await client.close();
    await h.cleanup();
  }
});

test('timeout_nano reaches the handler as a deadline and its signal fires with DeadlineExceeded', async () => {
  const h = await startServer();
  const client = await connect(h.path);
  try {
    const echo = echoClient(client);
    const before = Date.now();
    // The server's deadline fires at 150 ms; the client's own timer allows a little more.
    const answer = await echo.Slow({ key: 'await-abort' }, { timeoutMs: 150 }).catch((e: unknown) => e);
    const elapsed = Date.now() - before;
    if (answer instanceof TtrpcError) {
      // The client deadline may win the race; the handler's signal must still have fired.
      assert.equal(answer.code, Code.DeadlineExceeded);
    } else {
      assert.deepEqual(answer, ttrpc.KeyValue.create({ key: 'aborted', value: String(Code.DeadlineExceeded) }));
    }
    assert.ok(elapsed >= 140, `answered after ${elapsed} ms`);
    const context = h.seen.at(-1);
    assert.ok(context !== undefined);
    assert.ok(context.deadline !== undefined && Math.abs(context.deadline - (before + 150)) < 100);
    // The server's deadline starts when the request arrives, a little after the client's.
    await waitFor(() => context.signal.aborted, 1000, 'the handler signal to abort');
    assert.equal((context.signal.reason as TtrpcError).code, Code.DeadlineExceeded);
  } finally {
    await client.close();
    await h.cleanup();
  }
});

test('the handler signal fires at the server deadline even with no client timer', async () => {
  const h = await startServer();
  const peer = await RawPeer.connect(h.path);
  try {
    const request = ttrpc.Request.encode({
      service: SERVICE,
      method: 'Slow',
      payload: kv('await-abort'),
      timeoutNano: 50_000_000,
    }).finish();
    peer.sendFrame(1, MessageType.Request, 0, request);
    const answer = await peer.response(1);
    assert.ok(answer.ok);
    assert.deepEqual(unkv(answer.payload), { key: 'aborted', value: String(Code.DeadlineExceeded) });
  } finally {
    peer.destroy();
    await h.cleanup();
  }
});

test('metadata reaches the handler with lower-cased keys and every value', async () => {
  const h = await startServer();
  const client = await connect(h.path);
  try {
    const echo = echoClient(client);
    const answer = await echo.Context(
      { key: '' },
      { metadata: { 'Containerd-Namespace-TTRPC': 'default', multi: ['a', 'b'] } },
    );
    assert.equal(answer.key, `${SERVICE}/Context#1`);
    const parsed = JSON.parse(answer.value) as { deadline: number | null; metadata: [string, string[]][] };
    assert.equal(parsed.deadline, null);
    assert.deepEqual(parsed.metadata, [
      ['containerd-namespace-ttrpc', ['default']],
      ['multi', ['a', 'b']],
    ]);
  } finally {
    await client.close();
    await h.cleanup();
  }
});

test('unknown service and unknown method answer Unimplemented', async () => {
  const h = await startServer();
  const client = await connect(h.path);
  try {
    const noService = await rejection(client.call('no.such.Service', 'Echo', kv('x')));
    assert.equal(noService.code, Code.Unimplemented);
    assert.equal(noService.message, 'service no.such.Service');
    const noMethod = await rejection(client.call(SERVICE, 'Nope', kv('x')));
    assert.equal(noMethod.code, Code.Unimplemented);
    assert.equal(noMethod.message, 'method Nope');
    assert.deepEqual(unkv(await client.call(SERVICE, 'Echo', kv('still', 'works'))), { key: 'still', value: 'works' });
  } finally {
    await client.close();
    await h.cleanup();
  }
});

test('handler errors become statuses: TtrpcError as thrown, anything else Unknown with the message only', async () => {
  const h = await startServer();
  const client = await connect(h.path);
  try {
    const echo = echoClient(client);
    const notFound = await rejection(echo.Fail({ key: 'ttrpc', value: 'container "x" does not exist' }));
    assert.equal(notFound.code, Code.NotFound);
    assert.equal(notFound.message, 'container "x" does not exist');
    const plain = await rejection(echo.Fail({ key: 'plain', value: 'boom' }));
    assert.equal(plain.code, Code.Unknown);
    assert.equal(plain.message, 'boom');
    const asyncError = await rejection(echo.Fail({ key: 'other', value: 'later' }));
    assert.equal(asyncError.message, 'async later');
    const thrownString = await rejection(echo.Fail({ key: 'string', value: 'just a string' }));
    assert.equal(thrownString.code, Code.Unknown);
    assert.equal(thrownString.message, 'just a string');
    const nothing = await rejection(echo.Fail({ key: 'nothing' }));
    assert.equal(nothing.code, Code.Internal);
    const tooBig = await rejection(echo.Fail({ key: 'big' }));
    assert.equal(tooBig.code, Code.ResourceExhausted);
    assert.match(tooBig.message, /^message length \d+ exceed maximum message size of 4194304$/);
    assert.deepEqual(await echo.Echo({ key: 'alive' }), ttrpc.KeyValue.create({ key: 'alive' }));
  } finally {
    await client.close();
    await h.cleanup();
  }
});

test('an undecodable payload answers Internal, an undecodable envelope InvalidArgument', async () => {
  const h = await startServer();
  const peer = await RawPeer.connect(h.path);
  try {
    peer.sendRequest(1, SERVICE, 'Echo', new Uint8Array([0x0a, 0xff, 0x01]));
    const bad = await peer.response(1);
    assert.ok(!bad.ok);
    assert.equal(bad.error.code, Code.Internal);
    assert.match(bad.error.message, /^ttrpc: error unmarshalling payload: /);

    peer.sendFrame(3, MessageType.Request, 0, new Uint8Array([0x0a, 0x05, 0x41]));
    const envelope = await peer.response(3);
    assert.ok(!envelope.ok);
    assert.equal(envelope.error.code, Code.InvalidArgument);
    assert.match(envelope.error.message, /^unmarshal request error: /);

    peer.sendRequest(5, SERVICE, 'Echo', kv('ok'));
    const ok = await peer.response(5);
    assert.ok(ok.ok);
  } finally {
    peer.destroy();
    await h.cleanup();
  }
});

test('an even stream id and a reused stream id answer InvalidArgument, and the connection still works', async () => {
  const h = await startServer();
  const peer = await RawPeer.connect(h.path);
  try {
    peer.sendRequest(2, SERVICE, 'Echo', kv('even'));
    const even = await peer.response(2);
    assert.ok(!even.ok);
    assert.equal(even.error.code, Code.InvalidArgument);
    assert.equal(even.error.message, 'StreamID must be odd for client initiated streams');

    peer.sendRequest(5, SERVICE, 'Echo', kv('five'));
    assert.deepEqual(unkv(((await peer.response(5)) as { payload: Uint8Array }).payload), { key: 'five', value: '' });

    for (const reused of [5, 3]) {
      peer.sendRequest(reused, SERVICE, 'Echo', kv('again'));
      const answer = await peer.response(reused);
      assert.ok(!answer.ok);
      assert.equal(answer.error.code, Code.InvalidArgument);
      assert.equal(answer.error.message, 'StreamID cannot be re-used and must increment');
    }

    peer.sendRequest(7, SERVICE, 'Echo', kv('seven'));
    const seven = await peer.response(7);
    assert.ok(seven.ok);
    assert.deepEqual(unkv(seven.payload), { key: 'seven', value: '' });
  } finally {
    peer.destroy();
    await h.cleanup();
  }
});

test('an oversized request answers ResourceExhausted on its stream, and the connection still works', async () => {
  const h = await startServer();
  const peer = await RawPeer.connect(h.path);
  try {
    const length = MAX_FRAME_DATA_LENGTH + 1;
    const header = new Uint8Array(10);
    writeFrameHeader(header, length, 1, MessageType.Request, 0);
    peer.send(header);
    // The answer comes as soon as the header arrives, before the data.
    const early = await peer.response(1);
    assert.ok(!early.ok);
    assert.equal(early.error.code, Code.ResourceExhausted);
    assert.equal(early.error.message, 'message length 4194305 exceed maximum message size of 4194304');
    const body = Buffer.alloc(64 * 1024, 0x41);
    for (let sent = 0; sent < length; sent += body.length)
      peer.send(body.subarray(0, Math.min(body.length, length - sent)));
    peer.sendRequest(3, SERVICE, 'Echo', kv('after'));
    const after = await peer.response(3);
    assert.ok(after.ok);
    assert.deepEqual(unkv(after.payload), { key: 'after', value: '' });
  } finally {
    peer.destroy();
    await h.cleanup();
  }
});

test('streaming is not served: Data frames and streaming flags get Go answers, never a crash', async () => {
  const h = await startServer();
  const peer = await RawPeer.connect(h.path);
  try {
    // Data on a stream that is not in flight.
    peer.sendFrame(9, MessageType.Data, Flag.RemoteClosed | Flag.NoData, new Uint8Array(0));
    const inactive = await peer.response(9);
    assert.ok(!inactive.ok);
    assert.equal(inactive.error.code, Code.InvalidArgument);
    assert.equal(inactive.error.message, 'StreamID is no longer active');

    // A Request with `remote open` to a unary method is served as unary (the
    // method table decides, as in Go); Data on it while in flight is dropped.
    peer.sendRequest(11, SERVICE, 'Slow', kv('streamy'), Flag.RemoteOpen);
    await waitFor(() => h.gates.waiting === 1, 2000, 'the call to start');
    peer.sendFrame(11, MessageType.Data, 0, kv('data'));
    peer.sendFrame(11, MessageType.Data, Flag.RemoteClosed | Flag.NoData, new Uint8Array(0));
    // Frames are handled in order: once this answer is back, the Data frames were seen.
    peer.sendRequest(13, SERVICE, 'Echo', kv('barrier'));
    assert.ok((await peer.response(13)).ok);
    h.gates.release('streamy');
    const unary = await peer.response(11);
    assert.ok(unary.ok);
    // A streaming method name is unknown to the table: Unimplemented.
    peer.sendRequest(15, SERVICE, 'StreamingMethod', new Uint8Array(0), Flag.RemoteOpen);
    const streaming = await peer.response(15);
    assert.ok(!streaming.ok);
    assert.equal(streaming.error.code, Code.Unimplemented);

    // Response frames and unknown types from a client are ignored.
    peer.sendFrame(17, MessageType.Response, 0, new Uint8Array([1, 2, 3]));
    peer.sendFrame(19, 0x7f, 0xff, new Uint8Array([1, 2, 3]));
    peer.sendRequest(21, SERVICE, 'Echo', kv('after'));
    assert.ok((await peer.response(21)).ok);
    assert.equal(peer.frames.length, 0, 'nothing answered the ignored frames');
  } finally {
    peer.destroy();
    await h.cleanup();
  }
});

test('checkPeer refusing closes the connection before any answer', async () => {
  const refused: unknown[] = [];
  const onConnection = (message: unknown): void => {
    const m = message as { event: string; error?: unknown };
    if (m.event === 'refused') refused.push(m.error);
  };
  subscribe(DiagnosticsChannel.ServerConnection, onConnection);
  const h = await startServer({ checkPeer: async () => Promise.resolve(false) });
  try {
    const client = await connect(h.path);
    const error = await rejection(client.call(SERVICE, 'Echo', kv('x')));
    assert.ok(error instanceof ConnectionClosedError);
    assert.equal(refused.length, 1);
    assert.equal(h.server.connectionCount, 0);
  } finally {
    unsubscribe(DiagnosticsChannel.ServerConnection, onConnection);
    await h.cleanup();
  }
});

test('checkPeer throwing refuses; checkPeer accepting serves', async () => {
  let calls = 0;
  const h = await startServer({
    checkPeer: (socket) => {
      calls++;
      if (calls === 1) throw new Error('uid 1000 is not allowed');
      return socket.remoteAddress === undefined || true;
    },
  });
  try {
    const refusedClient = await connect(h.path);
    assert.ok((await rejection(refusedClient.call(SERVICE, 'Echo', kv('x')))) instanceof ConnectionClosedError);
    const client = await connect(h.path);
    assert.deepEqual(unkv(await client.call(SERVICE, 'Echo', kv('in'))), { key: 'in', value: '' });
    await client.close();
  } finally {
    await h.cleanup();
  }
});

test('shutdown waits for in-flight calls and writes their answers; new requests get Unavailable', async () => {
  const h = await startServer();
  const client = await connect(h.path);
  try {
    const echo = echoClient(client);
    const inFlight = echo.Slow({ key: 'drain' });
    await waitFor(() => h.gates.waiting === 1, 2000, 'the call to start');
    let shutDown = false;
    const shutdown = h.server.shutdown().then(() => {
      shutDown = true;
    });
    await sleep(50);
    assert.equal(shutDown, false, 'shutdown waits for the call in flight');
    const late = await rejection(echo.Echo({ key: 'late' }));
    assert.equal(late.code, Code.Unavailable);
    // A new connection is refused: the listener is closed.
    await assert.rejects(connect(h.path), (e: unknown) => e instanceof TtrpcError && e.code === Code.Unavailable);
    h.gates.release('drain');
    assert.deepEqual(await inFlight, ttrpc.KeyValue.create({ key: 'drain', value: 'done' }));
    await shutdown;
    assert.equal(shutDown, true);
    assert.equal(h.server.connectionCount, 0);
    await client.closed;
  } finally {
    await client.close();
    await h.cleanup();
  }
});

test('close does not wait: in-flight calls are cancelled and clients see the connection closed', async () => {
  const h = await startServer();
  const client = await connect(h.path);
  try {
    const echo = echoClient(client);
    const inFlight = rejection(echo.Slow({ key: 'never' }));
    await waitFor(() => h.gates.waiting === 1, 2000, 'the call to start');
    const context = h.seen.at(-1);
    assert.ok(context !== undefined);
    const signal = context.signal;
    await h.server.close();
    assert.equal(signal.aborted, true);
    assert.equal((signal.reason as TtrpcError).code, Code.Canceled);
    const error = await inFlight;
    assert.ok(error instanceof ConnectionClosedError);
    assert.equal(error.code, Code.Unavailable);
    assert.equal(h.server.connectionCount, 0);
  } finally {
    h.gates.release('never');
    await client.close();
    await h.cleanup();
  }
});

test('shutdown with an aborted signal turns into close', async () => {
  const h = await startServer();
  const client = await connect(h.path);
  try {
    const inFlight = rejection(echoClient(client).Slow({ key: 'stuck' }));
    await waitFor(() => h.gates.waiting === 1, 2000, 'the call to start');
    await h.server.shutdown({ signal: AbortSignal.timeout(50) });
    assert.ok((await inFlight) instanceof ConnectionClosedError);
  } finally {
    h.gates.release('stuck');
    await client.close();
    await h.cleanup();
  }
});

test('no fd is leaked after 1,000 connect/call/close cycles', async () => {
  const h = await startServer();
  try {
    // Warm up once so lazily opened fds (e.g. the event loop's) are counted in `before`.
    const warm = await connect(h.path);
    await warm.call(SERVICE, 'Echo', kv('warm'));
    await warm.close();
    await waitFor(() => h.server.connectionCount === 0, 2000, 'the warm-up connection to close');
    const before = countFds();
    for (let i = 0; i < 1000; i++) {
      const client = await connect(h.path);
      if (i % 10 === 0) await client.call(SERVICE, 'Echo', kv(`c${i}`));
      await client.close();
    }
    await waitFor(() => h.server.connectionCount === 0, 5000, 'server connections to close');
    await sleep(20);
    const after = countFds();
    assert.ok(after <= before, `fds before ${before}, after ${after}`);
  } finally {
    await h.cleanup();
  }
});

test('an existing net.Server can be served, and request diagnostics are published', async () => {
  const socket = tempSocket();
  const net = createNetServer();
  await new Promise<void>((resolve) => net.listen(socket.path, resolve));
  const server = createServer();
  server.register(SERVICE, implement(EchoService, echoImplementation(new Gates())));
  server.serve(net);
  const messages: ServerRequestMessage[] = [];
  const onRequest = (m: unknown): void => {
    messages.push(m as ServerRequestMessage);
  };
  subscribe(DiagnosticsChannel.ServerRequest, onRequest);
  const client = await connect(socket.path);
  try {
    await client.call(SERVICE, 'Echo', kv('a'));
    await rejection(client.call(SERVICE, 'Fail', kv('plain', 'why')));
    assert.equal(messages.length, 2);
    const [ok, failed] = messages as [ServerRequestMessage, ServerRequestMessage];
    assert.equal(ok.code, Code.OK);
    assert.equal(ok.method, 'Echo');
    assert.ok(ok.durationMs >= 0);
    assert.equal(failed.code, Code.Unknown);
    assert.equal((failed.error?.cause as Error).message, 'why');
  } finally {
    unsubscribe(DiagnosticsChannel.ServerRequest, onRequest);
    await client.close();
    await server.close();
    assert.equal(net.listening, false);
    socket.cleanup();
  }
});

test('registering a service twice throws, as Go panics', async () => {
  const h = await startServer();
  try {
    assert.throws(() => {
      h.server.register(SERVICE, implement(EchoService, echoImplementation(new Gates())));
    }, /duplicate service/);
    // The same methods under a second name: how the shim serves task v2 and v3.
    h.server.register('test.echo.v2.Echo', implement(EchoService, echoImplementation(new Gates())));
    const client = await connect(h.path);
    assert.deepEqual(unkv(await client.call('test.echo.v2.Echo', 'Echo', kv('v2'))), { key: 'v2', value: '' });
    await client.close();
  } finally {
    await h.cleanup();
  }
});

test('a peer that leaves cancels its calls, and their answers are dropped quietly', async () => {
  const h = await startServer();
  const peer = await RawPeer.connect(h.path);
  try {
    peer.sendRequest(1, SERVICE, 'Slow', kv('gone'));
    await waitFor(() => h.gates.waiting === 1, 2000, 'the call to start');
    const context = h.seen.at(-1);
    assert.ok(context !== undefined);
    const signal = context.signal;
    peer.destroy();
    await waitFor(() => h.server.connectionCount === 0, 2000, 'the server to see the close');
    // The handler learns that its caller left, as Go cancels the call's context.
    assert.equal(signal.aborted, true);
    assert.equal((signal.reason as TtrpcError).code, Code.Canceled);
    h.gates.release('gone');
    await sleep(20);
    // Still serving.
    const client = await connect(h.path);
    assert.ok(decodeResponse(new Uint8Array([0x0a, 0x00])).ok);
    assert.deepEqual(unkv(await client.call(SERVICE, 'Echo', kv('alive'))), { key: 'alive', value: '' });
    await client.close();
  } finally {
    await h.cleanup();
  }
});

test('listen({ fd: 3 }) serves an inherited listening socket, as containerd starts a shim', async () => {
  // An abstract socket: closing our copy of the listener below unlinks no file.
  const address = `\0ttrpc-test-${process.pid}-${Date.now()}`;
  const listener = createNetServer();
  await new Promise<void>((resolve) => listener.listen(address, resolve));
  // Node exposes no public accessor for a listener's fd; the handle has it on Unix.
  const fd = (listener as unknown as { _handle: { fd: number } })._handle.fd;
  const index = fileURLToPath(new URL('./index.js', import.meta.url));
  const protos = fileURLToPath(new URL('../protos/index.js', import.meta.url));
  const script = `
    const { createServer, unary } = await import(${JSON.stringify(index)});
    const { ttrpc } = await import(${JSON.stringify(protos)});
    const server = createServer();
    const echo = unary({ requestType: ttrpc.KeyValue, responseType: ttrpc.KeyValue, handler: (r) => ({ key: r.key, value: String(process.pid) }) });
    server.register('child.v1.Echo', { Echo: echo });
    await server.listen({ fd: 3 });
    process.stdout.write('ready');
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    stdio: ['ignore', 'pipe', 'inherit', fd],
  });
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', resolve);
  });
  try {
    await new Promise<void>((resolve, reject) => {
      child.stdout?.once('data', () => {
        resolve();
      });
      void exited.then((code) => {
        reject(new Error(`the child exited with ${String(code)}`));
      });
    });
    // Only the child serves from here on.
    await new Promise<void>((resolve) => {
      listener.close(() => {
        resolve();
      });
    });
    const client = await connect(address);
    assert.deepEqual(unkv(await client.call('child.v1.Echo', 'Echo', kv('hi'))), {
      key: 'hi',
      value: String(child.pid),
    });
    await client.close();
  } finally {
    child.kill('SIGKILL');
    await exited;
    if (listener.listening) listener.close();
  }
});

test('a peer that does not read its answers stalls only itself, and gets every answer once it reads', async () => {
  const h = await startServer();
  const peer = await RawPeer.connect(h.path);
  try {
    peer.socket.pause();
    let next = 1;
    // Requests in separate bursts, so the server reads them in separate chunks
    // while its answers (256 KiB each) pile up unread.
    for (let burst = 0; burst < 20; burst++) {
      for (let i = 0; i < 5; i++, next += 2) peer.sendRequest(next, SERVICE, 'Big', kv(`b${next}`, String(256 * 1024)));
      await sleep(5);
    }
    const total = (next - 1) / 2;
    // Meanwhile another connection is served normally.
    const client = await connect(h.path);
    assert.deepEqual(unkv(await client.call(SERVICE, 'Echo', kv('other'))), { key: 'other', value: '' });
    await client.close();
    peer.socket.resume();
    for (let id = 1; id < next; id += 2) {
      const answer = await peer.response(id, 10_000);
      assert.ok(answer.ok);
      assert.equal(unkv(answer.payload).value.length, 256 * 1024);
    }
    assert.equal(total, 100);
  } finally {
    peer.destroy();
    await h.cleanup();
  }
});
