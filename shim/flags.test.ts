import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FlagError, parseFlags } from './flags.js';
import { groupKey, socketAddress } from './group.js';
import { defaultSettings, settingsFromRuncOptions, settingsFromToml, SettingsError } from './settings.js';

test('parses the start command line containerd 1.6 builds', () => {
  const cmd = parseFlags(['-namespace', 'default', '-address', '/run/containerd/containerd.sock', '-publish-binary', '/usr/bin/containerd', '-id', 't1', '-debug', 'start']);
  assert.equal(cmd.action, 'start');
  assert.equal(cmd.flags.namespace, 'default');
  assert.equal(cmd.flags.address, '/run/containerd/containerd.sock');
  assert.equal(cmd.flags.publishBinary, '/usr/bin/containerd');
  assert.equal(cmd.flags.id, 't1');
  assert.equal(cmd.flags.debug, true);
  assert.equal(cmd.flags.bundle, '');
});

test('accepts -name=value, --name, boolean values and stops at the first positional', () => {
  const cmd = parseFlags(['--id=x', '-debug=false', '-bundle=/b', 'delete', '-v']);
  assert.equal(cmd.flags.id, 'x');
  assert.equal(cmd.flags.debug, false);
  assert.equal(cmd.flags.bundle, '/b');
  assert.equal(cmd.action, 'delete');
  assert.deepEqual(cmd.rest, ['-v']);
  assert.equal(parseFlags(['-v']).flags.version, true);
  assert.equal(parseFlags(['-info']).flags.info, true);
  assert.equal(parseFlags([]).action, '');
});

test('rejects unknown flags, missing values and bad booleans with a sentence', () => {
  assert.throws(() => parseFlags(['-nope']), (e: unknown) => e instanceof FlagError && /flag provided but not defined: -nope/.test(e.message));
  assert.throws(() => parseFlags(['-id']), /flag needs an argument: -id/);
  assert.throws(() => parseFlags(['-debug=maybe']), /invalid boolean value "maybe" for -debug/);
});

test('group key: tsrun annotation, then sandbox id, then policy', () => {
  assert.equal(groupKey('c1', 'ns', { 'io.containerd.tsrun.v1.group': 'g', 'io.kubernetes.cri.sandbox-id': 's' }, 'container'), 'g');
  assert.equal(groupKey('c1', 'ns', { 'io.kubernetes.cri.sandbox-id': 's' }, 'container'), 's');
  assert.equal(groupKey('c1', 'ns', {}, 'container'), 'c1');
  assert.equal(groupKey('c1', 'ns', {}, 'pod'), 'c1');
  assert.equal(groupKey('c1', 'ns', {}, 'namespace'), 'namespace:ns');
  assert.equal(groupKey('c1', 'ns', { 'io.kubernetes.cri.sandbox-id': 's' }, 'namespace'), 's');
});

test('socket address: containerd SocketAddress input (address/namespace/group) behind a tsrun prefix', () => {
  // printf 'io.containerd.tsrun.v1\0/run/containerd/containerd.sock/default/t1' | sha256sum
  assert.equal(
    socketAddress('/run/containerd/containerd.sock', 'default', 't1'),
    'unix:///run/containerd/s/99fb0389903ec5b7f8ad135e3358185f08ac2536b02ffd25f161165f4ad818d7',
  );
  // A runc shim group of the same name hashes without the prefix: never the same socket.
  assert.notEqual(
    socketAddress('/run/containerd/containerd.sock', 'default', 't1'),
    'unix:///run/containerd/s/df6a0c5cd2e9a1a16d9a3f2447365d9fc6021bc1d3d9a4caa2f5b2c4f773758f',
  );
});

test('settings from runc options keep defaults for empty strings', () => {
  const s = settingsFromRuncOptions({ binaryName: '', root: '/r', systemdCgroup: true, ioUid: 5 });
  assert.equal(s.binaryName, 'runc');
  assert.equal(s.root, '/r');
  assert.equal(s.systemdCgroup, true);
  assert.equal(s.ioUid, 5);
  assert.equal(s.groupPolicy, 'container');
});

test('settings from CRI runtime options TOML', () => {
  const s = settingsFromToml('BinaryName = "/usr/sbin/runc"\nGroupPolicy = "namespace"\nLogLevel = "DEBUG"\nIoUid = 1000\nSomethingElse = 1\n');
  assert.equal(s.binaryName, '/usr/sbin/runc');
  assert.equal(s.groupPolicy, 'namespace');
  assert.equal(s.logLevel, 'debug');
  assert.equal(s.ioUid, 1000);
  assert.deepEqual(settingsFromToml(''), defaultSettings);
  assert.throws(() => settingsFromToml('GroupPolicy = "cluster"'), (e: unknown) => e instanceof SettingsError && /GroupPolicy "cluster" is not one of/.test(e.message));
  assert.throws(() => settingsFromToml('IoUid = -1'), /IoUid must be an integer/);
  assert.throws(() => settingsFromToml('= broken'), /not valid TOML/);
});

test('-manager and -spare select tsrun modes of their own (native/launcher/PROTOCOL.md)', () => {
  const manager = parseFlags(['-manager', '-address', '/run/containerd/containerd.sock']);
  assert.equal(manager.flags.manager, true);
  assert.equal(manager.flags.spare, false);
  assert.equal(manager.flags.address, '/run/containerd/containerd.sock');
  assert.equal(manager.action, '');
  const spare = parseFlags(['-spare', '-address', '/a']);
  assert.equal(spare.flags.spare, true);
  assert.equal(spare.flags.manager, false);
  assert.equal(parseFlags(['-namespace', 'ns', 'start']).flags.manager, false);
});
