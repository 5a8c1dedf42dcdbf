import { test } from 'node:test';
import assert from 'node:assert/strict';
import { containerd, packAny, timestampFromDate } from './index.js';
import { assertRoundTrip } from './testing.js';

test('containerd.types.Mount round-trips', () => {
  assertRoundTrip(containerd.types.Mount, {
    type: 'overlay',
    source: 'overlay',
    target: '/rootfs',
    options: ['lowerdir=/a:/b', 'upperdir=/u', 'workdir=/w'],
  });
});

test('containerd.v1.types.Process round-trips', () => {
  assertRoundTrip(containerd.v1.types.Process, {
    containerId: 'c1',
    id: 'x1',
    pid: 4243,
    status: containerd.v1.types.Status.STOPPED,
    stdin: 'in',
    stdout: 'out',
    stderr: 'err',
    terminal: true,
    exitStatus: 1,
    exitedAt: timestampFromDate(new Date('2026-01-02T03:04:05.006Z')),
  });
});

test('containerd.v1.types.ProcessInfo round-trips with ProcessDetails in info', () => {
  assertRoundTrip(containerd.v1.types.ProcessInfo, {
    pid: 4243,
    info: packAny('containerd.runc.v1.ProcessDetails', { execId: 'x1' }),
  });
});

test('containerd.v1.types.Status has the values of api/types/task/task.proto', () => {
  assert.deepEqual(
    { ...containerd.v1.types.Status },
    { UNKNOWN: 0, CREATED: 1, RUNNING: 2, STOPPED: 3, PAUSED: 4, PAUSING: 5 },
  );
});
