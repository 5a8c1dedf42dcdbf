import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadNative } from '../native/index.js';
import { containerd, google, packAny } from '../protos/index.js';
import type { ActionContext, ActionRequest } from './action.js';
import { createSpawnLauncher, type DaemonCommand } from './daemon-launcher.js';
import { parseFlags } from './flags.js';
import { start } from './start.js';

const native = loadNative();

/**
 * A stand-in daemon: records its fds and session, then holds the listening socket
 * (fd 3) open until killed, so the kernel accepts dials into its backlog.
 */
const fakeDaemon: DaemonCommand = {
  file: '/bin/sh',
  args: [
    '/bin/sh',
    '-c',
    // Read our own fds through /proc/$$ before any redirection changes them.
    'f=""; for n in 0 1 2 3; do f="$f $n -> $(readlink /proc/$$/fd/$n)\n"; done; printf "$f" > fds.txt; ' +
      'cut -d" " -f6 /proc/$$/stat > sid.txt; echo $$ > pid.txt; exec sleep 30',
    'fake-daemon',
  ],
};
const context: ActionContext = { native, launcher: createSpawnLauncher(native, fakeDaemon) };

function makeBundle(root: string, name: string, annotations: Record<string, string> = {}): string {
  const bundle = join(root, name);
  mkdirSync(bundle, { recursive: true });
  writeFileSync(join(bundle, 'config.json'), JSON.stringify({ ociVersion: '1.0.2', annotations }));
  return bundle;
}

function request(bundle: string, argv: string[], stdin: Uint8Array = new Uint8Array(0)): ActionRequest {
  return { argv, env: { PATH: '/usr/bin:/bin' }, cwd: bundle, stdin, parentPid: process.pid };
}

async function waitForFile(path: string): Promise<string> {
  for (let i = 0; i < 400; i++) {
    if (existsSync(path)) {
      const text = readFileSync(path, 'utf8');
      if (text !== '') return text;
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`${path} never appeared`);
}

function killDaemon(bundle: string): void {
  try {
    process.kill(Number.parseInt(readFileSync(join(bundle, 'pid.txt'), 'utf8'), 10), 'SIGKILL');
  } catch {
    // Already gone.
  }
}

test('start binds the group socket, hands it to a detached daemon on fd 3, and prints its address', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'tsrun-start-'));
  const address = join(root, 'containerd.sock');
  const bundle = makeBundle(root, 'c1');
  const expected = `unix:///run/containerd/s/${createHash('sha256').update('io.containerd.tsrun.v1\0').update(`${address}/ns1/c1`).digest('hex')}`;
  t.after(() => {
    killDaemon(bundle);
    rmSync(expected.slice('unix://'.length), { force: true });
    rmSync(root, { recursive: true, force: true });
  });

  const result = await start(parseFlags(['-namespace', 'ns1', '-address', address, '-id', 'c1', 'start']), request(bundle, []), context);
  assert.equal(result.exitCode, 0, result.stderr);
  assert.equal(Buffer.from(result.stdout).toString(), expected);
  assert.equal(readFileSync(join(bundle, 'address'), 'utf8'), expected);
  const socket = expected.slice('unix://'.length);
  assert.ok(statSync(socket).isSocket());
  assert.equal(statSync(socket).mode & 0o777, 0o600);

  const fds = await waitForFile(join(bundle, 'fds.txt'));
  assert.match(fds, / 3 -> socket:\[\d+\]/);
  assert.match(fds, / 0 -> \/dev\/null/);
  assert.match(fds, / 1 -> \/dev\/null/);
  assert.match(fds, / 2 -> \/dev\/null/);
  const pid = (await waitForFile(join(bundle, 'pid.txt'))).trim();
  assert.equal((await waitForFile(join(bundle, 'sid.txt'))).trim(), pid, 'the daemon leads its own session');
  assert.match(readFileSync(join(bundle, "tsrun.json"), "utf8"), /"groupPolicy":"container"/);
});

test('a second container of a live group reuses its daemon; a dead socket is replaced', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'tsrun-start-'));
  const address = join(root, 'containerd.sock');
  const first = makeBundle(root, 'a', { 'io.containerd.tsrun.v1.group': 'g' });
  const second = makeBundle(root, 'b', { 'io.containerd.tsrun.v1.group': 'g' });
  const third = makeBundle(root, 'c', { 'io.containerd.tsrun.v1.group': 'g' });
  const socket = `/run/containerd/s/${createHash('sha256').update('io.containerd.tsrun.v1\0').update(`${address}/ns/g`).digest('hex')}`;
  t.after(() => {
    killDaemon(first);
    killDaemon(third);
    rmSync(socket, { force: true });
    rmSync(root, { recursive: true, force: true });
  });
  const flags = (id: string) => parseFlags(['-namespace', 'ns', '-address', address, '-id', id, 'start']);

  const a = await start(flags('a'), request(first, []), context);
  assert.equal(a.exitCode, 0, a.stderr);
  await waitForFile(join(first, 'pid.txt'));
  const b = await start(flags('b'), request(second, []), context);
  assert.equal(b.exitCode, 0, b.stderr);
  assert.equal(Buffer.from(b.stdout).toString(), Buffer.from(a.stdout).toString());
  assert.equal(existsSync(join(second, 'pid.txt')), false, 'no second daemon was started');

  // The group's daemon dies without removing its socket: the next start binds anew.
  killDaemon(first);
  await new Promise((resolve) => setTimeout(resolve, 100));
  const c = await start(flags('c'), request(third, []), context);
  assert.equal(c.exitCode, 0, c.stderr);
  assert.equal(Buffer.from(c.stdout).toString(), `unix://${socket}`);
  await waitForFile(join(third, 'pid.txt'));
});

test('containerd 2.3 bootstrap: the socket directory is honoured and the answer is a BootstrapResult', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'tsrun-start-'));
  const address = join(root, 'containerd.sock');
  const bundle = makeBundle(root, 'c1');
  t.after(() => {
    killDaemon(bundle);
    rmSync(root, { recursive: true, force: true });
  });
  const socketDir = join(root, 's');
  const stdin = containerd.runtime.bootstrap.v1.BootstrapParams.encode({ instanceId: 'c1', namespace: 'ns', socketDir }).finish();
  const result = await start(parseFlags(['-namespace', 'ns', '-address', address, '-id', 'c1', 'start']), request(bundle, [], stdin), context);
  assert.equal(result.exitCode, 0, result.stderr);
  const answer = containerd.runtime.bootstrap.v1.BootstrapResult.decode(result.stdout);
  assert.equal(answer.version, 3);
  assert.equal(answer.protocol, 'ttrpc');
  assert.equal(answer.address, `unix://${socketDir}/${createHash('sha256').update('io.containerd.tsrun.v1\0').update(`${address}/ns/c1`).digest('hex')}`);
});

test('start fails with a sentence when the bundle has no usable config.json or flags are missing', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'tsrun-start-'));
  t.after(() => {
    rmSync(root, { recursive: true, force: true });
  });
  const empty = join(root, 'empty');
  mkdirSync(empty);
  const missing = await start(parseFlags(['-namespace', 'ns', '-address', '/a', '-id', 'x', 'start']), request(empty, []), context);
  assert.equal(missing.exitCode, 1);
  assert.match(missing.stderr, /tsrun start x: cannot read the OCI spec .*config\.json/);
  const noFlags = await start(parseFlags(['start']), request(empty, []), context);
  assert.equal(noFlags.exitCode, 1);
  assert.match(noFlags.stderr, /start needs -id, -namespace and -address/);
});

test('runc Options ShimCgroup moves the daemon into that cgroup in every hierarchy that has it', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'tsrun-start-'));
  const address = join(root, 'containerd.sock');
  const bundle = makeBundle(root, 'c1');
  const cgroup = `/tsrun-shim-test-${process.pid}`;
  const hierarchies = ['memory', 'pids', 'cpu'].map((c) => `/sys/fs/cgroup/${c}`).filter((m) => existsSync(join(m, 'cgroup.procs')));
  if (hierarchies.length === 0) {
    t.skip('no cgroup v1 hierarchy is mounted here');
    return;
  }
  for (const hierarchy of hierarchies) mkdirSync(join(hierarchy, cgroup));
  const socket = `/run/containerd/s/${createHash('sha256').update('io.containerd.tsrun.v1\0').update(`${address}/ns/c1`).digest('hex')}`;
  t.after(async () => {
    killDaemon(bundle);
    await new Promise((resolve) => setTimeout(resolve, 100));
    for (const hierarchy of hierarchies) rmdirSync(join(hierarchy, cgroup));
    rmSync(socket, { force: true });
    rmSync(root, { recursive: true, force: true });
  });

  const stdin = google.protobuf.Any.encode(packAny('containerd.runc.v1.Options', { shimCgroup: cgroup })).finish();
  const result = await start(parseFlags(['-namespace', 'ns', '-address', address, '-id', 'c1', 'start']), request(bundle, [], stdin), context);
  assert.equal(result.exitCode, 0, result.stderr);
  const pid = (await waitForFile(join(bundle, 'pid.txt'))).trim();
  const membership = readFileSync(`/proc/${pid}/cgroup`, 'utf8');
  for (const hierarchy of hierarchies) {
    const controller = hierarchy.slice('/sys/fs/cgroup/'.length);
    assert.match(membership, new RegExp(`:${controller}(,[a-z_]+)*:${cgroup}\\n`), `${controller} hierarchy`);
  }

  const missing = makeBundle(root, 'c2');
  const refused = await start(
    parseFlags(['-namespace', 'ns', '-address', address, '-id', 'c2', 'start']),
    request(missing, [], google.protobuf.Any.encode(packAny('containerd.runc.v1.Options', { shimCgroup: '/no-such-cgroup-here' })).finish()),
    context,
  );
  assert.equal(refused.exitCode, 1);
  assert.match(refused.stderr, /shim cgroup '\/no-such-cgroup-here' exists in no mounted cgroup hierarchy/);
});

test('the daemon gets containerd’s environment but Node’s own NODE_* variables', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'tsrun-start-'));
  const address = join(root, 'containerd.sock');
  const bundle = makeBundle(root, 'c1');
  const spawned = createSpawnLauncher(native, fakeDaemon);
  const envs: (readonly string[])[] = [];
  const capturing: ActionContext = {
    native,
    launcher: {
      launch: (spec) => {
        envs.push(spec.env);
        return spawned.launch(spec);
      },
    },
  };
  t.after(() => {
    killDaemon(bundle);
    rmSync(root, { recursive: true, force: true });
  });
  const env = { PATH: '/usr/bin:/bin', NODE_EXTRA_CA_CERTS: '/etc/ssl/certs/ca-certificates.crt', NODE_OPTIONS: '--inspect', TSRUN_X: 'a=b', XNODE_Y: 'kept' };
  const result = await start(parseFlags(['-namespace', 'ns1', '-address', address, '-id', 'c1', 'start']), { ...request(bundle, []), env }, capturing);
  assert.equal(result.exitCode, 0, result.stderr);
  rmSync(Buffer.from(result.stdout).toString().slice('unix://'.length), { force: true });
  assert.deepEqual(envs, [['PATH=/usr/bin:/bin', 'TSRUN_X=a=b', 'XNODE_Y=kept']]);
});
