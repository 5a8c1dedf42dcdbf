// Checks protos/proto against the real peer on this machine: Go binaries embed
// the gzipped FileDescriptorProto of every .proto they were built from
// (gogo's proto.RegisterFile). This test pulls those out of containerd's own
// binaries (Debian's 1.6.20 here and in CI) and asserts that every message,
// field (name, number, label, type), enum value and service method they define
// exists identically in protos/proto. Fields containerd added after 1.6.20 are
// listed explicitly below, so an unverified addition cannot slip in.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync, constants as zlib } from 'node:zlib';
import protobuf from 'protobufjs';
import descriptor, {
  type IDescriptorProto,
  type IEnumDescriptorProto,
  type IFieldDescriptorProto,
  type IFileDescriptorProto,
} from 'protobufjs/ext/descriptor.js';

const protoDir = fileURLToPath(new URL('../../protos/proto/', import.meta.url));

// The files of containerd 1.6.20 this contract covers, by the name they were registered under.
const CONTRACT_FILES = [
  'github.com/containerd/containerd/api/types/mount.proto',
  'github.com/containerd/containerd/api/types/task/task.proto',
  'github.com/containerd/containerd/api/events/task.proto',
  'github.com/containerd/containerd/api/services/ttrpc/events/v1/events.proto',
  'github.com/containerd/containerd/runtime/v2/task/shim.proto',
  'github.com/containerd/containerd/runtime/v2/runc/options/oci.proto',
  'github.com/containerd/containerd/pkg/runtimeoptions/v1/api.proto',
  'github.com/containerd/cgroups/stats/v1/metrics.proto',
  'github.com/containerd/cgroups/v2/stats/metrics.proto',
];

// Fields this contract has that containerd 1.6.20 does not (added in 1.7 / 2.x).
const ADDED_SINCE_1_6_20 = [
  '.containerd.runc.v1.Options.task_api_address = 12',
  '.containerd.runc.v1.Options.task_api_version = 13',
  '.runtimeoptions.v1.Options.config_body = 3',
  '.io.containerd.cgroups.v2.Metrics.network = 9',
  '.io.containerd.cgroups.v2.CPUStat.psi = 7',
  '.io.containerd.cgroups.v2.CPUStat.nr_bursts = 8',
  '.io.containerd.cgroups.v2.CPUStat.burst_usec = 9',
  '.io.containerd.cgroups.v2.MemoryStat.max_usage = 36',
  '.io.containerd.cgroups.v2.MemoryStat.swap_max_usage = 37',
  '.io.containerd.cgroups.v2.MemoryStat.psi = 38',
  '.io.containerd.cgroups.v2.IOStat.psi = 2',
];

// google.protobuf.FieldDescriptorProto.Type / Label numbers.
const SCALAR_TYPES: Record<number, string> = {
  1: 'double',
  2: 'float',
  3: 'int64',
  4: 'uint64',
  5: 'int32',
  6: 'fixed64',
  7: 'fixed32',
  8: 'bool',
  9: 'string',
  12: 'bytes',
  13: 'uint32',
  15: 'sfixed32',
  16: 'sfixed64',
  17: 'sint32',
  18: 'sint64',
};
const TYPE_MESSAGE = 11;
const TYPE_ENUM = 14;
const LABEL_REPEATED = 3;

function findOnPath(name: string): string | undefined {
  const dirs = (process.env['PATH'] ?? '').split(delimiter).concat(['/usr/bin', '/usr/local/bin']);
  return dirs.map((dir) => join(dir, name)).find((path) => existsSync(path));
}

// Every gzipped FileDescriptorProto in a Go binary, by registered file name.
function embeddedDescriptors(binary: string): Map<string, IFileDescriptorProto> {
  const bytes = readFileSync(binary);
  const gzipHeader = Buffer.from([0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0]);
  const files = new Map<string, IFileDescriptorProto>();
  for (let at = bytes.indexOf(gzipHeader); at !== -1; at = bytes.indexOf(gzipHeader, at + 1)) {
    let file: IFileDescriptorProto;
    try {
      const raw = gunzipSync(bytes.subarray(at, at + (1 << 20)), { finishFlush: zlib.Z_SYNC_FLUSH });
      file = descriptor.FileDescriptorProto.toObject(descriptor.FileDescriptorProto.decode(raw), { enums: Number });
    } catch {
      continue; // bytes that merely look like a gzip header
    }
    if (file.name?.endsWith('.proto') === true) files.set(file.name, file);
  }
  return files;
}

function loadContract(): protobuf.Root {
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => join(protoDir, target);
  const files = [
    'containerd/types/mount.proto',
    'containerd/types/event.proto',
    'containerd/types/task/task.proto',
    'containerd/events/task.proto',
    'containerd/services/ttrpc/events/v1/events.proto',
    'containerd/runtime/task/v2/shim.proto',
    'containerd/runtime/task/v3/shim.proto',
    'containerd/types/runc/options/oci.proto',
    'containerd/types/runtimeoptions/v1/api.proto',
    'cgroups/cgroup1/stats/metrics.proto',
    'cgroups/cgroup2/stats/metrics.proto',
  ];
  root.loadSync(files, { keepCase: true });
  root.resolveAll();
  return root;
}

// Our names for a type of containerd 1.6.20: the same bytes on the wire, maybe another name.
function oursFor(theirName: string): string[] {
  // Inline in 1.6.20's events.proto; api/types/event.proto from 1.7 on.
  if (theirName === '.containerd.services.events.ttrpc.v1.Envelope') return ['.containerd.types.Envelope'];
  // Task API v3 is v2 under another package (containerd 2.x).
  if (theirName.startsWith('.containerd.task.v2.')) {
    return [theirName, theirName.replace('.containerd.task.v2.', '.containerd.task.v3.')];
  }
  return [theirName];
}

// Our name for a type a service in package `ourService`'s package refers to.
function oursInPackageOf(ourService: string, theirName: string): string {
  const candidates = oursFor(theirName);
  const ourPackage = ourService.slice(0, ourService.lastIndexOf('.') + 1);
  return candidates.find((name) => name.startsWith(ourPackage)) ?? candidates[0] ?? theirName;
}

// How a field reads in both worlds: "repeated .containerd.types.Mount", "map<string,string>", "uint64".
function theirFieldType(field: IFieldDescriptorProto, nested: Map<string, IDescriptorProto>): string {
  const label = field.label === LABEL_REPEATED ? 'repeated ' : '';
  if (field.type === TYPE_MESSAGE || field.type === TYPE_ENUM) {
    const entry = nested.get(field.typeName ?? '');
    if (entry?.options?.mapEntry === true) {
      const [key, value] = entry.field ?? [];
      return `map<${theirFieldType(key ?? {}, nested)},${theirFieldType(value ?? {}, nested)}>`;
    }
    return `${label}${oursFor(field.typeName ?? '')[0] ?? ''}`;
  }
  return `${label}${SCALAR_TYPES[field.type ?? 0] ?? `type ${field.type ?? 0}`}`;
}

function ourFieldType(field: protobuf.Field): string {
  const named = (type: string, resolved: protobuf.Type | protobuf.Enum | null): string =>
    resolved ? resolved.fullName : type;
  if (field instanceof protobuf.MapField) return `map<${field.keyType},${named(field.type, field.resolvedType)}>`;
  return `${field.repeated ? 'repeated ' : ''}${named(field.type, field.resolvedType)}`;
}

// Messages of a file, nested ones included, by full name.
function messagesOf(
  prefix: string,
  types: IDescriptorProto[] | undefined,
  into: Map<string, IDescriptorProto>,
): Map<string, IDescriptorProto> {
  for (const type of types ?? []) {
    const name = `${prefix}.${type.name ?? ''}`;
    into.set(name, type);
    messagesOf(name, type.nestedType, into);
  }
  return into;
}

function enumsOf(file: IFileDescriptorProto): Map<string, IEnumDescriptorProto> {
  return new Map((file.enumType ?? []).map((type) => [`.${file.package ?? ''}.${type.name ?? ''}`, type]));
}

const shim = findOnPath('containerd-shim-runc-v2');
const daemon = findOnPath('containerd');
const skip =
  shim === undefined || daemon === undefined ? 'containerd binaries not installed (apt install containerd)' : false;

describe('protos/proto agrees with the descriptors compiled into containerd 1.6.20', { skip }, () => {
  // Node runs a skipped suite's body too (to list its tests): read nothing then.
  const theirs =
    shim !== undefined && daemon !== undefined
      ? new Map([...embeddedDescriptors(daemon), ...embeddedDescriptors(shim)])
      : new Map<string, IFileDescriptorProto>();
  const ours = skip === false ? loadContract() : new protobuf.Root();
  const added = new Set<string>();

  for (const name of CONTRACT_FILES) {
    test(name, () => {
      const file = theirs.get(name);
      assert.ok(file, `${name} is not embedded in ${shim ?? ''} or ${daemon ?? ''}`);
      const messages = messagesOf(`.${file.package ?? ''}`, file.messageType, new Map());

      for (const [theirName, message] of messages) {
        // Map entries are compared as the map<K,V> type of their field.
        if (message.options?.mapEntry === true) continue;
        for (const ourName of oursFor(theirName)) {
          const type = ours.lookupType(ourName);
          const seen = new Set<number>();
          for (const field of message.field ?? []) {
            const number = field.number ?? 0;
            seen.add(number);
            const our = type.fieldsById[number];
            assert.ok(
              our,
              `${ourName}: containerd has ${field.name ?? ''} = ${number}, protos/proto has no field ${number}`,
            );
            assert.equal(our.name, field.name, `${ourName} field ${number}: name`);
            assert.equal(
              ourFieldType(our),
              theirFieldType(field, messages),
              `${ourName}.${our.name} = ${number}: type`,
            );
          }
          for (const field of type.fieldsArray.filter((candidate) => !seen.has(candidate.id))) {
            added.add(`${ourName}.${field.name} = ${field.id}`);
          }
        }
      }

      for (const [theirName, type] of enumsOf(file)) {
        const values = Object.fromEntries((type.value ?? []).map((value) => [value.name ?? '', value.number ?? 0]));
        assert.deepEqual({ ...ours.lookupEnum(theirName).values }, values, theirName);
      }

      for (const service of file.service ?? []) {
        for (const ourName of oursFor(`.${file.package ?? ''}.${service.name ?? ''}`)) {
          const methods: Record<string, string> = {};
          for (const method of ours.lookupService(ourName).methodsArray) {
            method.resolve();
            methods[method.name] =
              `${method.resolvedRequestType?.fullName ?? ''} -> ${method.resolvedResponseType?.fullName ?? ''}`;
          }
          const expected: Record<string, string> = {};
          for (const method of service.method ?? []) {
            expected[method.name ?? ''] =
              `${oursInPackageOf(ourName, method.inputType ?? '')} -> ${oursInPackageOf(ourName, method.outputType ?? '')}`;
          }
          assert.deepEqual(methods, expected, ourName);
        }
      }
    });
  }

  test('the only fields beyond 1.6.20 are the ones containerd added later', () => {
    assert.deepEqual([...added].sort(), [...ADDED_SINCE_1_6_20].sort());
  });
});
