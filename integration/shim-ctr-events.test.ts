/**
 * Task events through tsrun (issue 5), read from containerd's gRPC event stream and
 * decoded with containerd's own protos: the order containerd requires (create < start <
 * exit < delete; exec-added < exec-started < the exec's exit; every exec's exit before the
 * init's), and the exit statuses and pids they carry.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { createContainerdGrpcClient, type ContainerdGrpcClient, type EventSubscription } from './harness/index.js';
import { firstEvent, isTaskEvent, runArgs, spawnCtr, taskEventsOf, useTsrunContainerd, waitForTask, type CtrProcess } from './support/index.js';

describe('task events with the tsrun runtime', () => {
  const containerd = useTsrunContainerd();
  let grpc: ContainerdGrpcClient;
  before(() => {
    grpc = createContainerdGrpcClient(containerd().address, containerd().namespace);
    containerd.onTeardown(() => {
      grpc.close();
    });
  });

  async function subscribed<T>(fn: (events: EventSubscription) => Promise<T>): Promise<T> {
    const subscription = await grpc.subscribe([`namespace==${containerd().namespace}`]);
    try {
      return await fn(subscription);
    } finally {
      subscription.close();
    }
  }

  test('a run: /tasks/create < /tasks/start < /tasks/exit < /tasks/delete, with the exit status and pid', async () => {
    const id = containerd.id('run-events');
    await subscribed(async (subscription) => {
      const result = await containerd().ctr.run(runArgs(['--rm'], id, ['sh', '-c', 'exit 3']));
      assert.equal(result.code, 3, result.stderr);
      await subscription.waitFor(isTaskEvent('/tasks/delete', id), 20_000);
      const events = taskEventsOf(subscription.received, id);
      const create = firstEvent(events, '/tasks/create');
      const start = firstEvent(events, '/tasks/start');
      const exit = firstEvent(events, '/tasks/exit');
      const deleted = firstEvent(events, '/tasks/delete');
      assert.ok(create !== undefined && start !== undefined && exit !== undefined && deleted !== undefined, JSON.stringify(events));
      assert.ok(create.index < start.index && start.index < exit.index && exit.index < deleted.index, events.map((e) => e.topic).join(' '));
      assert.ok(create.pid !== undefined && create.pid > 0);
      assert.equal(start.pid, create.pid);
      assert.equal(exit.pid, create.pid);
      assert.equal(exit.processId, id, 'the init exit names the container as its process id');
      assert.equal(exit.exitStatus, 3);
      assert.equal(deleted.exitStatus, 3);
      assert.equal(events.filter((e) => e.topic === '/tasks/exit').length, 1, 'one exit event');
      assert.equal(events.filter((e) => e.topic === '/tasks/start').length, 1, 'one start event');
    });
  });

  test('an exec: /tasks/exec-added < /tasks/exec-started < /tasks/exit of the exec, with its status and pid', async () => {
    const instance = containerd();
    const id = containerd.id('exec-events');
    try {
      await instance.ctr.ok(runArgs(['-d'], id, ['sleep', '1000']));
      await waitForTask(instance.ctr, id, 'RUNNING');
      await subscribed(async (subscription) => {
        const result = await instance.ctr.run(['tasks', 'exec', '--exec-id', 'ex1', id, 'sh', '-c', 'exit 5']);
        assert.equal(result.code, 5, result.stderr);
        await subscription.waitFor(isTaskEvent('/tasks/exit', id, 'ex1'), 20_000);
        const events = taskEventsOf(subscription.received, id);
        const added = firstEvent(events, '/tasks/exec-added', 'ex1');
        const started = firstEvent(events, '/tasks/exec-started', 'ex1');
        const exit = firstEvent(events, '/tasks/exit', 'ex1');
        assert.ok(added !== undefined && started !== undefined && exit !== undefined, JSON.stringify(events));
        assert.ok(added.index < started.index && started.index < exit.index, events.map((e) => `${e.topic}(${e.processId})`).join(' '));
        assert.ok(started.pid !== undefined && started.pid > 0);
        assert.equal(exit.pid, started.pid);
        assert.equal(exit.exitStatus, 5);
        assert.equal(firstEvent(events, '/tasks/exit', id), undefined, 'the init did not exit');
        // containerd deleted the exec's process after its exit: that is no task delete.
        assert.equal(firstEvent(events, '/tasks/delete'), undefined, JSON.stringify(events));
      });
    } finally {
      await instance.ctr.removeContainer(id);
    }
  });

  test('pause and resume: /tasks/paused then /tasks/resumed', async () => {
    const instance = containerd();
    const id = containerd.id('pause-events');
    try {
      await instance.ctr.ok(runArgs(['-d'], id, ['sleep', '1000']));
      await waitForTask(instance.ctr, id, 'RUNNING');
      await subscribed(async (subscription) => {
        await instance.ctr.ok(['tasks', 'pause', id]);
        await instance.ctr.ok(['tasks', 'resume', id]);
        const resumed = await subscription.waitFor(isTaskEvent('/tasks/resumed', id), 20_000);
        const paused = await subscription.waitFor(isTaskEvent('/tasks/paused', id), 20_000);
        assert.ok(subscription.received.indexOf(paused) < subscription.received.indexOf(resumed));
      });
    } finally {
      await instance.ctr.removeContainer(id);
    }
  });

  test('a container over its memory limit: /tasks/oom, then its /tasks/exit with 137', async () => {
    const id = containerd.id('oom');
    await subscribed(async (subscription) => {
      // sh keeps 200 MB in a variable under a 32 MiB limit (this host has no swap to escape to).
      const hog = 'x=$(head -c 200000000 /dev/zero | tr "\\0" a); echo survived';
      const result = await containerd().ctr.run(runArgs(['--rm', '--memory-limit', String(32 * 1024 * 1024)], id, ['sh', '-c', hog]), { timeoutMs: 60_000 });
      assert.equal(result.code, 137, `${result.stdout}${result.stderr}`);
      await subscription.waitFor(isTaskEvent('/tasks/exit', id), 20_000);
      const events = taskEventsOf(subscription.received, id);
      const oom = firstEvent(events, '/tasks/oom');
      const exit = firstEvent(events, '/tasks/exit', id);
      assert.ok(oom !== undefined, `an OOM event: ${events.map((e) => e.topic).join(' ')}`);
      assert.ok(exit !== undefined && oom.index < exit.index);
      assert.equal(exit.exitStatus, 137);
    });
  });

  test('several execs, then the init killed: every exec exit is published before the init exit', async () => {
    const instance = containerd();
    const id = containerd.id('exit-order');
    const execIds = ['x0', 'x1', 'x2', 'x3'];
    const execs: CtrProcess[] = [];
    try {
      await instance.ctr.ok(runArgs(['-d'], id, ['sleep', '1000']));
      await waitForTask(instance.ctr, id, 'RUNNING');
      await subscribed(async (subscription) => {
        for (const execId of execIds) execs.push(spawnCtr(instance, ['tasks', 'exec', '--exec-id', execId, id, 'sleep', '1000']));
        for (const execId of execIds) await subscription.waitFor(isTaskEvent('/tasks/exec-started', id, execId), 20_000);

        // SIGKILL to the init ends the pid namespace: the kernel kills every exec with it,
        // so all exits reach the shim at about the same time.
        await instance.ctr.ok(['tasks', 'kill', '--signal', 'KILL', id]);
        await subscription.waitFor(isTaskEvent('/tasks/exit', id, id), 20_000);
        const events = taskEventsOf(subscription.received, id);
        const initExit = firstEvent(events, '/tasks/exit', id);
        assert.ok(initExit !== undefined);
        assert.equal(initExit.exitStatus, 137);
        for (const execId of execIds) {
          const exit = firstEvent(events, '/tasks/exit', execId);
          assert.ok(exit !== undefined, `exec ${execId} has an exit event: ${events.map((e) => `${e.topic}(${e.processId})`).join(' ')}`);
          assert.ok(exit.index < initExit.index, `exec ${execId} exit (${exit.index}) before the init exit (${initExit.index})`);
          assert.equal(exit.exitStatus, 137);
        }
        for (const exec of execs) assert.equal((await exec.result).code, 137);
      });
    } finally {
      for (const exec of execs) exec.kill();
      await instance.ctr.removeContainer(id);
    }
  });
});
