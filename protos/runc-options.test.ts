import { test } from 'node:test';
import assert from 'node:assert/strict';
import { containerd, packAny, unpackAnyAs } from './index.js';
import { assertRoundTrip, fromHex } from './testing.js';

const options = {
  noPivotRoot: true,
  noNewKeyring: true,
  shimCgroup: '/tsrun-shims',
  ioUid: 1000,
  ioGid: 1001,
  binaryName: '/usr/sbin/runc',
  root: '/run/containerd/runc',
  criuPath: '/usr/sbin/criu',
  systemdCgroup: true,
  criuImagePath: '/var/lib/criu/image',
  criuWorkPath: '/var/lib/criu/work',
  taskApiAddress: 'ttrpc+unix:///run/tsrun.sock',
  taskApiVersion: 3,
};

test('containerd.runc.v1.Options round-trips, deprecated criu_path included', () => {
  assertRoundTrip(containerd.runc.v1.Options, options);
});

test('containerd.runc.v1.CheckpointOptions round-trips', () => {
  assertRoundTrip(containerd.runc.v1.CheckpointOptions, {
    exit: true,
    openTcp: true,
    externalUnixSockets: true,
    terminal: true,
    fileLocks: true,
    emptyNamespaces: ['network', 'ipc'],
    cgroupsMode: 'soft',
    imagePath: '/ckpt/image',
    workPath: '/ckpt/work',
  });
});

test('containerd.runc.v1.ProcessDetails round-trips', () => {
  assertRoundTrip(containerd.runc.v1.ProcessDetails, { execId: 'x1' });
});

test('runc Options travel in an Any typed containerd.runc.v1.Options', () => {
  const any = packAny('containerd.runc.v1.Options', options);
  assert.equal(any.type_url, 'containerd.runc.v1.Options');
  const back = unpackAnyAs(any, 'containerd.runc.v1.Options');
  assert.equal(back.binaryName, '/usr/sbin/runc');
  assert.equal(back.systemdCgroup, true);
  assert.equal(back.taskApiVersion, 3);
});

test('options from containerd 1.6 with criu_path (field 8) decode into criuPath, not unknown fields', () => {
  // Options{binary_name:"runc", criu_path:"/c", systemd_cgroup:true} as 1.6's runc shim options encode it.
  const decoded = containerd.runc.v1.Options.decode(fromHex('32 04 72756e63 42 02 2f63 48 01'));
  assert.equal(decoded.binaryName, 'runc');
  assert.equal(decoded.criuPath, '/c');
  assert.equal(decoded.systemdCgroup, true);
  assert.equal(decoded.$unknowns, undefined);
});
