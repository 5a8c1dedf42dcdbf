/**
 * `ctr run --rm` through tsrun (issue 5): a private containerd 1.6, real runc, the busybox
 * image, and the built `containerd-shim-tsrun-v1`. What a user sees: the output on the
 * right stream, the exit status as ctr's exit code (137 when the task is killed from a
 * second ctr), a missing command as runc's reason, stdin forwarded until EOF; a large
 * output complete and in order in the client's fifos; and nothing left behind.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { runArgs, spawnCtr, startFifoTask, useTsrunContainerd, waitForTask } from './support/index.js';

/** `seq 1 n` as busybox prints it. */
function seq(n: number): string {
  let out = '';
  for (let i = 1; i <= n; i++) out += `${i}\n`;
  return out;
}

describe('ctr run --rm with the tsrun runtime', () => {
  const containerd = useTsrunContainerd();

  test('prints the output and exits 0', async () => {
    const result = await containerd().ctr.run(runArgs(['--rm'], containerd.id('hello'), ['echo', 'hello from tsrun']));
    assert.equal(result.stderr, '');
    assert.equal(result.stdout, 'hello from tsrun\n');
    assert.equal(result.code, 0);
  });

  test('the exit status becomes ctr exit code: 3', async () => {
    const result = await containerd().ctr.run(runArgs(['--rm'], containerd.id('exit3'), ['sh', '-c', 'echo before; exit 3']));
    assert.equal(result.stdout, 'before\n');
    assert.equal(result.code, 3, result.stderr);
  });

  test('stdout and stderr arrive separately', async () => {
    const script = 'echo out-1; echo err-1 >&2; echo out-2; echo err-2 >&2';
    const result = await containerd().ctr.run(runArgs(['--rm'], containerd.id('streams'), ['sh', '-c', script]));
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, 'out-1\nout-2\n');
    assert.equal(result.stderr, 'err-1\nerr-2\n');
  });

  test('a command that does not exist: ctr run fails with runc\'s reason, and nothing is left', async () => {
    const instance = containerd();
    const id = containerd.id('missing');
    try {
      const result = await instance.ctr.run(runArgs(['--rm'], id, ['no-such-command']));
      assert.notEqual(result.code, 0);
      assert.match(result.stderr, /ctr: failed to create shim task: .*exec: "no-such-command": executable file not found in \$PATH/);
      // Only ctr's error line: runc's own output of the failed create does not reach the
      // container's stderr as well (as with the Go shim, which copies only after success).
      assert.equal(result.stderr.trimEnd().split('\n').length, 1, `ctr's stderr: ${JSON.stringify(result.stderr)}`);
      assert.equal((await instance.ctr.tasks()).includes(id), false);
    } finally {
      // ctr run --rm does not remove a container whose task was never created.
      await instance.ctr.removeContainer(id);
    }
  });

  test('a task killed with SIGKILL from a second ctr: the waiting ctr run exits 137', async () => {
    const instance = containerd();
    const id = containerd.id('killed');
    const run = spawnCtr(instance, runArgs(['--rm'], id, ['sleep', '1000']));
    try {
      await waitForTask(instance.ctr, id, 'RUNNING');
      await instance.ctr.ok(['tasks', 'kill', '--signal', 'KILL', id]);
      const result = await run.result;
      assert.equal(result.code, 137, result.stderr);
      assert.equal(result.timedOut, false);
      // --rm removed the container once the exit arrived.
      assert.equal((await instance.ctr.containers()).includes(id), false);
    } finally {
      run.kill();
      await instance.ctr.removeContainer(id);
    }
  });

  test('10 MB on stdout and 1 MB on stderr at once reach the fifos complete and in order', async () => {
    // Read from the fifos, not through `ctr run`: ctr 1.6 drops what is still in a fifo when
    // the exit reaches it (support/fifo-client.ts), which is not the shim's to fix.
    const instance = containerd();
    const id = containerd.id('large');
    // 1.5 million lines on stdout (10.4 MB) while 200 000 go to stderr (1.3 MB).
    const task = await startFifoTask(instance, id, 'seq 1 200000 >&2 & seq 1 1500000; wait');
    const stdout = task.read('stdout');
    const stderr = task.read('stderr');
    try {
      task.go();
      await waitForTask(instance.ctr, id, 'STOPPED', { timeoutMs: 120_000 });
      // The exit is published once both streams were copied out; deleting the task closes
      // the shim's ends of the fifos: the end of file of our readers.
      await instance.ctr.ok(['tasks', 'delete', id]);
      const [out, err] = await Promise.all([stdout.done, stderr.done]);
      const expectedOut = seq(1_500_000);
      assert.equal(out.length, expectedOut.length, 'stdout length');
      assert.ok(out.toString('utf8') === expectedOut, 'stdout holds every line of seq 1 1500000, in order');
      assert.ok(err.toString('utf8') === seq(200_000), `stderr holds every line of seq 1 200000, in order (got ${err.length} bytes)`);
    } finally {
      stdout.close();
      stderr.close();
      await instance.ctr.removeContainer(id);
      await task.dispose();
    }
  });

  test('stdin piped in reaches the process, and EOF ends it: ctr run exits 0', async () => {
    const instance = containerd();
    const id = containerd.id('stdin');
    const run = spawnCtr(instance, runArgs(['--rm'], id, ['cat']));
    try {
      run.write('hello\n');
      // ctr forwards an EOF as CloseIO only once its task exists (see support/ctr-process.ts).
      await waitForTask(instance.ctr, id, 'RUNNING');
      await run.waitForOutput(/^hello\n/);
      run.write('second line\n');
      run.endInput();
      const result = await run.result;
      assert.equal(result.stdout, 'hello\nsecond line\n');
      assert.equal(result.code, 0, result.stderr);
    } finally {
      run.kill();
      await instance.ctr.removeContainer(id);
    }
  });
});
