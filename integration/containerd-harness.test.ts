/**
 * Proves the integration harness itself against the stock runtime (io.containerd.runc.v2):
 * a private containerd starts, answers, runs the locally built busybox image, survives
 * restart and SIGKILL with its tasks, and cleanup leaves nothing behind on the host, also
 * when a test stopped half-way or containerd cannot come back.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import {
  BUSYBOX_IMAGE,
  RUNC_ROOT,
  createContainerdGrpcClient,
  decodeAny,
  importTestImages,
  isAlive,
  linuxResourcesAny,
  startContainerd,
  useContainerd,
  type ContainerdInstance,
} from './harness/index.js';

const RUNC_V2 = 'io.containerd.runc.v2';

/** `ctr tasks list` rows: id, pid, status. */
async function taskRows(instance: ContainerdInstance): Promise<Map<string, { pid: number; status: string }>> {
  const out = await instance.ctr.ok(['tasks', 'list']);
  const rows = new Map<string, { pid: number; status: string }>();
  for (const line of out.trim().split('\n').slice(1)) {
    const [id, pid, status] = line.trim().split(/\s+/);
    if (id !== undefined && pid !== undefined && status !== undefined) rows.set(id, { pid: Number(pid), status });
  }
  return rows;
}

/** Everything of one instance that could outlive it on the host, as one comparable object. */
async function hostTraces(instance: ContainerdInstance, ids: readonly string[]): Promise<Record<string, unknown>> {
  const leftovers = await instance.leftovers();
  return {
    mounts: leftovers.mounts.map((m) => m.mountPoint),
    processes: leftovers.processes.map((p) => p.argv.join(' ')),
    baseDir: leftovers.baseDirExists,
    shimSockets: ids.filter((id) => existsSync(instance.shimSocketPath(instance.namespace, id))),
    runcState: existsSync(join(RUNC_ROOT, instance.namespace)),
    cgroup: existsSync(join('/sys/fs/cgroup/pids', instance.namespace)),
  };
}

const nothingLeft = { mounts: [], processes: [], baseDir: false, shimSockets: [], runcState: false, cgroup: false };

describe('a private containerd 1.6 with the stock runc shim', () => {
  const containerd = useContainerd({ images: true });

  test('answers ctr version with the server version', async () => {
    assert.match(await containerd().ctr.serverVersion(), /^1\.6\./);
  });

  test('runs the busybox image: ctr run --rm prints hello', async () => {
    const result = await containerd().ctr.run(['run', '--rm', '--runtime', RUNC_V2, BUSYBOX_IMAGE, 't1', 'echo', 'hello']);
    assert.equal(result.stderr, '');
    assert.equal(result.code, 0);
    assert.equal(result.stdout, 'hello\n');
  });

  test('ctr run exits with the container exit status', async () => {
    const result = await containerd().ctr.run(['run', '--rm', '--runtime', RUNC_V2, BUSYBOX_IMAGE, 't2', 'sh', '-c', 'exit 3']);
    assert.equal(result.code, 3);
  });

  test('the image has the applets, users and sticky /tmp containers expect', async () => {
    const script = 'id -un; ls -ld /tmp | cut -c1-10; which sleep; test -x /usr/bin/env && echo env';
    const result = await containerd().ctr.run(['run', '--rm', '--runtime', RUNC_V2, BUSYBOX_IMAGE, 't3', 'sh', '-c', script]);
    assert.equal(result.stdout, 'root\ndrwxrwxrwt\n/bin/sleep\nenv\n');
  });

  test('the gRPC Tasks client gets, updates and measures a task, in the namespace sent as metadata', async () => {
    const instance = containerd();
    const grpc = createContainerdGrpcClient(instance.address, instance.namespace);
    try {
      await instance.ctr.ok(['run', '-d', '--runtime', RUNC_V2, BUSYBOX_IMAGE, 'grpc-1', 'sleep', '1000']);
      const task = await grpc.tasks.get('grpc-1');
      assert.equal(task.status, 'RUNNING');
      assert.ok(task.pid > 0);
      await assert.rejects(grpc.tasks.get('grpc-1', '', { namespace: 'default' }), /not found/);

      const limit = 64 * 1024 * 1024;
      await grpc.tasks.update('grpc-1', linuxResourcesAny({ memory: { limit } }));
      const cgroup = `/sys/fs/cgroup/memory/${instance.namespace}/grpc-1/memory.limit_in_bytes`;
      assert.equal(Number(readFileSync(cgroup, 'utf8')), limit);

      const [metric] = await grpc.tasks.metrics(['id==grpc-1']);
      assert.equal(metric?.data?.type_url, 'io.containerd.cgroups.v1.Metrics');
      const memory = decodeAny(metric.data)['memory'] as { usage: { limit: number; usage: number } };
      assert.equal(memory.usage.limit, limit);
      assert.ok(memory.usage.usage > 0);
    } finally {
      grpc.close();
      await instance.ctr.removeContainer('grpc-1');
    }
  });

  test('a running task survives restart() and kill() + start() with the same pid', async () => {
    const instance = containerd();
    await instance.ctr.ok(['run', '-d', '--runtime', RUNC_V2, BUSYBOX_IMAGE, 'survivor', 'sleep', '1000']);
    const before = (await taskRows(instance)).get('survivor');
    assert.equal(before?.status, 'RUNNING');
    // The shim socket is where containerd 1.6 derives it: /run/containerd/s/sha256(address/ns/id).
    assert.ok(existsSync(instance.shimSocketPath(instance.namespace, 'survivor')));

    await instance.restart();
    assert.deepEqual((await taskRows(instance)).get('survivor'), before);

    await instance.kill();
    assert.equal(instance.running, false);
    assert.ok(isAlive(before.pid), 'the container outlives a containerd crash');
    await instance.start();
    assert.deepEqual((await taskRows(instance)).get('survivor'), before);

    await instance.ctr.removeContainer('survivor');
    assert.equal((await taskRows(instance)).has('survivor'), false);
    assert.equal(isAlive(before.pid), false);
  });
});

describe('cleanup', () => {
  // Instances made here are cleaned by the tests themselves; this catches a test that failed first.
  const made: ContainerdInstance[] = [];
  after(async () => {
    for (const instance of made) await instance.cleanup();
  });

  async function instanceWithTasks(ids: readonly string[]): Promise<{ instance: ContainerdInstance; pids: number[] }> {
    const instance = await startContainerd();
    made.push(instance);
    await importTestImages(instance.ctr);
    for (const id of ids) await instance.ctr.ok(['run', '-d', '--runtime', RUNC_V2, BUSYBOX_IMAGE, id, 'sleep', '1000']);
    const rows = await taskRows(instance);
    const pids = ids.map((id) => rows.get(id)?.pid ?? 0);
    const traces = await hostTraces(instance, ids);
    // What cleanup must remove is really there: one rootfs mount and one shim per task.
    assert.equal((traces['mounts'] as string[]).filter((m) => m.endsWith('/rootfs')).length, ids.length);
    assert.ok((traces['processes'] as string[]).some((p) => p.includes('containerd-shim-runc-v2')));
    assert.deepEqual(traces['shimSockets'], ids);
    assert.equal(traces['runcState'], true);
    assert.equal(traces['cgroup'], true);
    return { instance, pids };
  }

  test('removes tasks, shims, container processes, mounts, sockets, cgroups and dirs', async () => {
    const ids = ['c1', 'c2'];
    const { instance, pids } = await instanceWithTasks(ids);
    const report = await instance.cleanup();
    assert.deepEqual(report.problems, []);
    assert.deepEqual([...report.removedContainers].sort(), ids.map((id) => `${instance.namespace}/${id}`));
    assert.deepEqual(await hostTraces(instance, ids), nothingLeft);
    assert.deepEqual(pids.filter(isAlive), []);
    assert.equal(existsSync(instance.logPath), false, 'the log goes when nothing failed');
    assert.deepEqual(await instance.cleanup(), { removedContainers: [], killedProcesses: [], unmounted: [], problems: [] });
  });

  test('after containerd was SIGKILLed half-way, it is started again to remove its tasks', async () => {
    const ids = ['k1'];
    const { instance, pids } = await instanceWithTasks(ids);
    await instance.kill();
    const report = await instance.cleanup();
    assert.deepEqual(report.problems, []);
    assert.deepEqual(report.removedContainers, [`${instance.namespace}/k1`]);
    assert.deepEqual(await hostTraces(instance, ids), nothingLeft);
    assert.deepEqual(pids.filter(isAlive), []);
  });

  test('when containerd cannot come back, shims and containers are killed and their mounts removed', async () => {
    const ids = ['o1'];
    const { instance, pids } = await instanceWithTasks(ids);
    await instance.kill();
    writeFileSync(instance.configPath, 'this is not toml = = =\n');
    const report = await instance.cleanup();
    try {
      assert.ok(report.problems.some((p) => p.startsWith('restarting containerd')), report.problems.join('\n'));
      assert.ok(report.killedProcesses.length >= 2, 'the shim and the container process');
      assert.deepEqual(await hostTraces(instance, ids), nothingLeft);
      assert.deepEqual(pids.filter(isAlive), []);
      assert.equal(existsSync(instance.logPath), true, 'a cleanup with problems keeps the log');
    } finally {
      rmSync(instance.logPath, { force: true });
    }
  });

  test('a containerd that cannot start is reported with its log, and leaves nothing', async () => {
    await assert.rejects(
      // containerd refuses the config ("Can't convert x(string) to int") and exits at once.
      startContainerd({ config: { version: 'x' } }),
      (error: Error) => {
        const logPath = /log (\/tmp\/ctd-\w+\.log)/.exec(error.message)?.[1];
        assert.ok(logPath !== undefined, error.message);
        assert.match(error.message, /containerd exited .*failed to unmarshal TOML/s);
        assert.equal(existsSync(logPath.replace(/\.log$/, '')), false);
        rmSync(logPath, { force: true });
        return true;
      },
    );
  });
});
