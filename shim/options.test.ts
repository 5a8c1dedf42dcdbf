import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { containerd, google, packAny } from '../protos/index.js';
import { decodeStartInput } from './options.js';
import { defaultSettings, SettingsError } from './settings.js';

function anyBytes(any: google.protobuf.Any): Uint8Array {
  return google.protobuf.Any.encode(any).finish();
}

test('empty stdin gives the defaults and no bootstrap', () => {
  const input = decodeStartInput(new Uint8Array(0), 'c1', 'default');
  assert.deepEqual(input.settings, defaultSettings);
  assert.equal(input.bootstrap, undefined);
});

test('legacy runc Options Any (containerd 1.6 to 2.2)', () => {
  const stdin = anyBytes(packAny('containerd.runc.v1.Options', { binaryName: '/usr/sbin/runc', root: '/r', systemdCgroup: true }));
  const input = decodeStartInput(stdin, 'c1', 'default');
  assert.equal(input.bootstrap, undefined);
  assert.equal(input.settings.binaryName, '/usr/sbin/runc');
  assert.equal(input.settings.root, '/r');
  assert.equal(input.settings.systemdCgroup, true);
});

test('CRI runtimeoptions with a TOML body and with a TOML path', () => {
  const body = anyBytes(
    packAny('runtimeoptions.v1.Options', { typeUrl: 'runtimeoptions.v1.Options', configBody: Buffer.from('GroupPolicy = "pod"\nBinaryName = "runc"\n') }),
  );
  assert.equal(decodeStartInput(body, 'c1', 'k8s.io').settings.groupPolicy, 'pod');

  const dir = mkdtempSync(join(tmpdir(), 'tsrun-options-'));
  try {
    const path = join(dir, 'tsrun.toml');
    writeFileSync(path, 'GroupPolicy = "namespace"\nLogLevel = "debug"\n');
    const viaPath = anyBytes(packAny('runtimeoptions.v1.Options', { configPath: path }));
    const settings = decodeStartInput(viaPath, 'c1', 'default').settings;
    assert.equal(settings.groupPolicy, 'namespace');
    assert.equal(settings.logLevel, 'debug');
    const missing = anyBytes(packAny('runtimeoptions.v1.Options', { configPath: join(dir, 'nope.toml') }));
    assert.throws(() => decodeStartInput(missing, 'c1', 'default'), (e: unknown) => e instanceof SettingsError && /config_path '.*nope.toml' cannot be read/.test(e.message));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an options type tsrun does not know is refused with what it accepts', () => {
  const stdin = anyBytes(google.protobuf.Any.create({ type_url: 'example.Unknown', value: new Uint8Array([8, 1]) }));
  assert.throws(() => decodeStartInput(stdin, 'c1', 'default'), /not supported: send containerd.runc.v1.Options or runtimeoptions.v1.Options/);
});

const BootstrapParams = containerd.runtime.bootstrap.v1.BootstrapParams;

test('2.3 BootstrapParams are recognised when instance id and namespace match the flags', () => {
  const stdin = BootstrapParams.encode({
    instanceId: 'c1',
    namespace: 'default',
    containerdVersion: '2.3.0',
    containerdTtrpcAddress: '/run/containerd/containerd.sock.ttrpc',
    containerdGrpcAddress: '/run/containerd/containerd.sock',
    socketDir: '/run/x/s',
    extensions: [{ value: packAny('containerd.runc.v1.Options', { binaryName: 'crun' }) }],
  }).finish();
  const input = decodeStartInput(stdin, 'c1', 'default');
  assert.ok(input.bootstrap !== undefined);
  assert.equal(input.bootstrap.socketDir, '/run/x/s');
  assert.equal(input.bootstrap.containerdVersion, '2.3.0');
  assert.equal(input.settings.binaryName, 'crun');
});

test('BootstrapParams that do not match the flags are legacy options, not bootstrap', () => {
  const stdin = BootstrapParams.encode({ instanceId: 'other', namespace: 'default' }).finish();
  // Decoded as a legacy Any its type_url is 'other': not an options type we know.
  assert.throws(() => decodeStartInput(stdin, 'c1', 'default'), /not supported/);
  const wrongNamespace = BootstrapParams.encode({ instanceId: 'c1', namespace: 'k8s.io' }).finish();
  assert.throws(() => decodeStartInput(wrongNamespace, 'c1', 'default'), /not supported/);
});

test('a legacy options Any is never mistaken for BootstrapParams', () => {
  // Its type_url (field 1) reads as instance_id and its value (field 2) as namespace:
  // the flags never equal those, so the legacy path decodes it.
  const legacy = anyBytes(packAny('runtimeoptions.v1.Options', { configBody: Buffer.from('GroupPolicy = "namespace"') }));
  const decodedAsBootstrap = BootstrapParams.decode(legacy);
  assert.equal(decodedAsBootstrap.instanceId, 'runtimeoptions.v1.Options');
  const input = decodeStartInput(legacy, 'c1', 'default');
  assert.equal(input.bootstrap, undefined);
  assert.equal(input.settings.groupPolicy, 'namespace');
});
