// Regenerates the .proto files under integration/proto from the descriptors that Debian's
// containerd 1.6.20 binaries embed, so the files are exactly what that containerd speaks.
//
//   node integration/proto/vendor-protos.mjs [/usr/bin/ctr]
//
// gogo/protobuf-generated Go code registers each .proto as a gzipped FileDescriptorProto;
// this scans the binary for gzip streams, keeps those that decode as a FileDescriptorProto
// of a wanted file, and renders it back to .proto source. gogoproto and fieldpath options
// are dropped (they change generated Go code, never the wire format); comments are not in
// descriptors and so are not reproduced.
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync, constants } from 'node:zlib';

const require = createRequire(import.meta.url);
const descriptor = require('protobufjs/ext/descriptor');

const outDir = dirname(fileURLToPath(import.meta.url));
const binary = process.argv[2] ?? '/usr/bin/ctr';

const WANTED = [
  'github.com/containerd/containerd/api/services/events/v1/events.proto',
  'github.com/containerd/containerd/api/services/tasks/v1/tasks.proto',
  'github.com/containerd/containerd/api/services/containers/v1/containers.proto',
  'github.com/containerd/containerd/api/services/namespaces/v1/namespace.proto',
  'github.com/containerd/containerd/api/services/version/v1/version.proto',
  'github.com/containerd/containerd/api/services/ttrpc/events/v1/events.proto',
  'github.com/containerd/containerd/api/types/mount.proto',
  'github.com/containerd/containerd/api/types/metrics.proto',
  'github.com/containerd/containerd/api/types/descriptor.proto',
  'github.com/containerd/containerd/api/types/task/task.proto',
  'github.com/containerd/containerd/api/events/task.proto',
  'github.com/containerd/containerd/api/events/container.proto',
  'github.com/containerd/cgroups/stats/v1/metrics.proto',
];
const DROPPED_IMPORTS = new Set(['gogoproto/gogo.proto', 'github.com/containerd/containerd/protobuf/plugin/fieldpath.proto']);
const SCALARS = {
  TYPE_DOUBLE: 'double', TYPE_FLOAT: 'float', TYPE_INT64: 'int64', TYPE_UINT64: 'uint64', TYPE_INT32: 'int32',
  TYPE_FIXED64: 'fixed64', TYPE_FIXED32: 'fixed32', TYPE_BOOL: 'bool', TYPE_STRING: 'string', TYPE_BYTES: 'bytes',
  TYPE_UINT32: 'uint32', TYPE_SFIXED32: 'sfixed32', TYPE_SFIXED64: 'sfixed64', TYPE_SINT32: 'sint32', TYPE_SINT64: 'sint64',
};

function findDescriptors(bytes) {
  const found = new Map();
  for (let i = bytes.indexOf(0x1f); i !== -1 && i < bytes.length - 3; i = bytes.indexOf(0x1f, i + 1)) {
    if (bytes[i + 1] !== 0x8b || bytes[i + 2] !== 0x08) continue;
    let inflated;
    try {
      inflated = gunzipSync(bytes.subarray(i, i + 262_144), { finishFlush: constants.Z_SYNC_FLUSH });
    } catch {
      continue;
    }
    try {
      const file = descriptor.FileDescriptorProto.toObject(descriptor.FileDescriptorProto.decode(inflated), { enums: String });
      if (WANTED.includes(file.name)) found.set(file.name, file);
    } catch {
      // Not a descriptor.
    }
  }
  return found;
}

function typeOf(field) {
  const type = field.typeName ?? SCALARS[field.type];
  if (type === undefined) throw new Error(`unsupported field type ${field.type}`);
  return type;
}

function renderEnum(e, indent) {
  return [`${indent}enum ${e.name} {`, ...e.value.map((v) => `${indent}\t${v.name} = ${v.number ?? 0};`), `${indent}}`, ''];
}

function renderMessage(m, indent) {
  const lines = [`${indent}message ${m.name} {`];
  const mapEntries = new Map((m.nestedType ?? []).filter((n) => n.options?.mapEntry).map((n) => [n.name, n]));
  for (const nested of m.nestedType ?? []) if (!nested.options?.mapEntry) lines.push(...renderMessage(nested, `${indent}\t`));
  for (const e of m.enumType ?? []) lines.push(...renderEnum(e, `${indent}\t`));
  if ((m.oneofDecl ?? []).length > 0) throw new Error(`oneof in ${m.name}: extend the renderer`);
  for (const field of m.field ?? []) {
    const entry = mapEntries.get(field.typeName?.split('.').pop());
    if (field.label === 'LABEL_REPEATED' && entry !== undefined) {
      const [key, value] = [1, 2].map((n) => entry.field.find((f) => f.number === n));
      lines.push(`${indent}\tmap<${typeOf(key)}, ${typeOf(value)}> ${field.name} = ${field.number};`);
    } else {
      lines.push(`${indent}\t${field.label === 'LABEL_REPEATED' ? 'repeated ' : ''}${typeOf(field)} ${field.name} = ${field.number};`);
    }
  }
  lines.push(`${indent}}`, '');
  return lines;
}

function render(file) {
  const lines = [
    '// Vendored from containerd v1.6.20 (Debian 1.6.20~ds1): rendered from the FileDescriptorProto that',
    `// /usr/bin/ctr embeds for ${file.name},`,
    '// with gogoproto and fieldpath options dropped (they do not change the wire format).',
    '// Regenerate with integration/proto/vendor-protos.mjs; do not edit.',
    '',
    `syntax = "${file.syntax ?? 'proto2'}";`,
    '',
    `package ${file.package};`,
    '',
  ];
  for (const dependency of file.dependency ?? []) if (!DROPPED_IMPORTS.has(dependency)) lines.push(`import "${dependency}";`);
  lines.push('');
  for (const e of file.enumType ?? []) lines.push(...renderEnum(e, ''));
  for (const m of file.messageType ?? []) lines.push(...renderMessage(m, ''));
  for (const service of file.service ?? []) {
    lines.push(`service ${service.name} {`);
    for (const method of service.method) {
      lines.push(`\trpc ${method.name}(${method.clientStreaming ? 'stream ' : ''}${method.inputType}) returns (${method.serverStreaming ? 'stream ' : ''}${method.outputType});`);
    }
    lines.push('}', '');
  }
  return `${lines.join('\n').replace(/\n+$/, '')}\n`;
}

const found = findDescriptors(readFileSync(binary));
const missing = WANTED.filter((name) => !found.has(name));
if (missing.length > 0) {
  console.error(`${binary} embeds no descriptor for: ${missing.join(', ')}`);
  process.exit(1);
}
for (const name of WANTED) {
  const path = join(outDir, name);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, render(found.get(name)));
  console.log(path);
}
