// The metrics objects are meant to map 1:1 onto containerd's cgroups Metrics messages.
// This checks it against the real .proto files (protos/proto/cgroups, read as data: core/
// does not import the protos layer): every key names a field of the message, and a
// fromObject -> encode -> decode round trip gives back every value exactly, uint64s above
// 2^53 included.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import protobuf from 'protobufjs';
import { TESTDATA } from './fixture-tree.js';
import { readV1Metrics } from './v1-stats.js';
import { readV2Metrics } from './v2-stats.js';

const PROTOS = fileURLToPath(new URL('../../../protos/proto/cgroups/', import.meta.url));

const LONG_TYPES = new Set(['uint64', 'int64', 'fixed64', 'sfixed64', 'sint64']);

/** Compares `ours` with the decoded message field by field, following the schema. */
function assertSameMessage(type: protobuf.Type, ours: unknown, decoded: unknown, path: string): void {
  assert.ok(typeof ours === 'object' && ours !== null, `${path} is an object`);
  assert.ok(typeof decoded === 'object' && decoded !== null, `${path} decoded`);
  for (const [key, value] of Object.entries(ours)) {
    const field = type.fields[key];
    assert.ok(field !== undefined, `${path}.${key} is a field of ${type.fullName}`);
    const back: unknown = (decoded as Record<string, unknown>)[key];
    const compare = (a: unknown, b: unknown, at: string) => {
      if (field.resolvedType instanceof protobuf.Type) assertSameMessage(field.resolvedType, a, b, at);
      else if (LONG_TYPES.has(field.type)) assert.equal(BigInt(String(b)), BigInt(a as number | string), at);
      else assert.equal(b, a, at);
    };
    if (field.repeated) {
      assert.ok(Array.isArray(value) && Array.isArray(back), `${path}.${key} is repeated`);
      assert.equal(back.length, value.length, `${path}.${key} length`);
      value.forEach((item, i) => {
        compare(item, back[i], `${path}.${key}[${i}]`);
      });
    } else {
      compare(value, back, `${path}.${key}`);
    }
  }
}

/**
 * Both ways shim/ may encode: fromObject then encode, and encode of the plain object.
 * (Not `verify`: it insists on number|Long for 64-bit fields and rejects the decimal
 * strings that carry values above 2^53 exactly; fromObject and encode take them.)
 */
function roundTrip(type: protobuf.Type, metrics: object): void {
  for (const bytes of [type.encode(type.fromObject(metrics)).finish(), type.encode(metrics).finish()]) {
    const decoded = type.toObject(type.decode(bytes), { longs: String, arrays: true, defaults: true });
    assertSameMessage(type, metrics, decoded, 'metrics');
  }
}

describe('metrics objects encode 1:1 with containerd cgroups Metrics', () => {
  test('v1 (recorded tree and CFQ/hugetlb/rdma tree) as io.containerd.cgroups.v1.Metrics', async () => {
    const type = protobuf
      .loadSync(join(PROTOS, 'cgroup1', 'stats', 'metrics.proto'))
      .lookupType('io.containerd.cgroups.v1.Metrics');
    const v1 = join(TESTDATA, 'v1');
    const extra = join(TESTDATA, 'v1-extra');
    roundTrip(
      type,
      await readV1Metrics(new Map(['memory', 'cpu', 'cpuacct', 'pids', 'blkio'].map((c) => [c, join(v1, c)])), {
        procRoot: join(v1, 'proc'),
        hugePageSizes: [],
      }),
    );
    roundTrip(
      type,
      await readV1Metrics(new Map(['blkio', 'hugetlb', 'rdma'].map((c) => [c, join(extra, c)])), {
        procRoot: join(extra, 'proc'),
        hugePageSizes: ['1GB', '2MB'],
      }),
    );
  });

  test('v2 (container tree) as io.containerd.cgroups.v2.Metrics', async () => {
    const type = protobuf
      .loadSync(join(PROTOS, 'cgroup2', 'stats', 'metrics.proto'))
      .lookupType('io.containerd.cgroups.v2.Metrics');
    roundTrip(type, await readV2Metrics(join(TESTDATA, 'v2', 'container'), { hugePageSizes: ['1GB', '2MB'] }));
  });

  test('the check fails on a field name the message does not have', () => {
    const type = protobuf
      .loadSync(join(PROTOS, 'cgroup2', 'stats', 'metrics.proto'))
      .lookupType('io.containerd.cgroups.v2.Metrics');
    assert.throws(() => {
      roundTrip(type, { pids: { current: 1, limitt: 2 } });
    }, /limitt is a field/);
  });
});
