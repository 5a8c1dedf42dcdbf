import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  containerd,
  dateFromTimestamp,
  packAny,
  timestampFromDate,
  unpackAny,
  type PropertiesOf,
  type TypeUrl,
} from './index.js';
import { assertRoundTrip, hex, plain } from './testing.js';

const exitedAt = timestampFromDate(new Date('2026-05-01T12:34:56.789Z'));

// Every task event with a non-default value in every field, by type URL.
const events = {
  'containerd.events.TaskCreate': {
    containerId: 'c1',
    bundle: '/run/containerd/io.containerd.runtime.v2.task/default/c1',
    rootfs: [{ type: 'overlay', source: 'overlay', target: '/rootfs', options: ['lowerdir=/l'] }],
    io: { stdin: 'in', stdout: 'out', stderr: 'err', terminal: true },
    checkpoint: '/ckpt',
    pid: 4242,
  },
  'containerd.events.TaskStart': { containerId: 'c1', pid: 4242 },
  'containerd.events.TaskDelete': { containerId: 'c1', pid: 4242, exitStatus: 137, exitedAt, id: 'x1' },
  'containerd.events.TaskExit': { containerId: 'c1', id: 'x1', pid: 4243, exitStatus: 3, exitedAt },
  'containerd.events.TaskOOM': { containerId: 'c1' },
  'containerd.events.TaskExecAdded': { containerId: 'c1', execId: 'x1' },
  'containerd.events.TaskExecStarted': { containerId: 'c1', execId: 'x1', pid: 4243 },
  'containerd.events.TaskPaused': { containerId: 'c1' },
  'containerd.events.TaskResumed': { containerId: 'c1' },
  'containerd.events.TaskCheckpointed': { containerId: 'c1', checkpoint: '/ckpt' },
} satisfies { [U in Extract<TypeUrl, `containerd.events.${string}`>]: PropertiesOf<U> };

describe('containerd.events messages round-trip', () => {
  test('TaskCreate (with Mount and TaskIO)', () => {
    assertRoundTrip(containerd.events.TaskCreate, events['containerd.events.TaskCreate']);
  });
  test('TaskStart', () => {
    assertRoundTrip(containerd.events.TaskStart, events['containerd.events.TaskStart']);
  });
  test('TaskDelete', () => {
    assertRoundTrip(containerd.events.TaskDelete, events['containerd.events.TaskDelete']);
  });
  test('TaskIO', () => {
    assertRoundTrip(containerd.events.TaskIO, { stdin: 'in', stdout: 'out', stderr: 'err', terminal: true });
  });
  test('TaskExit', () => {
    assertRoundTrip(containerd.events.TaskExit, events['containerd.events.TaskExit']);
  });
  test('TaskOOM', () => {
    assertRoundTrip(containerd.events.TaskOOM, events['containerd.events.TaskOOM']);
  });
  test('TaskExecAdded', () => {
    assertRoundTrip(containerd.events.TaskExecAdded, events['containerd.events.TaskExecAdded']);
  });
  test('TaskExecStarted', () => {
    assertRoundTrip(containerd.events.TaskExecStarted, events['containerd.events.TaskExecStarted']);
  });
  test('TaskPaused', () => {
    assertRoundTrip(containerd.events.TaskPaused, events['containerd.events.TaskPaused']);
  });
  test('TaskResumed', () => {
    assertRoundTrip(containerd.events.TaskResumed, events['containerd.events.TaskResumed']);
  });
  test('TaskCheckpointed', () => {
    assertRoundTrip(containerd.events.TaskCheckpointed, events['containerd.events.TaskCheckpointed']);
  });
});

describe('Envelope and Events.Forward', () => {
  const envelope = {
    timestamp: timestampFromDate(new Date('2026-05-01T12:34:57.001Z')),
    namespace: 'k8s.io',
    topic: '/tasks/exit',
    event: packAny('containerd.events.TaskExit', events['containerd.events.TaskExit']),
  };

  test('Envelope round-trips with the event packed in an Any with a bare type URL', () => {
    assertRoundTrip(containerd.types.Envelope, envelope);
    assert.equal(envelope.event.type_url, 'containerd.events.TaskExit');
  });

  test('ForwardRequest round-trips and its event unpacks to the TaskExit that was sent', () => {
    assertRoundTrip(containerd.services.events.ttrpc.v1.ForwardRequest, { envelope });
    const bytes = containerd.services.events.ttrpc.v1.ForwardRequest.encode({ envelope }).finish();
    const forwarded = containerd.services.events.ttrpc.v1.ForwardRequest.decode(bytes);
    assert.ok(forwarded.envelope?.event);
    assert.equal(forwarded.envelope.topic, '/tasks/exit');
    assert.deepEqual(dateFromTimestamp(forwarded.envelope.timestamp ?? {}), new Date('2026-05-01T12:34:57.001Z'));
    const unpacked = unpackAny(forwarded.envelope.event);
    assert.equal(unpacked.typeUrl, 'containerd.events.TaskExit');
    assert.deepEqual(plain(unpacked.message), plain(events['containerd.events.TaskExit']));
  });

  test('every task event packs and unpacks through an Any', () => {
    for (const [typeUrl, event] of Object.entries(events)) {
      const any = packAny(typeUrl as keyof typeof events, event);
      assert.equal(any.type_url, typeUrl);
      const unpacked = unpackAny(any);
      assert.equal(unpacked.typeUrl, typeUrl);
      assert.deepEqual(plain(unpacked.message), plain(event), typeUrl);
    }
  });

  test('Events service declares Forward(ForwardRequest) returns (google.protobuf.Empty)', async () => {
    const prototype = containerd.services.events.ttrpc.v1.Events.prototype;
    assert.deepEqual(Object.keys(prototype), ['forward']);
    assert.equal(prototype.forward.name, 'Forward');
    assert.equal(prototype.forward.path, '/containerd.services.events.ttrpc.v1.Events/Forward');
    assert.equal(prototype.forward.requestType, 'ForwardRequest');
    assert.equal(prototype.forward.responseType, 'google.protobuf.Empty');

    let sent = '';
    const client = containerd.services.events.ttrpc.v1.Events.create((_method, requestData, callback) => {
      sent = hex(requestData);
      callback(null, new Uint8Array(0));
    });
    await client.forward({ envelope });
    assert.equal(sent, hex(containerd.services.events.ttrpc.v1.ForwardRequest.encode({ envelope }).finish()));
  });
});
