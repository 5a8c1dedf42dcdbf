/**
 * Signals and resources through tsrun (issue 5): `ctr task kill` with and without
 * `--all`, pause/resume, `ctr task metrics`, and Tasks/Update over containerd's gRPC API,
 * each checked against the kernel (live pids, the freezer and memory cgroups, a counter
 * the container writes into its own filesystem).
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, test } from 'node:test';
import { createContainerdGrpcClient, decodeAny, isAlive, linuxResourcesAny } from './harness/index.js';
import {
  cgroupFile,
  metricValues,
  psRows,
  readText,
  rootfsPath,
  runArgs,
  spawnCtr,
  useTsrunContainerd,
  waitFor,
  waitForTask,
  waitUntil,
  type CtrProcess,
} from './support/index.js';

/** A counter the container bumps every 50 ms into /tmp/n. */
const COUNTER = 'i=0; while :; do i=$((i+1)); echo $i > /tmp/n; sleep 0.05; done';

describe('kill, pause/resume, metrics and update with the tsrun runtime', () => {
  const containerd = useTsrunContainerd();

  test('kill --all reaches every process of the container; plain kill only the init', async () => {
    const instance = containerd();
    const id = containerd.id('kill-all');
    // sh is the container's pid 1: with no handler, SIGTERM from outside is dropped for it.
    const run = spawnCtr(instance, runArgs(['--rm'], id, ['sh', '-c', 'sleep 1000 & sleep 1000 & wait $!']));
    let exec: CtrProcess | undefined;
    try {
      await waitForTask(instance.ctr, id, 'RUNNING');
      exec = spawnCtr(instance, ['tasks', 'exec', '--exec-id', 'bystander', id, 'sleep', '1000']);
      const rows = await waitUntil('ps to show the init, its two children and the exec', async () => {
        const now = await psRows(instance.ctr, id);
        return now.length === 4 ? now : undefined;
      });
      const pids = rows.map((row) => row.pid);

      await instance.ctr.ok(['tasks', 'kill', '--signal', 'TERM', id]);
      // Nothing can announce that a signal was ignored: give it time to act if it would.
      await sleep(500);
      assert.deepEqual(pids.filter((pid) => !isAlive(pid)), [], 'a SIGTERM to the init alone changes nothing');

      await instance.ctr.ok(['tasks', 'kill', '--all', '--signal', 'TERM', id]);
      const execResult = await exec.result;
      assert.equal(execResult.code, 143, `the exec got SIGTERM: ${execResult.stderr}`);
      // The children died of SIGTERM, so `wait $!` returned 128+15 and sh exited with it.
      const runResult = await run.result;
      assert.equal(runResult.code, 143, runResult.stderr);
      await waitFor('every process of the container to be gone', () => pids.every((pid) => !isAlive(pid)));
    } finally {
      run.kill();
      exec?.kill();
      await instance.ctr.removeContainer(id);
    }
  });

  test('kill --all -s KILL ends a container whose init ignores SIGTERM and left children running', async () => {
    const instance = containerd();
    const id = containerd.id('kill-all-9');
    const run = spawnCtr(instance, runArgs(['--rm'], id, ['sh', '-c', 'trap "" TERM; sleep 1000 & sleep 1000 & wait']));
    try {
      await waitForTask(instance.ctr, id, 'RUNNING');
      const rows = await waitUntil('ps to show the init and its two children', async () => {
        const now = await psRows(instance.ctr, id);
        return now.length === 3 ? now : undefined;
      });
      await instance.ctr.ok(['tasks', 'kill', '--all', '--signal', 'KILL', id]);
      const result = await run.result;
      assert.equal(result.code, 137, result.stderr);
      await waitFor('every process of the container to be gone', () => rows.every((row) => !isAlive(row.pid)));
    } finally {
      run.kill();
      await instance.ctr.removeContainer(id);
    }
  });

  test('pause freezes the container (PAUSED, no progress), resume thaws it (RUNNING, progress)', async () => {
    const instance = containerd();
    const id = containerd.id('pause');
    const counter = rootfsPath(instance, id, 'tmp/n');
    const freezer = cgroupFile(instance, 'freezer', id, 'freezer.state');
    const value = (): number => Number(readText(counter) ?? 'NaN');
    try {
      await instance.ctr.ok(runArgs(['-d'], id, ['sh', '-c', COUNTER]));
      await waitForTask(instance.ctr, id, 'RUNNING');
      await waitFor('the counter to start', () => value() > 2);

      await instance.ctr.ok(['tasks', 'pause', id]);
      await waitForTask(instance.ctr, id, 'PAUSED');
      assert.equal(readText(freezer), 'FROZEN');
      const frozenAt = value();
      await sleep(600);
      assert.equal(value(), frozenAt, 'the counter does not advance while paused');
      const exec = await instance.ctr.run(['tasks', 'exec', '--exec-id', 'while-paused', id, 'true']);
      assert.notEqual(exec.code, 0, 'no exec into a paused container');

      await instance.ctr.ok(['tasks', 'resume', id]);
      await waitForTask(instance.ctr, id, 'RUNNING');
      assert.equal(readText(freezer), 'THAWED');
      await waitFor('the counter to advance again', () => value() > frozenAt + 2);
    } finally {
      await instance.ctr.removeContainer(id);
    }
  });

  test('ctr task metrics prints the cgroup v1 memory, cpu and pids figures of the container', async () => {
    const instance = containerd();
    const id = containerd.id('metrics');
    try {
      await instance.ctr.ok(runArgs(['-d'], id, ['sh', '-c', 'sleep 1000 & sleep 1000 & wait']));
      await waitForTask(instance.ctr, id, 'RUNNING');
      const values = await waitUntil('metrics to count three pids', async () => {
        const now = await metricValues(instance.ctr, id);
        return now.get('pids.current') === '3' ? now : undefined;
      });
      const usage = Number(values.get('memory.usage_in_bytes'));
      assert.ok(usage > 0, `memory.usage_in_bytes is ${values.get('memory.usage_in_bytes') ?? 'missing'}`);
      // The kernel's own figure for the same cgroup is of the same order (it moves between reads).
      const kernel = Number(readText(cgroupFile(instance, 'memory', id, 'memory.usage_in_bytes')));
      assert.ok(usage > kernel / 4 && usage < kernel * 4, `metrics ${usage} vs cgroup ${kernel}`);
      assert.ok(Number(values.get('cpuacct.usage')) > 0, `cpuacct.usage is ${values.get('cpuacct.usage') ?? 'missing'}`);
    } finally {
      await instance.ctr.removeContainer(id);
    }
  });

  test('Tasks/Update over gRPC sets the memory and pids limits in the container\'s cgroups', async () => {
    const instance = containerd();
    const id = containerd.id('update');
    const grpc = createContainerdGrpcClient(instance.address, instance.namespace);
    try {
      await instance.ctr.ok(runArgs(['-d'], id, ['sleep', '1000']));
      await waitForTask(instance.ctr, id, 'RUNNING');
      const limit = 96 * 1024 * 1024;
      await grpc.tasks.update(id, linuxResourcesAny({ memory: { limit }, pids: { limit: 42 } }));

      assert.equal(readText(cgroupFile(instance, 'memory', id, 'memory.limit_in_bytes')), String(limit));
      assert.equal(readText(cgroupFile(instance, 'pids', id, 'pids.max')), '42');
      const values = await metricValues(instance.ctr, id);
      assert.equal(values.get('memory.limit_in_bytes'), String(limit));
      assert.equal(values.get('pids.limit'), '42');
      const [metric] = await grpc.tasks.metrics([`id==${id}`]);
      assert.equal(metric?.data?.type_url, 'io.containerd.cgroups.v1.Metrics');
      const memory = decodeAny(metric.data)['memory'] as { usage: { limit: number } };
      assert.equal(memory.usage.limit, limit);

      // Invalid resources are refused with a reason, and the task runs on.
      await assert.rejects(grpc.tasks.update(id, { type_url: 'types.containerd.io/opencontainers/runtime-spec/1/LinuxResources', value: Buffer.from('{not json') }), /json|invalid/i);
      await waitForTask(instance.ctr, id, 'RUNNING');
    } finally {
      grpc.close();
      await instance.ctr.removeContainer(id);
    }
  });
});
