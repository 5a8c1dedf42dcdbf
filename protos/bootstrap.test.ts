import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { containerd, google, packAny, unpackAnyAs } from './index.js';
import { assertRoundTrip, fromHex, hex } from './testing.js';

const bootstrap = containerd.runtime.bootstrap.v1;

const params = {
  instanceId: 'c1',
  namespace: 'k8s.io',
  logLevel: bootstrap.LogLevel.LOG_LEVEL_TRACE,
  containerdVersion: 'v2.3.0',
  containerdTtrpcAddress: 'unix:///run/containerd/containerd.sock.ttrpc',
  containerdGrpcAddress: 'unix:///run/containerd/containerd.sock',
  containerdBinary: '/usr/bin/containerd',
  extensions: [{ value: packAny('runtimeoptions.v1.Options', { configPath: '/etc/tsrun.toml' }) }],
  socketDir: '/run/containerd/s',
};

describe('containerd.runtime.bootstrap.v1', () => {
  test('BootstrapParams round-trips', () => {
    assertRoundTrip(bootstrap.BootstrapParams, params);
  });

  test('Extension round-trips', () => {
    assertRoundTrip(bootstrap.Extension, { value: packAny('containerd.runc.v1.Options', { binaryName: 'runc' }) });
  });

  test('BootstrapResult round-trips', () => {
    assertRoundTrip(bootstrap.BootstrapResult, {
      version: 3,
      address: 'unix:///run/containerd/s/736700a4',
      protocol: 'ttrpc',
      capabilities: [bootstrap.Capability.CAPABILITY_UNSPECIFIED],
      metadata: { pid: '4242' },
    });
  });

  test('LogLevel is an open enum with negative values, encoded as 10-byte varints', () => {
    assert.deepEqual(
      { ...bootstrap.LogLevel },
      {
        LOG_LEVEL_INFO: 0,
        LOG_LEVEL_TRACE: -8,
        LOG_LEVEL_DEBUG: -4,
        LOG_LEVEL_WARN: 4,
        LOG_LEVEL_ERROR: 8,
        LOG_LEVEL_FATAL: 10,
        LOG_LEVEL_PANIC: 12,
      },
    );
    assert.equal(
      hex(bootstrap.BootstrapParams.encode({ logLevel: bootstrap.LogLevel.LOG_LEVEL_DEBUG }).finish()),
      '18fcffffffffffffffff01',
    );
    // A level this file does not name (e.g. from a newer containerd) still decodes, as its number.
    assert.equal(bootstrap.BootstrapParams.decode(fromHex('18 02')).logLevel, 2);
  });

  test('socket_dir has explicit presence: unset and empty are different on the wire', () => {
    assert.equal(hex(bootstrap.BootstrapParams.encode({ instanceId: 'c' }).finish()), '0a0163');
    assert.equal(hex(bootstrap.BootstrapParams.encode({ instanceId: 'c', socketDir: '' }).finish()), '0a01634a00');
    assert.equal(bootstrap.BootstrapParams.decode(fromHex('0a 01 63')).socketDir, null);
    assert.equal(bootstrap.BootstrapParams.decode(fromHex('0a 01 63 4a 00')).socketDir, '');
  });

  test('the runtime options arrive as an extension and unpack by type URL', () => {
    const decoded = bootstrap.BootstrapParams.decode(bootstrap.BootstrapParams.encode(params).finish());
    const options = unpackAnyAs(decoded.extensions[0]?.value ?? {}, 'runtimeoptions.v1.Options');
    assert.equal(options.configPath, '/etc/tsrun.toml');
  });
});

describe('telling the start protocols apart (containerd-shim-facts.md 2.4, 2.15)', () => {
  test('a plain unix:// address, what 1.6-2.2 expect on stdout, does not decode as BootstrapResult', () => {
    // 'u' is field 14 with wire type 5 (fixed32), which swallows "nix:"; then '/' (0x2f) has wire type 7, which does not exist.
    assert.throws(
      () => bootstrap.BootstrapResult.decode(new TextEncoder().encode('unix:///run/containerd/s/abc')),
      /invalid wire type 7/,
    );
  });

  test('the JSON start response of 2.0-2.2 does not decode as BootstrapResult either', () => {
    const json = '{"version":3,"address":"unix:///run/containerd/s/abc","protocol":"ttrpc"}';
    assert.throws(() => bootstrap.BootstrapResult.decode(new TextEncoder().encode(json)));
  });

  test('empty stdout decodes as an empty BootstrapResult, so start must always print an address', () => {
    const empty = bootstrap.BootstrapResult.decode(new Uint8Array(0));
    assert.equal(empty.address, '');
    assert.equal(empty.version, 0);
  });

  test('a legacy options Any on stdin decodes as BootstrapParams: only -id/-namespace can tell them apart', () => {
    // What containerd 1.6-2.2 write to start's stdin: the runc Options Any itself.
    const stdin = google.protobuf.Any.encode(packAny('containerd.runc.v1.Options', { binaryName: 'runc' })).finish();
    const misread = bootstrap.BootstrapParams.decode(stdin);
    assert.equal(misread.instanceId, 'containerd.runc.v1.Options');
    assert.notEqual(misread.namespace, '');
  });
});
