import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parse as parseToml, type TomlTable } from 'smol-toml';
import { DISABLED_PLUGINS, merge, renderContainerdConfig, type ContainerdPaths } from './containerd-config.js';

const paths: ContainerdPaths = {
  root: '/tmp/ctd-x/root',
  state: '/tmp/ctd-x/state',
  address: '/tmp/ctd-x/grpc.sock',
  ttrpcAddress: '/tmp/ctd-x/ttrpc.sock',
};

/** smol-toml gives null-prototype objects; plain ones compare with deepEqual. */
function parse(text: string): TomlTable {
  return JSON.parse(JSON.stringify(parseToml(text))) as TomlTable;
}

function table(value: unknown): TomlTable {
  assert.ok(typeof value === 'object' && value !== null && !Array.isArray(value), `expected a table, got ${JSON.stringify(value)}`);
  return value as TomlTable;
}

test('the config is version 2 with the instance own root, state, sockets and log level', () => {
  const config = parse(renderContainerdConfig({ paths, logLevel: 'debug' }));
  assert.equal(config['version'], 2);
  assert.equal(config['root'], paths.root);
  assert.equal(config['state'], paths.state);
  assert.deepEqual(config['grpc'], { address: paths.address });
  assert.deepEqual(config['ttrpc'], { address: paths.ttrpcAddress });
  assert.deepEqual(config['debug'], { level: 'debug' });
});

test('CRI is disabled unless asked for', () => {
  const config = parse(renderContainerdConfig({ paths, logLevel: 'info' }));
  assert.ok((config['disabled_plugins'] as string[]).includes('io.containerd.grpc.v1.cri'));
  assert.equal(table(config['plugins'])['io.containerd.grpc.v1.cri'], undefined);
});

test('regression: the v1 linux runtime stays enabled, containerd 1.6 tasks service needs it', () => {
  // Disabling it made ctr fail with "unknown service containerd.services.tasks.v1.Tasks".
  assert.ok(!DISABLED_PLUGINS.includes('io.containerd.runtime.v1.linux'));
  const config = parse(renderContainerdConfig({ paths, logLevel: 'info' }));
  assert.ok(!(config['disabled_plugins'] as string[]).includes('io.containerd.runtime.v1.linux'));
});

test('CRI gets the runtime table, CNI dirs, sandbox image and restrict_oom_score_adj', () => {
  const text = renderContainerdConfig({
    paths,
    logLevel: 'info',
    cri: {
      runtimes: {
        runc: { runtimeType: 'io.containerd.runc.v2' },
        tsrun: { runtimeType: 'io.containerd.tsrun.v1', options: { ConfigPath: '/etc/tsrun.toml' }, podAnnotations: ['io.containerd.tsrun.v1.*'] },
      },
      defaultRuntimeName: 'tsrun',
      cniConfDir: '/tmp/ctd-x/cni',
      cniBinDir: '/usr/lib/cni',
      sandboxImage: 'docker.io/tsrun/pause:test',
    },
  });
  assert.match(text, /\[plugins\."io\.containerd\.grpc\.v1\.cri"\.containerd\.runtimes\.tsrun\]/);
  const config = parse(text);
  assert.ok(!(config['disabled_plugins'] as string[]).includes('io.containerd.grpc.v1.cri'));
  const cri = table(table(config['plugins'])['io.containerd.grpc.v1.cri']);
  assert.equal(cri['restrict_oom_score_adj'], true);
  assert.equal(cri['sandbox_image'], 'docker.io/tsrun/pause:test');
  assert.deepEqual(cri['cni'], { bin_dir: '/usr/lib/cni', conf_dir: '/tmp/ctd-x/cni' });
  const containerd = table(cri['containerd']);
  assert.equal(containerd['default_runtime_name'], 'tsrun');
  assert.equal(containerd['snapshotter'], 'overlayfs');
  assert.deepEqual(table(containerd['runtimes'])['tsrun'], {
    runtime_type: 'io.containerd.tsrun.v1',
    pod_annotations: ['io.containerd.tsrun.v1.*'],
    options: { ConfigPath: '/etc/tsrun.toml' },
  });
});

test('extra config merges table by table and replaces other values', () => {
  const config = parse(
    renderContainerdConfig({
      paths,
      logLevel: 'info',
      extra: { debug: { format: 'json' }, timeouts: { 'io.containerd.timeout.shim.cleanup': '2s' }, disabled_plugins: [] },
    }),
  );
  assert.deepEqual(config['debug'], { level: 'info', format: 'json' });
  assert.deepEqual(config['timeouts'], { 'io.containerd.timeout.shim.cleanup': '2s' });
  assert.deepEqual(config['disabled_plugins'], []);
  assert.deepEqual(merge({ a: { b: 1, c: 2 } }, { a: { c: 3 } }), { a: { b: 1, c: 3 } });
});
