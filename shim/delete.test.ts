import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Runtime } from '../core/index.js';
import { loadNative } from '../native/index.js';
import { containerd } from '../protos/index.js';
import type { ActionContext } from './action.js';
import { createSpawnLauncher } from './daemon-launcher.js';
import { deleteAction } from './delete.js';
import { deletedMarkerPath, readDeletedMarker, recordCleanDeletes, writeDeletedMarker } from './deleted-marker.js';
import { parseFlags } from './flags.js';
import { createLogger, createLogSink } from './log.js';

const native = loadNative();
const context: ActionContext = { native, launcher: createSpawnLauncher(native, { file: '/bin/false', args: ['/bin/false'] }) };
const quiet = createLogger('fatal', createLogSink(2, { attached: true }));

/**
 * A bundle whose OCI runtime is a script that records each call: whether `delete` ran
 * the runtime is then a file, not a guess.
 */
function makeBundle(t: { after(fn: () => void): void }): { bundle: string; calls: string } {
  const root = mkdtempSync(join(tmpdir(), 'tsrun-delete-'));
  t.after(() => {
    rmSync(root, { recursive: true, force: true });
  });
  const bundle = join(root, 'c1');
  mkdirSync(join(bundle, 'rootfs'), { recursive: true });
  const calls = join(root, 'calls.txt');
  const runtime = join(root, 'fake-runc');
  writeFileSync(runtime, `#!/bin/sh\necho "$@" >> ${calls}\necho 'container does not exist' >&2\nexit 1\n`);
  chmodSync(runtime, 0o755);
  writeFileSync(join(bundle, 'tsrun.json'), JSON.stringify({ binaryName: runtime, root: join(root, 'state') }));
  writeFileSync(join(bundle, 'init.pid'), '4321');
  return { bundle, calls };
}

const deleteArgs = (bundle: string): string[] => ['-namespace', 'ns', '-id', 'c1', '-address', '/a', '-bundle', bundle, 'delete'];

test('delete with the marker of a clean daemon delete answers from it without running the OCI runtime', async (t) => {
  const { bundle, calls } = makeBundle(t);
  const exitedAt = new Date('2026-01-02T03:04:05.678Z');
  writeDeletedMarker(bundle, { pid: 1234, exitStatus: 3, exitedAt });

  const result = await deleteAction(parseFlags(deleteArgs(bundle)), { argv: [], env: {}, cwd: bundle, stdin: new Uint8Array(0), parentPid: 1 }, context, quiet);
  assert.equal(result.exitCode, 0, result.stderr);
  assert.equal(result.stderr, '');
  const response = containerd.task.v2.DeleteResponse.decode(result.stdout);
  assert.equal(response.pid, 1234);
  assert.equal(response.exitStatus, 3);
  const seconds = Number(response.exitedAt?.seconds ?? 0);
  assert.equal(seconds * 1000 + Math.round((response.exitedAt?.nanos ?? 0) / 1e6), exitedAt.getTime());
  assert.equal(existsSync(calls), false, 'the OCI runtime was not run');
});

test('delete without a marker (the daemon died) runs the full cleanup: runtime delete --force, 137, the init pid', async (t) => {
  const { bundle, calls } = makeBundle(t);
  const result = await deleteAction(parseFlags(deleteArgs(bundle)), { argv: [], env: {}, cwd: bundle, stdin: new Uint8Array(0), parentPid: 1 }, context, quiet);
  assert.equal(result.exitCode, 0, result.stderr);
  const response = containerd.task.v2.DeleteResponse.decode(result.stdout);
  assert.equal(response.pid, 4321);
  assert.equal(response.exitStatus, 137);
  assert.match(readFileSync(calls, 'utf8'), /delete --force c1/);
});

test('a marker that does not parse counts as none: the full cleanup runs', async (t) => {
  const { bundle, calls } = makeBundle(t);
  writeFileSync(deletedMarkerPath(bundle), '{"pid": "x"}');
  assert.equal(readDeletedMarker(bundle), undefined);
  const result = await deleteAction(parseFlags(deleteArgs(bundle)), { argv: [], env: {}, cwd: bundle, stdin: new Uint8Array(0), parentPid: 1 }, context, quiet);
  assert.equal(result.exitCode, 0, result.stderr);
  assert.equal(containerd.task.v2.DeleteResponse.decode(result.stdout).exitStatus, 137);
  assert.ok(existsSync(calls), 'the OCI runtime ran');
});

/** Just enough of a Runtime for recordCleanDeletes: its two events. */
function fakeRuntime(): Runtime {
  return new EventEmitter() as unknown as Runtime;
}

test('the daemon marks a bundle when its init was deleted, not for an exec, and not while the rootfs is mounted', (t) => {
  const { bundle } = makeBundle(t);
  const runtime = fakeRuntime();
  recordCleanDeletes(runtime, quiet);
  const emit = (event: string, payload: object): void => {
    (runtime as unknown as EventEmitter).emit(event, payload);
  };
  const exit = { pid: 77, exitStatus: 0, exitedAt: new Date('2026-05-06T07:08:09.000Z') };
  emit('task-create', { containerId: 'c1', bundle, rootfs: [], stdio: {}, checkpoint: '', pid: 77 });

  // The rootfs is still mounted (the core only logs a failed unmount): no marker.
  native.mount('tmpfs', join(bundle, 'rootfs'), 'tmpfs', 0, 'size=1m');
  try {
    emit('task-delete', { containerId: 'c1', id: 'c1', ...exit });
  } finally {
    native.umount2(join(bundle, 'rootfs'), 2);
  }
  assert.equal(existsSync(deletedMarkerPath(bundle)), false, 'no marker while something is mounted under rootfs');

  emit('task-create', { containerId: 'c1', bundle, rootfs: [], stdio: {}, checkpoint: '', pid: 77 });
  emit('task-delete', { containerId: 'c1', id: 'exec-1', ...exit });
  assert.equal(existsSync(deletedMarkerPath(bundle)), false, 'an exec delete leaves the container');
  emit('task-delete', { containerId: 'c1', id: 'c1', ...exit });
  assert.deepEqual(readDeletedMarker(bundle), exit);
  rmSync(deletedMarkerPath(bundle));
  emit('task-delete', { containerId: 'c1', id: 'c1', ...exit });
  assert.equal(existsSync(deletedMarkerPath(bundle)), false, 'a container is marked once, for the bundle it was created in');
});

test('start removes a stale marker from the bundle before its daemon runs', async (t) => {
  // The fast path must never answer for an older task of the same bundle path.
  const { bundle } = makeBundle(t);
  writeFileSync(join(bundle, 'config.json'), '{}');
  writeDeletedMarker(bundle, { pid: 1, exitStatus: 0, exitedAt: new Date() });
  const { start } = await import('./start.js');
  // A launcher that refuses: start fails after binding (and then removing) the group socket.
  const result = await start(parseFlags(['-namespace', 'ns', '-id', 'c1', '-address', join(bundle, 'no.sock'), 'start']), { argv: [], env: {}, cwd: bundle, stdin: new Uint8Array(0), parentPid: process.pid }, {
    native,
    launcher: { launch: () => Promise.reject(new Error('refused by the test')) },
  });
  assert.equal(result.exitCode, 1);
  assert.match(result.stderr, /refused by the test/);
  assert.equal(existsSync(deletedMarkerPath(bundle)), false);
});
