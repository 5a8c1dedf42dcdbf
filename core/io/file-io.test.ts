/** `file://` stdio for real: directories made, both streams appended to one file by one writer. */
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createProcessIO } from './index.js';
import type { IoTestEnv } from './test-support.js';
import { createIoTestEnv, eventually, numberedLines, openFdCount, within } from './test-support.js';

let env: IoTestEnv;

before(async () => {
  env = createIoTestEnv();
  const io = await createProcessIO(env.options({ stdin: '', stdout: `file://${join(env.dir, 'warm', 'log')}`, stderr: '', terminal: false }));
  await io.close();
});

after(() => {
  env.close();
});

async function noFdLeak(body: () => Promise<void>): Promise<void> {
  const fds = openFdCount();
  await body();
  await eventually(() => openFdCount() === fds, `fd count back at ${fds} (now ${openFdCount()})`, 2000);
}

/** Runs `script` with `file://path` stdio through create, started, exit, drain and close; returns the drain result. */
async function run(path: string, script: string, stderr = true): Promise<{ drained: boolean; textAtDrain: string }> {
  const uri = `file://${path}`;
  const io = await createProcessIO(env.options({ stdin: '', stdout: uri, stderr: stderr ? uri : '', terminal: false }));
  try {
    assert.equal(io.runtimeFds[2] === -1, !stderr);
    const child = env.sh(script, io.runtimeFds);
    await io.started();
    assert.deepEqual(await within(child.exited, 'the exit of the process'), { kind: 'exited', code: 0 });
    const drained = await io.drain(5000);
    // Drained means written out: the file is complete now, before close().
    return { drained, textAtDrain: readFileSync(path, 'utf8') };
  } finally {
    await io.close();
  }
}

describe('file:// stdio', () => {
  test('creates the directories (0755) and the file (0644); stdout and stderr land in it in the order written', async () => {
    await noFdLeak(async () => {
      const path = join(env.dir, 'a', 'b', 'c', 'task.log');
      const script = 'echo out1; sleep 0.05; echo err1 >&2; sleep 0.05; echo out2; sleep 0.05; echo err2 >&2';
      const { drained, textAtDrain } = await run(path, script);
      assert.equal(drained, true);
      assert.equal(textAtDrain, 'out1\nerr1\nout2\nerr2\n');
      assert.equal(statSync(join(env.dir, 'a', 'b')).mode & 0o777, 0o755);
      assert.equal(statSync(path).mode & 0o777, 0o644);
    });
  });

  test('appends: a second process (a restart) adds to what the first one wrote; 100,000 lines in order', async () => {
    await noFdLeak(async () => {
      const path = join(env.dir, 'append', 'task.log');
      await run(path, 'echo first');
      const { drained, textAtDrain } = await run(path, 'seq 1 100000');
      assert.equal(drained, true);
      assert.equal(textAtDrain, `first\n${numberedLines(100_000)}`);
    });
  });

  test('without stderr in the request, stderr goes to /dev/null', async () => {
    await noFdLeak(async () => {
      const path = join(env.dir, 'nostderr.log');
      const { textAtDrain } = await run(path, 'echo out; echo err >&2', false);
      assert.equal(textAtDrain, 'out\n');
    });
  });
});
