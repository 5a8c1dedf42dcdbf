import { test } from 'node:test';
import { containerd, packAny } from './index.js';
import { assertRoundTrip } from './testing.js';

const options = packAny('runtimeoptions.v1.Options', { configPath: '/etc/tsrun/config.toml' });

test('containerd.types.RuntimeRequest round-trips', () => {
  assertRoundTrip(containerd.types.RuntimeRequest, { runtimePath: '/usr/local/bin/containerd-shim-tsrun-v1', options });
});

test('containerd.types.RuntimeVersion round-trips', () => {
  assertRoundTrip(containerd.types.RuntimeVersion, { version: '0.1.0', revision: 'ed5d0e0' });
});

test('containerd.types.RuntimeInfo round-trips (what `-info` prints)', () => {
  assertRoundTrip(containerd.types.RuntimeInfo, {
    name: 'io.containerd.tsrun.v1',
    version: { version: '0.1.0', revision: 'ed5d0e0' },
    options,
    features: {
      type_url: 'types.containerd.io/opencontainers/runtime-spec/1/features/Features',
      value: new TextEncoder().encode('{"ociVersionMin":"1.0.0"}'),
    },
    annotations: { 'containerd.io/runtime-allow-mounts': 'overlay,bind' },
  });
});
