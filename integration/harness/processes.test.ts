import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { descendantsOf, isAlive, killAndWait, listProcesses, withEnvironment, withFlag } from './processes.js';

test('a process is found by flag and by environment, listed under its parent, and killed', async () => {
  const marker = `/tmp/ctd-${randomBytes(4).toString('hex')}/grpc.sock`;
  // sh -c 'sleep ...' keeps sh as the parent of sleep: a two-level tree like shim -> container.
  const child = spawn('sh', ['-c', 'sleep 30; :', 'sh', '-address', marker], { env: { ...process.env, TTRPC_ADDRESS: `${marker}.ttrpc` }, stdio: 'ignore' });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  try {
    const pid = child.pid!;
    let processes = await listProcesses();
    for (let i = 0; i < 50 && descendantsOf(processes, [pid]).length === 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      processes = await listProcesses();
    }
    assert.deepEqual(withFlag(processes, '-address', marker).map((p) => p.pid), [pid]);
    assert.deepEqual(withEnvironment(processes, 'TTRPC_ADDRESS', `${marker}.ttrpc`).map((p) => p.pid).sort(), [pid, ...descendantsOf(processes, [pid]).map((p) => p.pid)].sort());
    assert.deepEqual(withFlag(processes, '-address', `${marker}x`), []);
    const tree = descendantsOf(processes, [process.pid]);
    assert.ok(tree.some((p) => p.pid === pid));
    const sleeper = descendantsOf(processes, [pid]);
    assert.equal(sleeper.length, 1);
    assert.deepEqual(sleeper[0]!.argv, ['sleep', '30']);

    assert.deepEqual(await killAndWait([sleeper[0]!.pid, pid]), []);
    assert.equal(isAlive(pid), false);
  } finally {
    child.kill('SIGKILL');
    await exited;
  }
});
