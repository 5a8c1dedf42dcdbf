// The container lifecycle over real runc: exit codes, event order, early exits,
// pause/resume, kill --all, update, pids, and the errors a user sees.
import assert from 'node:assert/strict';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { ErrorCode } from './api.js';
import { RuntimeError } from './errors.js';
import { canRunRunc } from './test-bundle.js';
import type { Harness } from './test-harness.js';
import { createHarness } from './test-harness.js';

const SIGTERM = 15;
const SIGKILL = 9;
const skip = canRunRunc();

function rejectsWith(code: ErrorCode, message?: RegExp): (err: unknown) => boolean {
  return (err: unknown) => {
    assert.ok(err instanceof RuntimeError, `expected a RuntimeError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (message !== undefined) assert.match(err.message, message);
    return true;
  };
}

describe('runtime lifecycle (real runc)', { skip }, () => {
  let h: Harness;
  before(() => {
    h = createHarness('lifecycle');
  });
  after(async () => {
    await h.teardown();
  });

  test('init exit codes 0, 1 and 255 are exact, with events in order', async () => {
    await Promise.all(
      [0, 1, 255].map(async (code) => {
        const id = `exit-${code}`;
        const { pid } = await h.run(id, { args: ['sh', '-c', `exit ${code}`] });
        const exit = await h.runtime.wait(id);
        assert.equal(exit.exitStatus, code);
        assert.equal(exit.pid, pid);
        const state = await h.runtime.state(id);
        assert.equal(state.status, 'stopped');
        assert.equal(state.exit?.exitStatus, code);
        const deleted = await h.runtime.delete(id);
        assert.equal(deleted.exitStatus, code);
        assert.deepEqual(
          h.eventsOf(id).map((e) => e.type),
          ['task-create', 'task-start', 'task-exit', 'task-delete'],
        );
        const exitEvent = h.eventsOf(id).find((e) => e.type === 'task-exit');
        assert.equal(exitEvent?.type === 'task-exit' ? exitEvent.exitStatus : -1, code);
        assert.ok(!h.runtime.containerIds().includes(id));
      }),
    );
  });

  test('init killed by SIGTERM is 143 and by SIGKILL is 137', async () => {
    // A pid namespace's init ignores SIGTERM it has no handler for, so the SIGTERM
    // case runs without a pid namespace of its own (as `--pid=host` does).
    const cases = [
      { id: 'sig-term', signal: SIGTERM, status: 143, ownPidNamespace: false },
      { id: 'sig-kill', signal: SIGKILL, status: 137, ownPidNamespace: true },
    ];
    await Promise.all(
      cases.map(async (c) => {
        await h.run(c.id, { args: ['sleep', '1000'], ownPidNamespace: c.ownPidNamespace });
        await h.runtime.kill(c.id, '', c.signal, false);
        assert.equal((await h.runtime.wait(c.id)).exitStatus, c.status);
        await h.runtime.delete(c.id);
      }),
    );
  });

  test('exec exit codes 0, 1, 255 and SIGTERM 143, SIGKILL 137 are exact, with events in order', async () => {
    const id = 'exec-codes';
    await h.run(id, { args: ['sleep', '1000'] });
    const codes = [0, 1, 255];
    for (const code of codes) await h.runtime.exec(h.execRequest(id, `e${code}`, ['sh', '-c', `exit ${code}`]));
    await h.runtime.exec(h.execRequest(id, 'term', ['sleep', '1000']));
    await h.runtime.exec(h.execRequest(id, 'kill', ['sleep', '1000']));
    await Promise.all(['e0', 'e1', 'e255', 'term', 'kill'].map((e) => h.runtime.start(id, e)));
    await h.runtime.kill(id, 'term', SIGTERM, false);
    await h.runtime.kill(id, 'kill', SIGKILL, false);
    const expected: Record<string, number> = { e0: 0, e1: 1, e255: 255, term: 143, kill: 137 };
    for (const [execId, status] of Object.entries(expected)) {
      assert.equal((await h.runtime.wait(id, execId)).exitStatus, status, execId);
      const types = h.eventsOf(id).filter((e) => ('execId' in e && e.execId === execId) || (e.type === 'task-exit' && e.id === execId));
      assert.deepEqual(
        types.map((e) => e.type),
        ['exec-added', 'exec-started', 'task-exit'],
        execId,
      );
      const deleted = await h.runtime.delete(id, execId);
      assert.equal(deleted.exitStatus, status);
      await assert.rejects(h.runtime.state(id, execId), rejectsWith('NotFound'));
    }
    // On this machine exec processes are our children (reparented to the subreaper
    // when runc exits), so their real statuses come from waitid, never the 255 fallback.
    assert.ok(!h.logger.entries.some((e) => e.msg?.includes('not our child') === true));
    await h.runtime.kill(id, '', SIGKILL, false);
    await h.runtime.wait(id);
    await h.runtime.delete(id);
  });

  test('early exits: an init and an exec that exit before start returns are delivered once, after the start event', async () => {
    // A runc that lingers after `start` and `exec`, so the processes are sure to exit
    // (and be reaped) before the start call returns.
    const wrapper = join(h.fixture.dir, 'slow-runc');
    writeFileSync(
      wrapper,
      '#!/bin/sh\nrunc "$@"\nrc=$?\nfor a in "$@"; do case "$a" in start|exec) sleep 0.5;; esac; done\nexit $rc\n',
    );
    chmodSync(wrapper, 0o755);
    const settings = { ...h.fixture.settings, binaryName: wrapper };
    const id = 'early';
    const bundle = h.fixture.bundle(id, { args: ['sh', '-c', 'exit 3'] });
    await h.runtime.create({ ...h.fixture.request(bundle), settings });
    await h.runtime.start(id);
    const returnedAt = Date.now();
    const exit = await h.runtime.wait(id);
    assert.equal(exit.exitStatus, 3);
    assert.ok(exit.exitedAt.getTime() < returnedAt - 200, 'the init was reaped while runc start was still running');
    assert.deepEqual(
      h.eventsOf(id).map((e) => e.type),
      ['task-create', 'task-start', 'task-exit'],
    );
    await h.runtime.delete(id);

    const id2 = 'early-exec';
    const bundle2 = h.fixture.bundle(id2, { args: ['sleep', '1000'] });
    await h.runtime.create({ ...h.fixture.request(bundle2), settings });
    await h.runtime.start(id2);
    await h.runtime.exec(h.execRequest(id2, 'quick', ['sh', '-c', 'exit 4']));
    await h.runtime.start(id2, 'quick');
    const execReturnedAt = Date.now();
    const execExit = await h.runtime.wait(id2, 'quick');
    assert.equal(execExit.exitStatus, 4, 'the real status, taken from the unclaimed exits');
    assert.ok(execExit.exitedAt.getTime() < execReturnedAt - 200, 'the exec was reaped before runc exec returned');
    const execEvents = h.eventsOf(id2).filter((e) => e.type !== 'task-create' && e.type !== 'task-start');
    assert.deepEqual(
      execEvents.map((e) => e.type),
      ['exec-added', 'exec-started', 'task-exit'],
    );
    await h.runtime.kill(id2, '', SIGKILL, false);
    await h.runtime.wait(id2);
    await h.runtime.delete(id2);

    // The init dies while an exec's start is still in runc: the exec (killed with the
    // pid namespace) is announced and its exit published before the init's exit.
    const id3 = 'init-dies-during-exec-start';
    const bundle3 = h.fixture.bundle(id3, { args: ['sleep', '1000'] });
    await h.runtime.create({ ...h.fixture.request(bundle3), settings });
    await h.runtime.start(id3);
    await h.runtime.exec(h.execRequest(id3, 'slow', ['sleep', '1000']));
    const starting = h.runtime.start(id3, 'slow');
    // runc exec is done once it wrote the pid file; the wrapper lingers 0.5 s after that.
    await until(() => Promise.resolve(existsSync(join(bundle3.path, 'slow.pid'))), 'runc exec to write the pid file');
    await h.runtime.kill(id3, '', SIGKILL, false);
    await starting;
    assert.equal((await h.runtime.wait(id3)).exitStatus, 137);
    assert.equal((await h.runtime.wait(id3, 'slow')).exitStatus, 137);
    const order = h.eventsOf(id3).map((e) => (e.type === 'task-exit' ? `exit:${e.id}` : e.type));
    assert.deepEqual(order, ['task-create', 'task-start', 'exec-added', 'exec-started', 'exit:slow', `exit:${id3}`]);
    await h.runtime.delete(id3, 'slow');
    await h.runtime.delete(id3);
  });

  test('an exec whose start fails: the start is refused with runc\'s reason, no exit event, the container goes on', async () => {
    const id = 'bad-exec';
    await h.run(id, { args: ['sleep', '1000'] });
    await h.runtime.exec(h.execRequest(id, 'nope', ['/no/such/program']));
    await assert.rejects(h.runtime.start(id, 'nope'), rejectsWith('Unknown', /runc exec of container 'bad-exec' failed: .*no such file/i));
    const state = await h.runtime.state(id, 'nope');
    assert.equal(state.status, 'stopped');
    assert.equal(state.exit?.exitStatus, 255);
    assert.equal((await h.runtime.wait(id, 'nope')).exitStatus, 255);
    await h.runtime.delete(id, 'nope');
    await h.runtime.exec(h.execRequest(id, 'ok', ['sh', '-c', 'exit 9']));
    await h.runtime.start(id, 'ok');
    assert.equal((await h.runtime.wait(id, 'ok')).exitStatus, 9);
    await h.runtime.kill(id, '', SIGKILL, false);
    assert.equal((await h.runtime.wait(id)).exitStatus, 137, 'the failed exec does not hold the init exit');
    assert.deepEqual(
      h.eventsOf(id).map((e) => (e.type === 'task-exit' ? `exit:${e.id}` : e.type)),
      ['task-create', 'task-start', 'exec-added', 'exec-added', 'exec-started', 'exit:ok', `exit:${id}`],
    );
    await h.runtime.delete(id);
  });

  test('pause reports pausing, then paused; resume runs again; events emitted', async () => {
    const id = 'pause';
    await h.run(id, { args: ['sleep', '1000'] });
    const pausing = h.runtime.pause(id);
    assert.equal((await h.runtime.state(id)).status, 'pausing');
    await pausing;
    assert.equal((await h.runtime.state(id)).status, 'paused');
    await assert.rejects(h.runtime.pause(id), rejectsWith('FailedPrecondition', /cannot pause task in paused state/));
    await assert.rejects(h.runtime.delete(id), rejectsWith('FailedPrecondition', /cannot delete a running process: kill it and wait for it to exit first/));
    await h.runtime.resume(id);
    assert.equal((await h.runtime.state(id)).status, 'running');
    assert.deepEqual(
      h.eventsOf(id).map((e) => e.type),
      ['task-create', 'task-start', 'task-paused', 'task-resumed'],
    );
    await h.runtime.kill(id, '', SIGKILL, false);
    assert.equal((await h.runtime.wait(id)).exitStatus, 137);
    await h.runtime.delete(id);
  });

  test('kill --all takes every process of the container', async () => {
    const id = 'kill-all';
    await h.run(id, { args: ['sh', '-c', 'sleep 1000 & sleep 1000 & wait'] });
    await until(async () => (await h.runtime.pids(id)).length === 3, 'three processes');
    const pids = (await h.runtime.pids(id)).map((p) => p.pid);
    await h.runtime.kill(id, '', SIGKILL, true);
    assert.equal((await h.runtime.wait(id)).exitStatus, 137);
    for (const pid of pids) await until(() => Promise.resolve(!existsSync(`/proc/${pid}`)), `pid ${pid} gone`);
    await h.runtime.delete(id);
  });

  test('without its own pid namespace, the init exit kills the processes it left behind', async () => {
    const id = 'shared-pidns';
    await h.run(id, { args: ['sh', '-c', 'sleep 1000 & exec sleep 999'], ownPidNamespace: false });
    await until(async () => (await h.runtime.pids(id)).length === 2, 'two processes');
    const pids = (await h.runtime.pids(id)).map((p) => p.pid);
    await h.runtime.kill(id, '', SIGKILL, false);
    assert.equal((await h.runtime.wait(id)).exitStatus, 137);
    for (const pid of pids) await until(() => Promise.resolve(!existsSync(`/proc/${pid}`)), `pid ${pid} gone (and reaped)`);
    await h.runtime.delete(id);
  });

  test('update sets a memory limit in the container cgroup', async () => {
    const id = 'update';
    const { bundle } = await h.run(id, { args: ['sleep', '1000'] });
    await h.runtime.update(id, { memory: { limit: 64 * 1024 * 1024 } });
    const limit = readFileSync(join('/sys/fs/cgroup/memory', bundle.cgroupsPath, 'memory.limit_in_bytes'), 'utf8');
    assert.equal(Number(limit), 64 * 1024 * 1024);
    await assert.rejects(h.runtime.update(id, 'not an object'), rejectsWith('InvalidArgument'));
    await h.runtime.kill(id, '', SIGKILL, false);
    await h.runtime.wait(id);
    await assert.rejects(h.runtime.update(id, { memory: { limit: 1 } }), rejectsWith('FailedPrecondition'));
    await h.runtime.delete(id);
  });

  test('pids lists the container processes and names exec processes', async () => {
    const id = 'pids';
    const { pid } = await h.run(id, { args: ['sleep', '1000'] });
    await h.runtime.exec(h.execRequest(id, 'x1', ['sleep', '1000']));
    const { pid: execPid } = await h.runtime.start(id, 'x1');
    const pids = await h.runtime.pids(id);
    assert.deepEqual(
      pids.map((p) => [p.pid, p.execId]).sort((a, b) => Number(a[0]) - Number(b[0])),
      [
        [pid, undefined],
        [execPid, 'x1'],
      ].sort((a, b) => Number(a[0]) - Number(b[0])),
    );
    assert.equal(h.runtime.initPid(id), pid);
    await h.runtime.kill(id, '', SIGKILL, true);
    await h.runtime.wait(id);
    await h.runtime.delete(id);
  });

  test('the init exit is emitted after every exec exit, even when the execs die with it', async () => {
    const id = 'exec-then-init';
    await h.run(id, { args: ['sleep', '1000'] });
    const execIds = ['a', 'b', 'c', 'd'];
    for (const e of execIds) {
      await h.runtime.exec(h.execRequest(id, e, ['sleep', '1000']));
      await h.runtime.start(id, e);
    }
    await h.runtime.kill(id, '', SIGKILL, false); // the pid namespace dies: execs are killed by the kernel
    await h.runtime.wait(id);
    const exits = h.eventsOf(id).filter((e) => e.type === 'task-exit');
    assert.equal(exits.length, execIds.length + 1);
    assert.equal(exits[exits.length - 1]?.type === 'task-exit' ? exits[exits.length - 1]?.id : '', id, 'the init exit is last');
    for (const e of execIds) assert.equal((await h.runtime.wait(id, e)).exitStatus, 137);
    await assert.rejects(h.runtime.exec(h.execRequest(id, 'late', ['true'])), rejectsWith('FailedPrecondition'));
    await h.runtime.delete(id);
  });

  test('a created, never started container can be deleted: its exit goes out before the delete event', async () => {
    const id = 'never-started';
    const { pid } = await h.create(id, { args: ['sleep', '1000'] });
    assert.ok(pid > 0);
    assert.equal((await h.runtime.state(id)).status, 'created');
    await assert.rejects(h.runtime.pause(id), rejectsWith('FailedPrecondition', /cannot pause task in created state: start it first/));
    await h.runtime.delete(id);
    assert.deepEqual(
      h.eventsOf(id).map((e) => e.type),
      ['task-create', 'task-exit', 'task-delete'],
    );
    await until(() => Promise.resolve(!existsSync(`/proc/${pid}`)), 'runc init gone');
  });

  test('errors a user sees: ids, bundles, duplicates, states', async () => {
    const base = h.fixture.bundle('errs', { args: ['sleep', '1000'] });
    const request = h.fixture.request(base);
    await assert.rejects(h.runtime.create({ ...request, id: '../x' }), rejectsWith('InvalidArgument', /container id '\.\.\/x' is invalid/));
    await assert.rejects(h.runtime.create({ ...request, id: '' }), rejectsWith('InvalidArgument'));
    await assert.rejects(h.runtime.create({ ...request, id: 'y'.repeat(77) }), rejectsWith('InvalidArgument'));
    await assert.rejects(h.runtime.create({ ...request, id: 'nob', bundle: join(h.fixture.dir, 'missing') }), rejectsWith('NotFound', /does not exist/));
    await assert.rejects(h.runtime.create({ ...request, id: 'rel', bundle: 'relative/path' }), rejectsWith('InvalidArgument', /not absolute/));
    const noConfig = h.fixture.bundle('noconf', { args: ['true'] });
    writeFileSync(join(noConfig.path, 'config.json'), '{ not json');
    await assert.rejects(h.runtime.create(h.fixture.request(noConfig)), rejectsWith('InvalidArgument', /not valid JSON/));
    const badArgs = h.fixture.bundle('badargs', { args: ['/no/such/program'] });
    await assert.rejects(h.runtime.create(h.fixture.request(badArgs)), rejectsWith('Unknown', /runc create of container 'badargs' failed: .+/));
    assert.ok(!h.runtime.containerIds().includes('badargs'));

    await h.runtime.create(request);
    await assert.rejects(h.runtime.create(request), rejectsWith('AlreadyExists', /container 'errs' already exists/));
    await assert.rejects(h.runtime.state('nope'), rejectsWith('NotFound', /container 'nope' not found/));
    await assert.rejects(h.runtime.state('errs', 'nope'), rejectsWith('NotFound'));
    await h.runtime.start('errs');
    await assert.rejects(h.runtime.start('errs'), rejectsWith('FailedPrecondition', /cannot start task in running state: it was already started/));
    await assert.rejects(h.runtime.resume('errs'), rejectsWith('FailedPrecondition', /cannot resume task in running state: only a paused task can be resumed/));
    await h.runtime.exec(h.execRequest('errs', 'dup', ['true']));
    await assert.rejects(h.runtime.exec(h.execRequest('errs', 'dup', ['true'])), rejectsWith('AlreadyExists'));
    await assert.rejects(h.runtime.exec(h.execRequest('errs', 'a/b', ['true'])), rejectsWith('InvalidArgument'));
    await assert.rejects(h.runtime.exec({ ...h.execRequest('errs', 'nospec', ['true']), spec: 'x' }), rejectsWith('InvalidArgument'));
    await assert.rejects(h.runtime.kill('errs', 'dup', SIGKILL, false), rejectsWith('FailedPrecondition', /not started/));
    await assert.rejects(h.runtime.kill('errs', '', 65, false), rejectsWith('InvalidArgument', /signal 65 is invalid/));
    await h.runtime.start('errs', 'dup');
    await h.runtime.wait('errs', 'dup');
    await assert.rejects(h.runtime.kill('errs', 'dup', SIGKILL, false), rejectsWith('NotFound', /process already finished/));
    await assert.rejects(h.runtime.delete('errs'), rejectsWith('FailedPrecondition', /cannot delete a running process: kill it and wait for it to exit first/));
    await h.runtime.kill('errs', '', SIGKILL, false);
    await h.runtime.wait('errs');
    await assert.rejects(h.runtime.kill('errs', '', SIGKILL, false), rejectsWith('NotFound'));
    await h.runtime.delete('errs', 'dup');
    await h.runtime.delete('errs');
    await assert.rejects(h.runtime.delete('errs'), rejectsWith('NotFound'));
  });
});

async function until(check: () => Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
