import assert from 'node:assert/strict';
import { test } from 'node:test';
import { chooseSubnet, cidrContains, cidrRange, renderCniConflist } from './cni.js';

const network = { name: 'tsrun-cri-0a0b0c0d', bridge: 'tsr-0a0b0c0d', subnet: '10.88.7.0/24', ipamDataDir: '/tmp/x/ipam' };

test('the conflist is one bridge with no gateway, no masquerade and leases in the given dir', () => {
  const conflist = JSON.parse(renderCniConflist(network)) as Record<string, unknown>;
  assert.deepEqual(conflist, {
    cniVersion: '1.0.0',
    name: 'tsrun-cri-0a0b0c0d',
    plugins: [
      {
        type: 'bridge',
        bridge: 'tsr-0a0b0c0d',
        isGateway: false,
        ipMasq: false,
        hairpinMode: false,
        ipam: { type: 'host-local', ranges: [[{ subnet: '10.88.7.0/24' }]], dataDir: '/tmp/x/ipam' },
      },
    ],
  });
});

test('the bridge name fits IFNAMSIZ', () => {
  assert.ok(Buffer.byteLength(network.bridge) <= 15);
});

test('cidrRange and cidrContains do IPv4 prefix arithmetic', () => {
  assert.deepEqual(cidrRange('10.88.7.0/24'), [0x0a580700, 0x0a5807ff]);
  assert.deepEqual(cidrRange('10.88.7.9/24'), [0x0a580700, 0x0a5807ff], 'host bits are masked');
  assert.deepEqual(cidrRange('192.0.2.2'), [0xc0000202, 0xc0000202], 'an address is a /32');
  assert.deepEqual(cidrRange('0.0.0.0/0'), [0, 0xffffffff]);
  assert.ok(cidrContains('10.88.7.0/24', '10.88.7.254'));
  assert.ok(!cidrContains('10.88.7.0/24', '10.88.8.1'));
  assert.throws(() => cidrRange('10.88.256.0/24'), /above 255/);
  assert.throws(() => cidrRange('10.88.0.0/33'), /longer than 32/);
  assert.throws(() => cidrRange('fd00::/64'), /not an IPv4/);
});

test('chooseSubnet skips every /24 a host route overlaps', () => {
  const first = (): number => 0;
  assert.equal(chooseSubnet([], first), '10.88.0.0/24');
  assert.equal(chooseSubnet(['10.88.0.0/23', '192.0.2.0/24'], first), '10.88.2.0/24');
  assert.equal(chooseSubnet(['10.88.255.7'], () => 255), '10.88.0.0/24', 'wraps around');
  assert.throws(() => chooseSubnet(['10.0.0.0/8'], first), /every \/24 of 10\.88\.0\.0\/16/);
});
