/**
 * Interop with a real peer (issue 2): our ttrpc client (ttrpc/) sends a task event envelope
 * built with our protos (protos/) to containerd 1.6's ttrpc socket, exactly as a shim
 * publishes events (`containerd.services.events.ttrpc.v1.Events/Forward` on TTRPC_ADDRESS),
 * and containerd's gRPC event stream, decoded with containerd's own .proto files, proves it
 * was accepted and re-published unchanged.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { containerd as api, google, packAny, timestampFromDate } from '../protos/index.js';
import { Code, TtrpcError, connect, type TtrpcClient } from '../ttrpc/index.js';
import { createContainerdGrpcClient, decodeAny, encodeAny, useContainerd, type ContainerdGrpcClient, type Envelope } from './harness/index.js';

const EVENTS_TTRPC_SERVICE = 'containerd.services.events.ttrpc.v1.Events';
const TASK_EXIT = 'containerd.events.TaskExit';

describe('Events/Forward over ttrpc to containerd 1.6', () => {
  const containerd = useContainerd({ logLevel: 'debug' });
  let ttrpc: TtrpcClient;
  let grpc: ContainerdGrpcClient;

  before(async () => {
    ttrpc = await connect(containerd().ttrpcAddress);
    grpc = createContainerdGrpcClient(containerd().address, 'default');
  });
  after(async () => {
    grpc.close();
    await ttrpc.close();
  });

  /** Sends a ForwardRequest as a shim does; resolves to the response bytes (a google.protobuf.Empty). */
  async function forward(envelope: api.types.Envelope.$Properties): Promise<Uint8Array> {
    const request = api.services.events.ttrpc.v1.ForwardRequest.encode({ envelope }).finish();
    return ttrpc.call(EVENTS_TTRPC_SERVICE, 'Forward', request, { timeoutMs: 5_000 });
  }

  function taskExit(containerId: string, exitStatus: number, exitedAt: Date): google.protobuf.Any {
    return packAny(TASK_EXIT, { containerId, id: containerId, pid: 4242, exitStatus, exitedAt: timestampFromDate(exitedAt) });
  }

  function exitOf(containerId: string): (envelope: Envelope) => boolean {
    return (envelope) => envelope.event !== null && envelope.event.type_url.endsWith(TASK_EXIT) && decodeAny(envelope.event)['container_id'] === containerId;
  }

  test('a TaskExit envelope is accepted and re-published with its timestamp, namespace, topic and fields', async () => {
    const subscription = await grpc.subscribe(['topic=="/tasks/exit"']);
    try {
      const timestamp = timestampFromDate(new Date('2026-01-02T03:04:05.678Z'));
      const exitedAt = new Date('2026-01-02T03:04:05.600Z');
      const response = await forward({ timestamp, namespace: 'default', topic: '/tasks/exit', event: taskExit('fwd-1', 3, exitedAt) });
      // google.protobuf.Empty: no fields, so no bytes.
      assert.equal(response.length, 0);
      assert.ok(google.protobuf.Empty.decode(response) instanceof google.protobuf.Empty);

      const envelope = await subscription.waitFor(exitOf('fwd-1'));
      assert.equal(envelope.namespace, 'default');
      assert.equal(envelope.topic, '/tasks/exit');
      assert.deepEqual(envelope.timestamp, { seconds: Math.floor(Date.parse('2026-01-02T03:04:05Z') / 1000), nanos: 678_000_000 });
      assert.equal(envelope.event?.type_url, TASK_EXIT);
      assert.deepEqual(decodeAny(envelope.event), {
        container_id: 'fwd-1',
        id: 'fwd-1',
        pid: 4242,
        exit_status: 3,
        exited_at: { seconds: Math.floor(exitedAt.getTime() / 1000), nanos: 600_000_000 },
      });
    } finally {
      subscription.close();
    }
  });

  test('twenty forwards on one connection arrive in the order they were sent', async () => {
    const subscription = await grpc.subscribe(['namespace==default,topic=="/tasks/exit"']);
    try {
      const ids = Array.from({ length: 20 }, (_, i) => `order-${i}`);
      for (const [i, id] of ids.entries()) {
        await forward({ timestamp: timestampFromDate(new Date()), namespace: 'default', topic: '/tasks/exit', event: taskExit(id, i, new Date()) });
      }
      for (const id of ids) await subscription.waitFor(exitOf(id));
      const order = subscription.received.map((e) => decodeAny(e.event!)['container_id']).filter((id) => typeof id === 'string' && id.startsWith('order-'));
      assert.deepEqual(order, ids);
    } finally {
      subscription.close();
    }
  });

  test('the namespace of the envelope, not of the connection, is the one containerd publishes under', async () => {
    const subscription = await grpc.subscribe(['namespace==other-ns']);
    try {
      await forward({ timestamp: timestampFromDate(new Date()), namespace: 'other-ns', topic: '/tasks/exit', event: taskExit('ns-1', 0, new Date()) });
      const envelope = await subscription.waitFor(exitOf('ns-1'));
      assert.equal(envelope.namespace, 'other-ns');
    } finally {
      subscription.close();
    }
  });

  async function rejected(envelope: api.types.Envelope.$Properties): Promise<TtrpcError> {
    try {
      await forward(envelope);
    } catch (error) {
      assert.ok(error instanceof TtrpcError, `expected a TtrpcError, got ${String(error)}`);
      return error;
    }
    assert.fail('containerd accepted an invalid envelope');
  }

  test('invalid envelopes are InvalidArgument with containerd saying why, and the connection stays usable', async () => {
    const event = taskExit('bad', 0, new Date());
    const now = timestampFromDate(new Date());

    const noTimestamp = await rejected({ namespace: 'default', topic: '/tasks/exit', event });
    assert.equal(noTimestamp.code, Code.InvalidArgument);
    assert.match(noTimestamp.message, /timestamp must be set on forwarded event/);

    const relativeTopic = await rejected({ timestamp: now, namespace: 'default', topic: 'tasks/exit', event });
    assert.equal(relativeTopic.code, Code.InvalidArgument);
    assert.match(relativeTopic.message, /must start with '\/'/);

    const noNamespace = await rejected({ timestamp: now, namespace: '', topic: '/tasks/exit', event });
    assert.equal(noNamespace.code, Code.InvalidArgument);
    assert.match(noNamespace.message, /invalid namespace/);

    const badNamespace = await rejected({ timestamp: now, namespace: 'no/slashes', topic: '/tasks/exit', event });
    assert.equal(badNamespace.code, Code.InvalidArgument);

    assert.equal(ttrpc.isClosed, false);
    const subscription = await grpc.subscribe(['topic=="/tasks/exit"']);
    try {
      await forward({ timestamp: now, namespace: 'default', topic: '/tasks/exit', event: taskExit('after-errors', 0, new Date()) });
      await subscription.waitFor(exitOf('after-errors'));
    } finally {
      subscription.close();
    }
  });

  test('type URLs: Forward passes any URL through, but 1.6 consumers only decode the bare name', async () => {
    // `ctr events` decodes each Any with containerd 1.6's typeurl, as containerd's own
    // subscribers (the CRI event monitor) do.
    const events = startCtrEvents(containerd().address);
    const subscription = await grpc.subscribe(['topic=="/tasks/exit"']);
    try {
      await events.ready(grpc);
      const bare = taskExit('url-bare', 1, new Date());
      const prefixed = { type_url: `type.googleapis.com/${TASK_EXIT}`, value: bare.value };
      const now = timestampFromDate(new Date());
      await forward({ timestamp: now, namespace: 'default', topic: '/tasks/exit', event: bare });
      await forward({ timestamp: now, namespace: 'default', topic: '/tasks/exit', event: { ...prefixed, value: taskExit('url-prefixed', 2, new Date()).value } });

      // containerd accepted both and re-published each URL verbatim.
      assert.equal((await subscription.waitFor(exitOf('url-bare'))).event?.type_url, TASK_EXIT);
      assert.equal((await subscription.waitFor(exitOf('url-prefixed'))).event?.type_url, `type.googleapis.com/${TASK_EXIT}`);

      // The bare one decodes; the prefixed one is dropped with "type with url ...: not found".
      await events.waitFor(() => events.stdout.includes('"container_id":"url-bare"'));
      await events.waitFor(() => events.stderr.includes(`type with url type.googleapis.com/${TASK_EXIT}: not found`));
      assert.doesNotMatch(events.stdout, /url-prefixed/);
    } finally {
      subscription.close();
      events.stop();
    }
  });
});

interface CtrEvents {
  readonly stdout: string;
  readonly stderr: string;
  /** Resolves once `ctr events` prints events (probed with decodable TaskOOM events). */
  ready(grpc: ContainerdGrpcClient): Promise<void>;
  waitFor(condition: () => boolean, timeoutMs?: number): Promise<void>;
  stop(): void;
}

function startCtrEvents(address: string): CtrEvents {
  const child: ChildProcess = spawn('ctr', ['--address', address, 'events'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const waitFor = async (condition: () => boolean, timeoutMs = 5_000): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    while (!condition()) {
      if (Date.now() > deadline) throw new Error(`ctr events did not print what was expected within ${timeoutMs} ms.\nstdout:\n${stdout}\nstderr:\n${stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };
  return {
    get stdout() {
      return stdout;
    },
    get stderr() {
      return stderr;
    },
    async ready(grpc) {
      // ctr prints nothing when its subscription starts: publish until one comes out.
      const deadline = Date.now() + 5_000;
      for (let n = 0; !stdout.includes('ctr-events-probe'); n++) {
        if (Date.now() > deadline) throw new Error(`ctr events printed no probe event within 5 s:\n${stderr}`);
        await grpc.publish('/tsrun/probe', encodeAny('containerd.events.TaskOOM', { container_id: `ctr-events-probe-${n}` }));
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    },
    waitFor,
    stop() {
      child.kill('SIGKILL');
    },
  };
}
