import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import { criDefinitions, IMAGE_SERVICE, RUNTIME_SERVICE } from './client.js';
import { CONTAINERD_BINARY, criProtoOf, renderCriProto, VENDORED_CRI_PROTO, type FileDescriptor } from './proto-vendor.js';

test(`the vendored CRI proto is exactly what ${CONTAINERD_BINARY} embeds`, { skip: existsSync(CONTAINERD_BINARY) ? false : `${CONTAINERD_BINARY} is not installed` }, () => {
  assert.equal(readFileSync(VENDORED_CRI_PROTO, 'utf8'), criProtoOf(CONTAINERD_BINARY), 'regenerate with: node build/integration/cri/proto-vendor.js');
});

test('proto-loader loads the vendored file with every method the client calls', () => {
  const definitions = criDefinitions();
  const methods = (service: string): string[] => {
    const definition = definitions[service];
    assert.ok(definition !== undefined && !('format' in definition), `${service} is a service`);
    return Object.keys(definition);
  };
  const runtime = methods(RUNTIME_SERVICE);
  for (const name of ['Version', 'RunPodSandbox', 'StopPodSandbox', 'RemovePodSandbox', 'PodSandboxStatus', 'ListPodSandbox', 'CreateContainer', 'StartContainer', 'StopContainer', 'RemoveContainer', 'ContainerStatus', 'ListContainers', 'ExecSync']) {
    assert.ok(runtime.includes(name), `RuntimeService/${name}`);
  }
  assert.deepEqual(methods(IMAGE_SERVICE).sort(), ['ImageFsInfo', 'ImageStatus', 'ListImages', 'PullImage', 'RemoveImage']);
});

test('int64 nanosecond timestamps survive decoding exactly (longs as strings)', () => {
  const definition = criDefinitions()[RUNTIME_SERVICE];
  assert.ok(definition !== undefined && !('format' in definition));
  const method = definition['ContainerStatus'];
  assert.ok(method !== undefined);
  const nanos = '1700000000123456789'; // above 2^53: a JS number would round it
  const bytes = method.responseSerialize({ status: { id: 'c', created_at: nanos, exit_code: 3, state: 'CONTAINER_EXITED' } });
  const decoded = method.responseDeserialize(bytes) as { status: { created_at: string; exit_code: number; state: string } };
  assert.deepEqual([decoded.status.created_at, decoded.status.exit_code, decoded.status.state], [nanos, 3, 'CONTAINER_EXITED']);
});

test('the renderer writes maps, nested enums, streams and deprecated options as .proto source', () => {
  const file: FileDescriptor = {
    name: 'api.proto',
    package: 'runtime.v1',
    syntax: 'proto3',
    dependency: ['github.com/gogo/protobuf/gogoproto/gogo.proto'],
    service: [{ name: 'S', method: [{ name: 'Watch', inputType: '.runtime.v1.A', outputType: '.runtime.v1.A', serverStreaming: true }] }],
    messageType: [
      {
        name: 'A',
        nestedType: [{ name: 'LabelsEntry', options: { mapEntry: true }, field: [{ name: 'key', number: 1, type: 'TYPE_STRING' }, { name: 'value', number: 2, type: 'TYPE_STRING' }] }],
        enumType: [{ name: 'Kind', value: [{ name: 'ZERO', number: 0 }, { name: 'ONE', number: 1 }] }],
        field: [
          { name: 'labels', number: 1, label: 'LABEL_REPEATED', type: 'TYPE_MESSAGE', typeName: '.runtime.v1.A.LabelsEntry' },
          { name: 'ids', number: 2, label: 'LABEL_REPEATED', type: 'TYPE_STRING' },
          { name: 'old', number: 3, label: 'LABEL_OPTIONAL', type: 'TYPE_INT64', options: { deprecated: true } },
        ],
      },
    ],
  };
  const text = renderCriProto(file, '/x/containerd');
  assert.doesNotMatch(text, /^import /m, 'the gogoproto import is dropped');
  assert.ok(text.includes('rpc Watch(.runtime.v1.A) returns (stream .runtime.v1.A);'));
  assert.ok(text.includes('    map<string, string> labels = 1;'));
  assert.ok(text.includes('    repeated string ids = 2;'));
  assert.ok(text.includes('    int64 old = 3 [deprecated = true];'));
  assert.ok(text.includes('    enum Kind {\n        ZERO = 0;\n        ONE = 1;\n    }'));
  assert.throws(() => renderCriProto({ name: 'api.proto', messageType: [{ name: 'B', oneofDecl: [{}] }] }, 'x'), /oneof/);
});
