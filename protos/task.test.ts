import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { containerd, packAny, timestampFromDate } from './index.js';
import { assertRoundTrip, hex, type MessageCodec } from './testing.js';

// The message classes of a Task API package (the service class differs by name).
type TaskPackage = Omit<typeof containerd.task.v2, 'Task'>;

const exitedAt = timestampFromDate(new Date('2026-05-01T12:34:56.789Z'));
const runcOptions = packAny('containerd.runc.v1.Options', { binaryName: 'runc', root: '/run/containerd/runc' });
const rootfs = [
  { type: 'overlay', source: 'overlay', target: '/rootfs', options: ['lowerdir=/l', 'upperdir=/u', 'workdir=/w'] },
  { type: 'bind', source: '/src', target: '/dst', options: ['rbind', 'ro'] },
];

// One message with a non-default value in every field, for each request and
// response of the Task service; `ns` is containerd.task.v2 or containerd.task.v3.
function taskFixtures(ns: TaskPackage): [string, MessageCodec<never, unknown>, unknown][] {
  const fixture = <P, M>(
    name: string,
    type: MessageCodec<P, M>,
    input: P,
  ): [string, MessageCodec<never, unknown>, unknown] => [name, type, input];
  return [
    fixture('CreateTaskRequest', ns.CreateTaskRequest, {
      id: 'c1',
      bundle: '/run/containerd/io.containerd.runtime.v2.task/default/c1',
      rootfs,
      terminal: true,
      stdin: '/run/containerd/fifo/1/c1-stdin',
      stdout: '/run/containerd/fifo/1/c1-stdout',
      stderr: '/run/containerd/fifo/1/c1-stderr',
      checkpoint: '/var/lib/checkpoint',
      parentCheckpoint: '/var/lib/parent',
      options: runcOptions,
    }),
    fixture('CreateTaskResponse', ns.CreateTaskResponse, { pid: 4242 }),
    fixture('DeleteRequest', ns.DeleteRequest, { id: 'c1', execId: 'x1' }),
    fixture('DeleteResponse', ns.DeleteResponse, { pid: 4242, exitStatus: 137, exitedAt }),
    fixture('ExecProcessRequest', ns.ExecProcessRequest, {
      id: 'c1',
      execId: 'x1',
      terminal: true,
      stdin: 'in',
      stdout: 'out',
      stderr: 'err',
      spec: {
        type_url: 'types.containerd.io/opencontainers/runtime-spec/1/Process',
        value: new TextEncoder().encode('{"args":["sh"]}'),
      },
    }),
    fixture('ExecProcessResponse', ns.ExecProcessResponse, {}),
    fixture('ResizePtyRequest', ns.ResizePtyRequest, { id: 'c1', execId: 'x1', width: 132, height: 43 }),
    fixture('StateRequest', ns.StateRequest, { id: 'c1', execId: 'x1' }),
    fixture('StateResponse', ns.StateResponse, {
      id: 'c1',
      bundle: '/b',
      pid: 4242,
      status: containerd.v1.types.Status.PAUSING,
      stdin: 'in',
      stdout: 'out',
      stderr: 'err',
      terminal: true,
      exitStatus: 3,
      exitedAt,
      execId: 'x1',
    }),
    fixture('KillRequest', ns.KillRequest, { id: 'c1', execId: 'x1', signal: 15, all: true }),
    fixture('CloseIORequest', ns.CloseIORequest, { id: 'c1', execId: 'x1', stdin: true }),
    fixture('PidsRequest', ns.PidsRequest, { id: 'c1' }),
    fixture('PidsResponse', ns.PidsResponse, {
      processes: [
        { pid: 1, info: packAny('containerd.runc.v1.ProcessDetails', { execId: 'x1' }) },
        { pid: 2, info: packAny('containerd.runc.v1.ProcessDetails', { execId: 'x2' }) },
      ],
    }),
    fixture('CheckpointTaskRequest', ns.CheckpointTaskRequest, {
      id: 'c1',
      path: '/ckpt',
      options: packAny('containerd.runc.v1.CheckpointOptions', { exit: true }),
    }),
    fixture('UpdateTaskRequest', ns.UpdateTaskRequest, {
      id: 'c1',
      resources: {
        type_url: 'types.containerd.io/opencontainers/runtime-spec/1/LinuxResources',
        value: new Uint8Array([0x7b, 0x7d]),
      },
      annotations: { 'io.kubernetes.cri.container-type': 'container', b: 'c' },
    }),
    fixture('StartRequest', ns.StartRequest, { id: 'c1', execId: 'x1' }),
    fixture('StartResponse', ns.StartResponse, { pid: 4242 }),
    fixture('WaitRequest', ns.WaitRequest, { id: 'c1', execId: 'x1' }),
    fixture('WaitResponse', ns.WaitResponse, { exitStatus: 255, exitedAt }),
    fixture('StatsRequest', ns.StatsRequest, { id: 'c1' }),
    fixture('StatsResponse', ns.StatsResponse, {
      stats: packAny('io.containerd.cgroups.v2.Metrics', { pids: { current: 3, limit: 100 } }),
    }),
    fixture('ConnectRequest', ns.ConnectRequest, { id: 'c1' }),
    fixture('ConnectResponse', ns.ConnectResponse, { shimPid: 100, taskPid: 4242, version: '1' }),
    fixture('ShutdownRequest', ns.ShutdownRequest, { id: 'c1', now: true }),
    fixture('PauseRequest', ns.PauseRequest, { id: 'c1' }),
    fixture('ResumeRequest', ns.ResumeRequest, { id: 'c1' }),
  ];
}

for (const [version, ns] of [
  ['v2', containerd.task.v2],
  ['v3', containerd.task.v3],
] as const) {
  describe(`containerd.task.${version} messages round-trip`, () => {
    for (const [name, type, input] of taskFixtures(ns)) {
      test(name, () => {
        assertRoundTrip(type, input as never);
      });
    }
  });
}

test('task v2 and v3 put the same bytes on the wire for the same message', () => {
  const v2 = taskFixtures(containerd.task.v2);
  const v3 = taskFixtures(containerd.task.v3);
  assert.equal(v2.length, v3.length);
  v2.forEach(([name, type, input], index) => {
    const [name3, type3, input3] = v3[index]!;
    assert.equal(name3, name);
    assert.equal(hex(type3.encode(input3 as never).finish()), hex(type.encode(input as never).finish()), name);
  });
});

describe('Task service', () => {
  const methodsOf = (prototype: object): { name: string; path: string; requestType: string; responseType: string }[] =>
    Object.keys(prototype).map((key) => {
      const method: unknown = Reflect.get(prototype, key);
      assert.equal(typeof method, 'function', key);
      const field = (property: string): string => String(Reflect.get(method as object, property));
      return {
        name: field('name'),
        path: field('path'),
        requestType: field('requestType'),
        responseType: field('responseType'),
      };
    });

  const expected = [
    ['State', 'StateRequest', 'StateResponse'],
    ['Create', 'CreateTaskRequest', 'CreateTaskResponse'],
    ['Start', 'StartRequest', 'StartResponse'],
    ['Delete', 'DeleteRequest', 'DeleteResponse'],
    ['Pids', 'PidsRequest', 'PidsResponse'],
    ['Pause', 'PauseRequest', 'google.protobuf.Empty'],
    ['Resume', 'ResumeRequest', 'google.protobuf.Empty'],
    ['Checkpoint', 'CheckpointTaskRequest', 'google.protobuf.Empty'],
    ['Kill', 'KillRequest', 'google.protobuf.Empty'],
    ['Exec', 'ExecProcessRequest', 'google.protobuf.Empty'],
    ['ResizePty', 'ResizePtyRequest', 'google.protobuf.Empty'],
    ['CloseIO', 'CloseIORequest', 'google.protobuf.Empty'],
    ['Update', 'UpdateTaskRequest', 'google.protobuf.Empty'],
    ['Wait', 'WaitRequest', 'WaitResponse'],
    ['Stats', 'StatsRequest', 'StatsResponse'],
    ['Connect', 'ConnectRequest', 'ConnectResponse'],
    ['Shutdown', 'ShutdownRequest', 'google.protobuf.Empty'],
  ] as const;

  test('v2 declares the 17 methods of containerd.task.v2.Task', () => {
    const methods = methodsOf(containerd.task.v2.Task.prototype);
    assert.deepEqual(
      methods,
      expected.map(([name, requestType, responseType]) => ({
        name,
        path: `/containerd.task.v2.Task/${name}`,
        requestType,
        responseType,
      })),
    );
  });

  test('v3 declares the same 17 methods, under containerd.task.v3.Task', () => {
    const v2 = methodsOf(containerd.task.v2.Task.prototype);
    const v3 = methodsOf(containerd.task.v3.Task.prototype);
    assert.equal(v3.length, 17);
    assert.deepEqual(
      v3,
      v2.map((method) => ({
        ...method,
        path: method.path.replace('containerd.task.v2.Task', 'containerd.task.v3.Task'),
      })),
    );
  });

  test('each method encodes its own package request type and decodes its response type', async () => {
    for (const [version, ns] of [
      ['v2', containerd.task.v2],
      ['v3', containerd.task.v3],
    ] as const) {
      const calls: string[] = [];
      const service = ns.Task.create((method, requestData, callback) => {
        const name = 'name' in method ? method.name : '';
        calls.push(`${name}:${hex(requestData)}`);
        // Answer with an empty response: every response type decodes it.
        callback(null, new Uint8Array(0));
      });
      const response = await service.start({ id: 'c1', execId: 'x1' });
      assert.ok(response instanceof ns.StartResponse, version);
      await service.shutdown({ id: 'c1', now: true });
      // StartRequest{id:"c1", exec_id:"x1"} and ShutdownRequest{id:"c1", now:true}.
      assert.deepEqual(calls, ['Start:0a02633112027831', 'Shutdown:0a0263311001'], version);
    }
  });
});
