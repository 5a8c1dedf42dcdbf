/**
 * `ctr task exec` and `ctr task ps` through tsrun (issue 5): exec exit statuses and
 * output, a duplicate exec id refused while the first runs, an exec killed by its exec
 * id, and ps listing the init and exec processes by host pid.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createContainerdGrpcClient, isAlive } from './harness/index.js';
import { psRows, runArgs, spawnCtr, useTsrunContainerd, waitForTask, waitUntil, type CtrProcess } from './support/index.js';

describe('ctr task exec and ps with the tsrun runtime', () => {
  const containerd = useTsrunContainerd();

  /** Runs `fn` against a detached `sleep 1000` container, removed afterwards. */
  async function withSleeper(prefix: string, fn: (id: string) => Promise<void>): Promise<void> {
    const instance = containerd();
    const id = containerd.id(prefix);
    try {
      await instance.ctr.ok(runArgs(['-d'], id, ['sleep', '1000']));
      await waitForTask(instance.ctr, id, 'RUNNING');
      await fn(id);
    } finally {
      await instance.ctr.removeContainer(id);
    }
  }

  test('exec output and exit statuses 0 and 5 reach ctr', async () => {
    await withSleeper('exec-codes', async (id) => {
      const { ctr } = containerd();
      const ok = await ctr.run(['tasks', 'exec', '--exec-id', 'zero', id, 'sh', '-c', 'echo out; echo err >&2']);
      assert.equal(ok.code, 0, ok.stderr);
      assert.equal(ok.stdout, 'out\n');
      assert.equal(ok.stderr, 'err\n');
      const five = await ctr.run(['tasks', 'exec', '--exec-id', 'five', id, 'sh', '-c', 'echo five; exit 5']);
      assert.equal(five.code, 5, five.stderr);
      assert.equal(five.stdout, 'five\n');
      // An exec id is free again once its process was deleted.
      const again = await ctr.run(['tasks', 'exec', '--exec-id', 'five', id, 'true']);
      assert.equal(again.code, 0, again.stderr);
    });
  });

  test('stdin piped into an exec reaches it whole (2 MB), and EOF ends it', async () => {
    await withSleeper('exec-stdin', async (id) => {
      const instance = containerd();
      let input = '';
      for (let i = 0; input.length < 2 * 1024 * 1024; i++) input += `line ${i} of the exec's stdin\n`;
      const exec = spawnCtr(instance, ['tasks', 'exec', '--exec-id', 'reader', id, 'sh', '-c', 'wc -c; echo done']);
      const grpc = createContainerdGrpcClient(instance.address, instance.namespace);
      try {
        exec.write(input);
        // ctr forwards EOF as CloseIO only once the exec exists (see support/ctr-process.ts).
        await waitUntil('exec reader to run', async () => ((await grpc.tasks.get(id, 'reader')).status === 'RUNNING' ? true : undefined));
        exec.endInput();
        const result = await exec.result;
        assert.equal(result.code, 0, result.stderr);
        assert.equal(result.stdout, `${Buffer.byteLength(input)}\ndone\n`);
      } finally {
        exec.kill();
        grpc.close();
      }
    });
  });

  test('an exec that cannot start is an error with runc\'s reason, and the task runs on', async () => {
    await withSleeper('exec-missing', async (id) => {
      const { ctr } = containerd();
      const result = await ctr.run(['tasks', 'exec', '--exec-id', 'nope', id, '/no/such/binary']);
      assert.notEqual(result.code, 0);
      assert.match(result.stderr, /no such file or directory/i);
      // Only ctr's error line: runc's own output of the failed exec is not copied to the exec's stderr.
      assert.equal(result.stderr.trimEnd().split('\n').length, 1, `ctr's stderr: ${JSON.stringify(result.stderr)}`);
      await waitForTask(ctr, id, 'RUNNING');
    });
  });

  test('a duplicate exec id is refused while the first exec runs; the first is killed by its exec id', async () => {
    await withSleeper('exec-dup', async (id) => {
      const instance = containerd();
      const first = spawnCtr(instance, ['tasks', 'exec', '--exec-id', 'dup', id, 'sleep', '1000']);
      const grpc = createContainerdGrpcClient(instance.address, instance.namespace);
      try {
        const running = await waitUntil('exec dup to run', async () => {
          const process = await grpc.tasks.get(id, 'dup');
          return process.status === 'RUNNING' ? process : undefined;
        });
        const duplicate = await instance.ctr.run(['tasks', 'exec', '--exec-id', 'dup', id, 'true']);
        assert.notEqual(duplicate.code, 0, 'a second exec with the same id is refused');
        assert.match(duplicate.stderr, /dup.*already exists/);
        assert.equal(isAlive(running.pid), true, 'the first exec is untouched');

        await instance.ctr.ok(['tasks', 'kill', '--exec-id', 'dup', '--signal', 'KILL', id]);
        const result = await first.result;
        assert.equal(result.code, 137, result.stderr);
        assert.equal(isAlive(running.pid), false);
        await waitForTask(instance.ctr, id, 'RUNNING');
      } finally {
        first.kill();
        grpc.close();
      }
    });
  });

  test('ps lists the init and the exec processes by host pid, execs with their exec id', async () => {
    const instance = containerd();
    const id = containerd.id('ps');
    const grpc = createContainerdGrpcClient(instance.address, instance.namespace);
    let exec: CtrProcess | undefined;
    try {
      // The init has a child of its own: ps shows every process of the container.
      await instance.ctr.ok(runArgs(['-d'], id, ['sh', '-c', 'sleep 1000 & wait']));
      const init = await waitForTask(instance.ctr, id, 'RUNNING');
      exec = spawnCtr(instance, ['tasks', 'exec', '--exec-id', 'watcher', id, 'sleep', '1000']);
      const execProcess = await waitUntil('exec watcher to run', async () => {
        const process = await grpc.tasks.get(id, 'watcher');
        return process.status === 'RUNNING' ? process : undefined;
      });
      const rows = await waitUntil('ps to show three processes', async () => {
        const now = await psRows(instance.ctr, id);
        return now.length === 3 ? now : undefined;
      });
      const byPid = new Map(rows.map((row) => [row.pid, row.execId]));
      assert.ok(byPid.has(init.pid), `the init pid ${init.pid} is listed: ${JSON.stringify(rows)}`);
      assert.equal(byPid.get(init.pid), undefined, 'the init has no exec id');
      assert.equal(byPid.get(execProcess.pid), 'watcher', `the exec pid ${execProcess.pid} is listed with its exec id`);
      for (const row of rows) assert.ok(isAlive(row.pid), `pid ${row.pid} is a live host process`);
    } finally {
      exec?.kill();
      grpc.close();
      await instance.ctr.removeContainer(id);
    }
  });
});
