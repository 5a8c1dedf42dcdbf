import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { typeNameOf, unpackAnyAs } from '../protos/index.js';
import { Code, createServer, implement, TtrpcError, type TtrpcServer } from '../ttrpc/index.js';
import { createPublisher, EventsService, eventsServiceName } from './publisher.js';
import { createTestLogger } from '../core/test-logger.js';

interface Received {
  readonly topic: string;
  readonly namespace: string;
  readonly typeUrl: string;
  readonly pid: number;
}

/** A stand-in for containerd's events ttrpc service: records what it accepts, fails on demand. */
async function startEventsServer(path: string, failures: { next: number } = { next: 0 }): Promise<{ server: TtrpcServer; received: Received[] }> {
  const received: Received[] = [];
  const server = createServer();
  server.register(
    eventsServiceName,
    implement(EventsService, {
      Forward(request) {
        if (failures.next > 0) {
          failures.next--;
          throw new TtrpcError(Code.Unavailable, 'busy');
        }
        const envelope = request.envelope;
        assert.ok(envelope?.event);
        const exit = unpackAnyAs(envelope.event, 'containerd.events.TaskExit');
        received.push({ topic: envelope.topic ?? '', namespace: envelope.namespace ?? '', typeUrl: envelope.event.type_url ?? '', pid: exit.pid });
        return {};
      },
    }),
  );
  await server.listen(path);
  return { server, received };
}

function exitEvent(pid: number) {
  return { topic: '/tasks/exit', typeUrl: 'containerd.events.TaskExit' as const, message: { containerId: 'c', id: 'c', pid, exitStatus: 0 } };
}

function waitFor(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const tick = (): void => {
      if (condition()) resolve();
      else if (Date.now() > deadline) reject(new Error('condition not met in time'));
      else setTimeout(tick, 5);
    };
    tick();
  });
}

test('events arrive in publish order, with bare type URLs and the namespace', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tsrun-pub-'));
  t.after(() => {
    rmSync(dir, { recursive: true, force: true });
  });
  const path = join(dir, 'events.sock');
  const { server, received } = await startEventsServer(path);
  t.after(() => server.close());
  const publisher = createPublisher({ address: path, namespace: 'ns1', logger: createTestLogger() });
  for (let pid = 1; pid <= 200; pid++) publisher.publish(exitEvent(pid));
  await waitFor(() => received.length === 200);
  assert.deepEqual(
    received.map((r) => r.pid),
    Array.from({ length: 200 }, (_, i) => i + 1),
  );
  assert.ok(received.every((r) => r.namespace === 'ns1' && r.typeUrl === 'containerd.events.TaskExit' && typeNameOf(r.typeUrl) === r.typeUrl));
  await publisher.close(1000);
});

test('a failing event is retried in place: later events never overtake it', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tsrun-pub-'));
  t.after(() => {
    rmSync(dir, { recursive: true, force: true });
  });
  const path = join(dir, 'events.sock');
  const failures = { next: 2 };
  const { server, received } = await startEventsServer(path, failures);
  t.after(() => server.close());
  const publisher = createPublisher({ address: path, namespace: 'ns', logger: createTestLogger(), backoffMs: 5 });
  publisher.publish(exitEvent(1));
  publisher.publish(exitEvent(2));
  publisher.publish(exitEvent(3));
  await waitFor(() => received.length === 3);
  assert.deepEqual(
    received.map((r) => r.pid),
    [1, 2, 3],
  );
  await publisher.close(1000);
});

test('the publisher reconnects after containerd restarts its socket', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tsrun-pub-'));
  t.after(() => {
    rmSync(dir, { recursive: true, force: true });
  });
  const path = join(dir, 'events.sock');
  const first = await startEventsServer(path);
  const publisher = createPublisher({ address: path, namespace: 'ns', logger: createTestLogger(), backoffMs: 20 });
  publisher.publish(exitEvent(1));
  await waitFor(() => first.received.length === 1);
  await first.server.close();
  rmSync(path, { force: true });
  // Published while containerd is down: held, then delivered once it is back.
  publisher.publish(exitEvent(2));
  await new Promise((resolve) => setTimeout(resolve, 30));
  const second = await startEventsServer(path);
  t.after(() => second.server.close());
  await waitFor(() => second.received.length === 1);
  assert.equal(second.received[0]?.pid, 2);
  await publisher.close(1000);
});

test('an event that keeps failing is dropped after the retry budget, logged, and the queue moves on', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tsrun-pub-'));
  t.after(() => {
    rmSync(dir, { recursive: true, force: true });
  });
  const path = join(dir, 'events.sock');
  const failures = { next: 3 };
  const { server, received } = await startEventsServer(path, failures);
  t.after(() => server.close());
  const logger = createTestLogger();
  const publisher = createPublisher({ address: path, namespace: 'ns', logger, backoffMs: 5, maxRetries: 2 });
  const dropped: string[] = [];
  publisher.on('dropped', (topic) => dropped.push(topic));
  publisher.publish(exitEvent(1));
  publisher.publish(exitEvent(2));
  await waitFor(() => received.length === 1);
  assert.deepEqual(dropped, ['/tasks/exit']);
  assert.equal(received[0]?.pid, 2);
  assert.ok(logger.entries.some((l) => l.level === 'error' && l.msg === 'event dropped'));
  await publisher.close(1000);
});

test('a full queue drops the newest event with a log line', async () => {
  const logger = createTestLogger();
  const publisher = createPublisher({ address: '/nonexistent/events.sock', namespace: 'ns', logger, maxQueued: 2, backoffMs: 1000 });
  const dropped: string[] = [];
  publisher.on('dropped', (topic) => dropped.push(topic));
  publisher.publish(exitEvent(1));
  publisher.publish(exitEvent(2));
  publisher.publish({ topic: '/tasks/delete', typeUrl: 'containerd.events.TaskDelete', message: { containerId: 'c' } });
  assert.deepEqual(dropped, ['/tasks/delete']);
  assert.equal(publisher.pending, 2);
  await publisher.close(10);
  assert.equal(publisher.pending, 0);
});
