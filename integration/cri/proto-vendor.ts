/**
 * Vendors the Kubernetes CRI API (k8s.io/cri-api, package runtime.v1) exactly as the
 * containerd on this machine serves it: gogo/protobuf-generated Go code registers each .proto
 * as a gzipped FileDescriptorProto, so the binary carries the API it speaks. containerd 1.6
 * links two CRI files, both named `api.proto`: runtime.v1alpha2 and runtime.v1; the one with
 * package runtime.v1 is rendered back to .proto source.
 *
 * Regenerate (after a build):  node build/integration/cri/proto-vendor.js [/usr/bin/containerd]
 *
 * Dropped: the gogoproto import and options (Go code generation only, no wire effect).
 * Comments are not in descriptors and so are not reproduced.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { constants, gunzipSync } from 'node:zlib';
import protobuf from 'protobufjs';
import { CRI_PROTO_DIR, CRI_PROTO_FILE } from './client.js';

/** The binary the vendored file was rendered from. */
export const CONTAINERD_BINARY = '/usr/bin/containerd';
const CRI_PACKAGE = 'runtime.v1';
const DROPPED_IMPORTS = new Set(['github.com/gogo/protobuf/gogoproto/gogo.proto', 'gogoproto/gogo.proto']);
const SCALARS: Readonly<Record<string, string>> = {
  TYPE_DOUBLE: 'double', TYPE_FLOAT: 'float', TYPE_INT64: 'int64', TYPE_UINT64: 'uint64', TYPE_INT32: 'int32',
  TYPE_FIXED64: 'fixed64', TYPE_FIXED32: 'fixed32', TYPE_BOOL: 'bool', TYPE_STRING: 'string', TYPE_BYTES: 'bytes',
  TYPE_UINT32: 'uint32', TYPE_SFIXED32: 'sfixed32', TYPE_SFIXED64: 'sfixed64', TYPE_SINT32: 'sint32', TYPE_SINT64: 'sint64',
};

// google.protobuf.FileDescriptorProto as protobufjs's toObject gives it (enums as names),
// reduced to what the renderer reads.
export interface FieldDescriptor {
  readonly name: string;
  readonly number: number;
  readonly label?: string;
  readonly type?: string;
  readonly typeName?: string;
  readonly options?: Readonly<Record<string, unknown>>;
}
export interface EnumDescriptor {
  readonly name: string;
  readonly value?: readonly { readonly name: string; readonly number?: number }[];
}
export interface MessageDescriptor {
  readonly name: string;
  readonly field?: readonly FieldDescriptor[];
  readonly nestedType?: readonly MessageDescriptor[];
  readonly enumType?: readonly EnumDescriptor[];
  readonly oneofDecl?: readonly unknown[];
  readonly options?: { readonly mapEntry?: boolean };
}
export interface MethodDescriptor {
  readonly name: string;
  readonly inputType: string;
  readonly outputType: string;
  readonly clientStreaming?: boolean;
  readonly serverStreaming?: boolean;
}
export interface FileDescriptor {
  readonly name: string;
  readonly package?: string;
  readonly syntax?: string;
  readonly dependency?: readonly string[];
  readonly messageType?: readonly MessageDescriptor[];
  readonly enumType?: readonly EnumDescriptor[];
  readonly service?: readonly { readonly name: string; readonly method?: readonly MethodDescriptor[] }[];
}

let fileDescriptorType: protobuf.Type | undefined;

function descriptorType(): protobuf.Type {
  if (fileDescriptorType === undefined) {
    const require = createRequire(import.meta.url);
    const json = require('protobufjs/google/protobuf/descriptor.json') as protobuf.INamespace;
    fileDescriptorType = protobuf.Root.fromJSON(json).lookupType('google.protobuf.FileDescriptorProto');
  }
  return fileDescriptorType;
}

/**
 * Finds the runtime.v1 `api.proto` descriptor among the gzip streams of a Go binary.
 * @returns undefined when the binary embeds none.
 */
export function findCriDescriptor(binary: Uint8Array): FileDescriptor | undefined {
  const type = descriptorType();
  const bytes = Buffer.from(binary.buffer, binary.byteOffset, binary.byteLength);
  for (let i = bytes.indexOf(0x1f); i !== -1 && i < bytes.length - 3; i = bytes.indexOf(0x1f, i + 1)) {
    // gzip magic 1f 8b, method 8 (deflate).
    if (bytes[i + 1] !== 0x8b || bytes[i + 2] !== 0x08) continue;
    let inflated: Buffer;
    try {
      inflated = gunzipSync(bytes.subarray(i, i + 1_048_576), { finishFlush: constants.Z_SYNC_FLUSH });
    } catch {
      continue;
    }
    let file: FileDescriptor;
    try {
      // The shape is protobufjs's toObject of FileDescriptorProto (see the interfaces above).
      file = type.toObject(type.decode(inflated), { enums: String }) as FileDescriptor;
    } catch {
      continue; // Not a descriptor.
    }
    if (file.name === 'api.proto' && file.package === CRI_PACKAGE) return file;
  }
  return undefined;
}

function typeOf(field: FieldDescriptor): string {
  const type = field.typeName ?? (field.type === undefined ? undefined : SCALARS[field.type]);
  if (type === undefined) throw new Error(`field ${field.name} has an unsupported type ${field.type ?? '(none)'}`);
  return type;
}

function fieldOptions(field: FieldDescriptor): string {
  const options: string[] = [];
  for (const [key, value] of Object.entries(field.options ?? {})) {
    if (key !== 'deprecated' || typeof value !== 'boolean') throw new Error(`field option ${key} on ${field.name}: extend the renderer`);
    options.push(`deprecated = ${String(value)}`);
  }
  return options.length === 0 ? '' : ` [${options.join(', ')}]`;
}

function renderEnum(e: EnumDescriptor, indent: string): string[] {
  return [`${indent}enum ${e.name} {`, ...(e.value ?? []).map((v) => `${indent}    ${v.name} = ${v.number ?? 0};`), `${indent}}`, ''];
}

function renderMessage(m: MessageDescriptor, indent: string): string[] {
  const lines = [`${indent}message ${m.name} {`];
  const nested = m.nestedType ?? [];
  const mapEntries = new Map(nested.filter((n) => n.options?.mapEntry === true).map((n) => [n.name, n]));
  for (const n of nested) if (n.options?.mapEntry !== true) lines.push(...renderMessage(n, `${indent}    `));
  for (const e of m.enumType ?? []) lines.push(...renderEnum(e, `${indent}    `));
  if ((m.oneofDecl ?? []).length > 0) throw new Error(`message ${m.name} has a oneof: extend the renderer`);
  for (const field of m.field ?? []) {
    const entry = field.label === 'LABEL_REPEATED' ? mapEntries.get(field.typeName?.split('.').pop() ?? '') : undefined;
    if (entry !== undefined) {
      const [key, value] = [1, 2].map((n) => entry.field?.find((f) => f.number === n));
      if (key === undefined || value === undefined) throw new Error(`map entry ${entry.name} lacks its key or value`);
      lines.push(`${indent}    map<${typeOf(key)}, ${typeOf(value)}> ${field.name} = ${field.number}${fieldOptions(field)};`);
    } else {
      const label = field.label === 'LABEL_REPEATED' ? 'repeated ' : '';
      lines.push(`${indent}    ${label}${typeOf(field)} ${field.name} = ${field.number}${fieldOptions(field)};`);
    }
  }
  lines.push(`${indent}}`, '');
  return lines;
}

/** Renders the descriptor as .proto source; `source` names the binary in the header. */
export function renderCriProto(file: FileDescriptor, source: string): string {
  const lines = [
    `// The Kubernetes CRI API, package ${file.package ?? '?'} (k8s.io/cri-api/pkg/apis/runtime/v1), exactly as`,
    `// ${source} (Debian containerd 1.6.20~ds1) serves it: rendered from the FileDescriptorProto`,
    '// the binary embeds (k8s.io/cri-api v0.25.x), with the gogoproto import and options dropped.',
    '// Regenerate with integration/cri/proto-vendor.ts; do not edit.',
    '',
    `syntax = "${file.syntax ?? 'proto2'}";`,
    '',
    `package ${file.package ?? ''};`,
    '',
  ];
  for (const dependency of file.dependency ?? []) if (!DROPPED_IMPORTS.has(dependency)) lines.push(`import "${dependency}";`, '');
  for (const service of file.service ?? []) {
    lines.push(`service ${service.name} {`);
    for (const method of service.method ?? []) {
      const input = `${method.clientStreaming === true ? 'stream ' : ''}${method.inputType}`;
      const output = `${method.serverStreaming === true ? 'stream ' : ''}${method.outputType}`;
      lines.push(`    rpc ${method.name}(${input}) returns (${output});`);
    }
    lines.push('}', '');
  }
  for (const e of file.enumType ?? []) lines.push(...renderEnum(e, ''));
  for (const m of file.messageType ?? []) lines.push(...renderMessage(m, ''));
  return `${lines.join('\n').replace(/\n+$/, '')}\n`;
}

/** Where the vendored file lives. */
export const VENDORED_CRI_PROTO = join(CRI_PROTO_DIR, CRI_PROTO_FILE);

/**
 * Renders the CRI API of a containerd binary.
 * @throws Error when the binary cannot be read or embeds no runtime.v1 descriptor.
 */
export function criProtoOf(binary: string = CONTAINERD_BINARY): string {
  const file = findCriDescriptor(readFileSync(binary));
  if (file === undefined) throw new Error(`${binary} embeds no ${CRI_PACKAGE} api.proto descriptor: is it a containerd with the CRI plugin?`);
  return renderCriProto(file, binary);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const text = criProtoOf(process.argv[2]);
  mkdirSync(dirname(VENDORED_CRI_PROTO), { recursive: true });
  writeFileSync(VENDORED_CRI_PROTO, text);
  process.stdout.write(`${VENDORED_CRI_PROTO}\n`);
}
