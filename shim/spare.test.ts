/**
 * The spare pool in this process, with real spares (`node main.js -spare`): what happens
 * when no spare is ready, when an adoption fails, and when a spare dies while it waits.
 * The happy path through a real manager is in manager.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createProcessMonitor } from '../core/index.js';
import { loadNative, type SpawnOptions } from '../native/index.js';
import { createLogger, createLogSink } from './log.js';
import { environmentEntries } from './launcher-protocol.js';
import { asSpareMessage } from './spare-channel.js';
import { createSparePool, type SparePool, type SparePoolOptions } from './spare-pool.js';

const native = loadNative();
const quiet = createLogger('fatal', createLogSink(2, { attached: true }));
const monitor = createProcessMonitor(native, quiet);
const mainJs = fileURLToPath(new URL('./main.js', import.meta.url));

/** How the pool starts a spare, and how the tests start one as the launcher does. */
const spareCommand = { file: process.execPath, args: [process.execPath, mainJs, '-spare', '-address', '/tsrun-spare-test'] };

function pool(t: { after(fn: () => void): void }, options: Pick<SparePoolOptions, 'first'> = {}): SparePool {
  const spares = createSparePool({ native, monitor, command: spareCommand, env: environmentEntries(process.env), logger: quiet, adoptTimeoutMs: 5000, ...options });
  t.after(() => {
    spares.close();
  });
  return spares;
}

/** A spare started as the launcher starts the manager's first one: a child of ours, its channel on fd 3. */
function forkSpare<Child extends { readonly pid: number }>(spawn: (options: SpawnOptions) => Child): { child: Child; channelFd: number } {
  const [mine, theirs] = native.socketPair();
  try {
    return { child: spawn({ file: spareCommand.file, args: spareCommand.args, env: environmentEntries(process.env), cwd: '/', fds: [-1, -1, -1, theirs], setsid: true }), channelFd: mine };
  } finally {
    native.close(theirs);
  }
}

/** A fresh directory holding a bundle (`<root>/bundle` with an empty config.json); the caller removes root. */
function makeBundle(): { root: string; bundle: string } {
  const root = mkdtempSync(join(tmpdir(), 'tsrun-spare-'));
  const bundle = join(root, 'bundle');
  mkdirSync(bundle);
  writeFileSync(join(bundle, 'config.json'), '{}');
  return { root, bundle };
}

/** Resolves once a connection to the unix socket at `path` is accepted (a bare connect: someone serves it). */
function accepts(path: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const socket = connect(path, () => {
      socket.destroy();
      resolve();
    });
    socket.on('error', reject);
  });
}

async function waitFor<T>(probe: () => T | undefined, what: string, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const spec = (listenFd: number, cwd: string) => ({
  listenFd,
  flags: { namespace: 'ns', id: 'spare-test', address: '/tsrun-spare-test', publishBinary: '', debug: false },
  env: ['PATH=/usr/bin:/bin'],
  cwd,
});

test('messages of the spare channel are validated', () => {
  assert.deepEqual(asSpareMessage({ kind: 'ready' }), { kind: 'ready' });
  assert.deepEqual(asSpareMessage({ kind: 'adopt', args: ['-id', 'x'], env: ['A=b'], cwd: '/b' }), { kind: 'adopt', args: ['-id', 'x'], env: ['A=b'], cwd: '/b' });
  assert.equal(asSpareMessage({ kind: 'adopt', args: ['-id'], env: ['A=b'], cwd: 'relative' }), undefined);
  assert.equal(asSpareMessage({ kind: 'adopt', args: [1], env: [], cwd: '/' }), undefined);
  assert.equal(asSpareMessage({ kind: 'failed' }), undefined);
  assert.equal(asSpareMessage({ kind: 'nope' }), undefined);
  assert.equal(asSpareMessage(null), undefined);
});

test('with no spare ready, adopt answers undefined at once and the caller keeps its socket', async (t) => {
  const spares = pool(t);
  // Not started: nothing boots.
  const [a, b] = native.socketPair();
  t.after(() => {
    native.close(a);
    native.close(b);
  });
  assert.equal(await spares.adopt(spec(a, '/')), undefined);
  assert.equal(spares.readyPid, undefined);
});

test('an adoption that fails (the bundle is gone) answers undefined, kills that spare, and a new one boots', async (t) => {
  const spares = pool(t);
  spares.start();
  const first = await waitFor(() => spares.readyPid, 'a ready spare');
  const root = mkdtempSync(join(tmpdir(), 'tsrun-spare-'));
  const socketPath = join(root, 's.sock');
  const listenFd = native.listenUnix(socketPath, 8);
  t.after(() => {
    native.close(listenFd);
    rmSync(root, { recursive: true, force: true });
  });
  assert.equal(await spares.adopt(spec(listenFd, join(root, 'no-such-bundle'))), undefined);
  await waitFor(() => (alive(first) ? undefined : true), `failed spare ${first} gone`);
  const second = await waitFor(() => spares.readyPid, 'another ready spare');
  assert.notEqual(second, first);
  // The caller still owns a working listening socket (it would spawn a daemon on it now).
  await accepts(socketPath);
});

test('a spare that dies while it waits is replaced', async (t) => {
  const spares = pool(t);
  spares.start();
  const first = await waitFor(() => spares.readyPid, 'a ready spare');
  process.kill(first, 'SIGKILL');
  const second = await waitFor(() => {
    const pid = spares.readyPid;
    return pid !== undefined && pid !== first ? pid : undefined;
  }, 'a replacement spare');
  assert.ok(alive(second));
});

test('an adopted spare serves the socket with the daemon code, in the bundle it was given', async (t) => {
  const spares = pool(t);
  spares.start();
  const sparePid = await waitFor(() => spares.readyPid, 'a ready spare');
  const { root, bundle } = makeBundle();
  const socketPath = join(root, 'group.sock');
  const listenFd = native.listenUnix(socketPath, 8);
  const adopted = spares.adopt(spec(listenFd, bundle));
  t.after(async () => {
    (await adopted)?.kill();
    rmSync(root, { recursive: true, force: true });
  });
  const daemon = await adopted;
  native.close(listenFd);
  assert.ok(daemon !== undefined, 'the spare adopted the group');
  assert.equal(daemon.pid, sparePid);
  // A Task call needs a ttrpc client: a bare connect proves someone accepts on the socket it got.
  await accepts(socketPath);
});

test('a start arriving while the spare boots waits for it (a second one does not)', async (t) => {
  const spares = pool(t);
  spares.start();
  assert.equal(spares.readyPid, undefined, 'still booting');
  const { root, bundle } = makeBundle();
  const [a, b] = [native.listenUnix(join(root, 'a.sock'), 8), native.listenUnix(join(root, 'b.sock'), 8)];
  const first = spares.adopt(spec(a, bundle));
  const second = spares.adopt(spec(b, bundle));
  t.after(async () => {
    (await first)?.kill();
    native.close(a);
    native.close(b);
    rmSync(root, { recursive: true, force: true });
  });
  assert.equal(await second, undefined, 'one caller waits for the booting spare; the next spawns');
  const daemon = await first;
  assert.ok(daemon !== undefined, 'the waiting start got the spare once it was ready');
  assert.ok(alive(daemon.pid));
});

test('a first spare started by someone else (the launcher) is the one adopted, not a new boot', async (t) => {
  // Not through our monitor: the pool watches (and reaps) the spare it is given.
  const { child, channelFd } = forkSpare((options) => native.spawn(options));
  const { pid } = child;
  const spares = pool(t, { first: { pid, channelFd } });
  spares.start();
  assert.equal(await waitFor(() => spares.readyPid, 'the first spare ready'), pid);
  const { root, bundle } = makeBundle();
  const listenFd = native.listenUnix(join(root, 'group.sock'), 8);
  const adopted = spares.adopt(spec(listenFd, bundle));
  t.after(async () => {
    (await adopted)?.kill();
    native.close(listenFd);
    rmSync(root, { recursive: true, force: true });
  });
  const daemon = await adopted;
  assert.equal(daemon?.pid, pid, 'the group went to the spare the pool was given');
});

test('a first spare the pool never started is told to go: its channel is closed and it exits', async (t) => {
  const { child, channelFd } = forkSpare((options) => monitor.spawn(options));
  t.after(() => {
    if (alive(child.pid)) process.kill(child.pid, 'SIGKILL');
  });
  pool(t, { first: { pid: child.pid, channelFd } }).close();
  const status = await child.exited;
  assert.ok(status.kind === 'exited' && status.code === 0, `the spare left on end of file: ${JSON.stringify(status)}`);
});
