import { test } from 'node:test';
import assert from 'node:assert/strict';
import { packAny, runtimeoptions, unpackAny } from './index.js';
import { assertRoundTrip, fromHex, hex } from './testing.js';

test('runtimeoptions.v1.Options round-trips', () => {
  assertRoundTrip(runtimeoptions.v1.Options, {
    typeUrl: 'io.containerd.tsrun.v1.options',
    configPath: '/etc/containerd/tsrun.toml',
    configBody: new TextEncoder().encode('group = "pod"\n'),
  });
});

test('CRI sends runtimeoptions.v1.Options in an Any; it unpacks by type URL', () => {
  const any = packAny('runtimeoptions.v1.Options', { configBody: new TextEncoder().encode('linger = 5\n') });
  assert.equal(any.type_url, 'runtimeoptions.v1.Options');
  const unpacked = unpackAny(any);
  assert.equal(unpacked.typeUrl, 'runtimeoptions.v1.Options');
  assert.equal(new TextDecoder().decode(unpacked.message.configBody), 'linger = 5\n');
});

test('config_body is field 3, bytes: what containerd 1.6 (fields 1 and 2 only) never sends', () => {
  assert.equal(hex(runtimeoptions.v1.Options.encode({ configBody: new Uint8Array([0x61]) }).finish()), '1a0161');
  const old = runtimeoptions.v1.Options.decode(fromHex('0a 01 74 12 01 70'));
  assert.equal(old.typeUrl, 't');
  assert.equal(old.configPath, 'p');
  assert.equal(old.configBody.length, 0);
});
