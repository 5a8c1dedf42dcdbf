// Wire-contract tests: bytes written out by hand from the field numbers and
// types in containerd's .proto files (containerd-shim-facts.md 1.4, 2.9, 2.10,
// 2.12, 2.15, 3.6). A wrong field number, wire type or package in protos/proto
// changes these bytes; a round trip alone would not notice.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { containerd, dateFromTimestamp, io, packAny, runtimeoptions, unpackAny } from './index.js';
import { fromHex, hex } from './testing.js';

// tag = field number << 3 | wire type (0 varint, 1 fixed64, 2 length-delimited).
describe('encoding matches hand-built bytes', () => {
  test('TaskExit{container_id:"c", id:"e", pid:7, exit_status:3}', () => {
    const bytes = containerd.events.TaskExit.encode({ containerId: 'c', id: 'e', pid: 7, exitStatus: 3 }).finish();
    assert.equal(hex(bytes), hex(fromHex('0a 01 63 12 01 65 18 07 20 03')));
  });

  test('TaskExit.exited_at is field 5', () => {
    const bytes = containerd.events.TaskExit.encode({ exitedAt: { seconds: 1, nanos: 2 } }).finish();
    assert.equal(hex(bytes), hex(fromHex('2a 04 08 01 10 02')));
  });

  test('DeleteResponse{pid:4242, exit_status:137, exited_at:{seconds:1700000000, nanos:5}}', () => {
    for (const ns of [containerd.task.v2, containerd.task.v3]) {
      const bytes = ns.DeleteResponse.encode({
        pid: 4242,
        exitStatus: 137,
        exitedAt: { seconds: 1700000000, nanos: 5 },
      }).finish();
      assert.equal(hex(bytes), hex(fromHex('08 92 21  10 89 01  1a 08 08 80 e2 cf aa 06 10 05')));
    }
  });

  test('StartResponse{pid:4242} and CreateTaskResponse{pid:4242}', () => {
    assert.equal(hex(containerd.task.v2.StartResponse.encode({ pid: 4242 }).finish()), '089221');
    assert.equal(hex(containerd.task.v3.CreateTaskResponse.encode({ pid: 4242 }).finish()), '089221');
  });

  test('StateResponse.status is field 4 (enum) and exec_id is field 11', () => {
    const bytes = containerd.task.v2.StateResponse.encode({
      status: containerd.v1.types.Status.RUNNING,
      execId: 'x',
    }).finish();
    assert.equal(hex(bytes), hex(fromHex('20 02  5a 01 78')));
  });

  test('KillRequest{id:"c", signal:9, all:true}', () => {
    assert.equal(
      hex(containerd.task.v2.KillRequest.encode({ id: 'c', signal: 9, all: true }).finish()),
      hex(fromHex('0a 01 63 18 09 20 01')),
    );
  });

  test('ConnectResponse{shim_pid:1, task_pid:2, version:"v"} and WaitResponse{exit_status:1, exited_at:{seconds:2}}', () => {
    assert.equal(
      hex(containerd.task.v3.ConnectResponse.encode({ shimPid: 1, taskPid: 2, version: 'v' }).finish()),
      '080110021a0176',
    );
    assert.equal(
      hex(containerd.task.v3.WaitResponse.encode({ exitStatus: 1, exitedAt: { seconds: 2 } }).finish()),
      '080112020802',
    );
  });

  test('ForwardRequest{envelope:{timestamp, namespace, topic, event}}', () => {
    const bytes = containerd.services.events.ttrpc.v1.ForwardRequest.encode({
      envelope: {
        timestamp: { seconds: 1 },
        namespace: 'n',
        topic: '/t',
        event: { type_url: 'e', value: new Uint8Array([0x0a, 0x00]) },
      },
    }).finish();
    assert.equal(hex(bytes), hex(fromHex('0a 14  0a 02 08 01  12 01 6e  1a 02 2f 74  22 07 0a 01 65 12 02 0a 00')));
  });

  test('runc Options{binary_name:"runc", systemd_cgroup:true, task_api_version:3}', () => {
    const bytes = containerd.runc.v1.Options.encode({
      binaryName: 'runc',
      systemdCgroup: true,
      taskApiVersion: 3,
    }).finish();
    assert.equal(hex(bytes), hex(fromHex('32 04 72 75 6e 63  48 01  68 03')));
  });

  test('BootstrapResult{version:3, address:"a", protocol:"ttrpc"}', () => {
    const bytes = containerd.runtime.bootstrap.v1.BootstrapResult.encode({
      version: 3,
      address: 'a',
      protocol: 'ttrpc',
    }).finish();
    assert.equal(hex(bytes), hex(fromHex('08 03  12 01 61  1a 05 74 74 72 70 63')));
  });

  test('UpdateTaskRequest.annotations is map<string,string> field 3', () => {
    const bytes = containerd.task.v2.UpdateTaskRequest.encode({ annotations: { k: 'v' } }).finish();
    assert.equal(hex(bytes), hex(fromHex('1a 06 0a 01 6b 12 01 76')));
  });

  test('cgroups: v2 CPUStat.nr_bursts/burst_usec are 8/9, v1 Metrics.memory_oom_control is 9', () => {
    assert.equal(hex(io.containerd.cgroups.v2.CPUStat.encode({ nrBursts: 1, burstUsec: 2 }).finish()), '40014802');
    assert.equal(
      hex(io.containerd.cgroups.v1.Metrics.encode({ memoryOomControl: { oomKill: 1 } }).finish()),
      '4a021801',
    );
    // CPUUsage.per_cpu is a packed repeated uint64 (proto3 default).
    assert.equal(hex(io.containerd.cgroups.v1.CPUUsage.encode({ perCpu: [1, 2] }).finish()), '22020102');
  });

  test('an Any packed by packAny carries the bare type URL', () => {
    const any = packAny('containerd.runc.v1.ProcessDetails', { execId: 'x' });
    const bytes = containerd.v1.types.ProcessInfo.encode({ pid: 5, info: any }).finish();
    const typeUrl = hex(new TextEncoder().encode('containerd.runc.v1.ProcessDetails'));
    assert.equal(hex(bytes), `0805` + `12` + '28' + `0a21${typeUrl}` + `1203` + '0a0178');
  });
});

describe('decoding bytes as containerd sends them', () => {
  test('CreateTaskRequest{id, bundle, rootfs:[{type:"bind"}], options:Any} (options is field 10)', () => {
    for (const ns of [containerd.task.v2, containerd.task.v3]) {
      const request = ns.CreateTaskRequest.decode(
        fromHex('0a 02 63 31  12 02 2f 62  1a 06 0a 04 62 69 6e 64  52 06 0a 01 78 12 01 01'),
      );
      assert.equal(request.id, 'c1');
      assert.equal(request.bundle, '/b');
      assert.equal(request.rootfs[0]?.type, 'bind');
      assert.equal(request.options?.type_url, 'x');
      assert.deepEqual([...(request.options.value ?? new Uint8Array(0))], [1]);
    }
  });

  test('CreateTaskRequest options from ctr: an Any typed containerd.runc.v1.Options', () => {
    // options = Any{type_url:"containerd.runc.v1.Options", value: Options{binary_name:"runc"}}
    const typeUrl = hex(new TextEncoder().encode('containerd.runc.v1.Options'));
    const request = containerd.task.v2.CreateTaskRequest.decode(
      fromHex(`52 24 0a 1a ${typeUrl} 12 06 32 04 72 75 6e 63`),
    );
    const unpacked = unpackAny(request.options ?? {});
    assert.equal(unpacked.typeUrl, 'containerd.runc.v1.Options');
    assert.equal(unpacked.message.binaryName, 'runc');
  });

  test('DeleteResponse from a Go shim decodes to pid, exit status and time', () => {
    const response = containerd.task.v2.DeleteResponse.decode(
      fromHex('08 92 21  10 89 01  1a 08 08 80 e2 cf aa 06 10 05'),
    );
    assert.equal(response.pid, 4242);
    assert.equal(response.exitStatus, 137);
    assert.deepEqual(dateFromTimestamp(response.exitedAt ?? {}), new Date(1700000000 * 1000));
  });

  test('runtimeoptions.v1.Options{config_path:"/c"} from CRI', () => {
    assert.equal(runtimeoptions.v1.Options.decode(fromHex('12 02 2f 63')).configPath, '/c');
  });

  test('fields from a newer containerd that this contract lacks are skipped, not an error', () => {
    // CreateTaskRequest{id:"c"} plus a field 11 string that this contract does not define.
    const decoded = containerd.task.v2.CreateTaskRequest.decode(fromHex('0a 01 63  5a 02 2f 6f'));
    assert.equal(decoded.id, 'c');
    // protobufjs drops unknown fields unless its Reader is told to keep them.
    assert.equal(hex(containerd.task.v2.CreateTaskRequest.encode(decoded).finish()), '0a0163');
  });
});
