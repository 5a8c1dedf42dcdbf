/**
 * Log URIs through tsrun (issue 5): `ctr run --log-uri file:///...` has the shim write both
 * streams into the file, and `--log-uri binary:///logger?k=v` has it start a logger process
 * on the host with the container's stdout on fd 3, stderr on fd 4, and fd 5 to close once
 * ready, its args from the query and CONTAINER_ID / CONTAINER_NAMESPACE in its environment
 * (containerd's pkg/process NewBinaryCmd contract).
 */
import assert from 'node:assert/strict';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { readText, runArgs, useTsrunContainerd, waitUntil } from './support/index.js';

describe('log URIs with the tsrun runtime', () => {
  const containerd = useTsrunContainerd();
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tsrun-log-uri-'));
    containerd.onTeardown(() => rm(dir, { recursive: true, force: true }));
  });

  test('file://: both streams go to the file, nothing to ctr, and the exit status still reaches ctr', async () => {
    const log = join(dir, 'file-uri', 'out.log');
    const script = 'echo out-1; echo err-1 >&2; echo out-2; echo err-2 >&2; exit 4';
    const result = await containerd().ctr.run(runArgs(['--rm', '--log-uri', `file://${log}`], containerd.id('file-log'), ['sh', '-c', script]));
    assert.equal(result.code, 4, result.stderr);
    assert.equal(result.stdout, '');
    const lines = (await readFile(log, 'utf8')).split('\n').filter((line) => line !== '');
    // The streams are copied separately: each keeps its order, their interleaving is free.
    assert.deepEqual(lines.filter((line) => line.startsWith('out')), ['out-1', 'out-2']);
    assert.deepEqual(lines.filter((line) => line.startsWith('err')), ['err-1', 'err-2']);
    assert.equal(lines.length, 4, lines.join('\n'));
  });

  test('binary://: a logger on the host gets stdout on fd 3, stderr on fd 4, its args and the container id and namespace', async () => {
    const instance = containerd();
    const id = containerd.id('binary-log');
    const out = join(dir, 'binary-uri');
    const logger = join(dir, 'logger.sh');
    // fd 5 is closed first so the background copies do not hold it: its EOF is the shim's "ready".
    await writeFile(
      logger,
      [
        '#!/bin/sh',
        `mkdir -p '${out}'`,
        `echo "id=$CONTAINER_ID ns=$CONTAINER_NAMESPACE args=$*" > '${out}/env.tmp' && mv '${out}/env.tmp' '${out}/env'`,
        'exec 5>&-',
        `cat <&3 > '${out}/stdout' &`,
        `cat <&4 > '${out}/stderr' &`,
        'wait',
        `touch '${out}/done'`,
        '',
      ].join('\n'),
    );
    await chmod(logger, 0o755);
    const script = 'for i in 1 2 3; do echo "out-$i"; echo "err-$i" >&2; done; exit 2';
    const result = await instance.ctr.run(runArgs(['--rm', '--log-uri', `binary://${logger}?mode=test`], id, ['sh', '-c', script]));
    assert.equal(result.code, 2, result.stderr);
    assert.equal(result.stdout, '');
    // The logger copies at its own pace: it is done when both pipes reached EOF.
    await waitUntil('the logger to finish', () => readText(join(out, 'done')));
    assert.equal(readText(join(out, 'env')), `id=${id} ns=${instance.namespace} args=mode test`);
    assert.equal(readText(join(out, 'stdout')), 'out-1\nout-2\nout-3');
    assert.equal(readText(join(out, 'stderr')), 'err-1\nerr-2\nerr-3');
  });

  test('binary://: a logger that cannot start fails the task\'s creation with a clear error', async () => {
    const instance = containerd();
    const id = containerd.id('binary-missing');
    try {
      const result = await instance.ctr.run(runArgs(['--rm', '--log-uri', `binary://${join(dir, 'no-such-logger')}`], id, ['true']));
      assert.notEqual(result.code, 0);
      assert.match(result.stderr, /no-such-logger/);
      assert.equal((await instance.ctr.tasks()).includes(id), false);
    } finally {
      await instance.ctr.removeContainer(id);
    }
  });
});
