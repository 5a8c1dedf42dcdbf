/**
 * `binary://` loggers for real: busybox sh scripts that read fd 3 and fd 4 and
 * signal readiness on fd 5, started through the process monitor.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { procStat } from '../../native/testing-support.js';
import { RuntimeError } from '../errors.js';
import { createProcessIO } from './index.js';
import type { IoTestEnv } from './test-support.js';
import { BUSYBOX, createIoTestEnv, eventually, numberedLines, openFdCount, within } from './test-support.js';

let env: IoTestEnv;

before(() => {
  env = createIoTestEnv();
});

after(() => {
  env.close();
});

async function noFdLeak(body: () => Promise<void>): Promise<void> {
  const fds = openFdCount();
  await body();
  await eventually(() => openFdCount() === fds, `fd count back at ${fds} (now ${openFdCount()})`, 2000);
}

/** Writes an executable busybox sh script; `$2` is the `dir` query argument. */
function script(name: string, body: string): string {
  const path = join(env.dir, name);
  writeFileSync(path, `#!${BUSYBOX} sh\ndir=$2\n${body}\n`, { mode: 0o755 });
  return path;
}

/** A fresh directory for one logger's files. */
function loggerDir(name: string): string {
  const dir = join(env.dir, `${name}.d`);
  mkdirSync(dir);
  return dir;
}

function binaryStdio(path: string, dir: string, query = ''): { stdin: string; stdout: string; stderr: string; terminal: boolean } {
  const uri = `binary://${path}?dir=${encodeURIComponent(dir)}${query}`;
  return { stdin: '', stdout: uri, stderr: uri, terminal: false };
}

/** The logger's pid, which each script writes first. */
function loggerPid(dir: string): number {
  return Number(readFileSync(join(dir, 'pid'), 'utf8').trim());
}

/** True once the pid is gone (reaped: no zombie left either). */
function gone(pid: number): boolean {
  return procStat(pid) === undefined;
}

describe('binary:// logger', () => {
  test('gets CONTAINER_ID, CONTAINER_NAMESPACE, PATH, env.* and argv pairs, stdout on fd 3 and stderr on fd 4; close() ends it', async () => {
    await noFdLeak(async () => {
      const dir = loggerDir('ok');
      const logger = script(
        'ok-logger',
        [
          'echo $$ > "$dir/pid"',
          // SIGTERM (close()) comes at once: finish the foreground copy first, as a real logger flushes.
          "trap 'exit 0' TERM",
          'echo "$CONTAINER_ID|$CONTAINER_NAMESPACE|$PATH|$LEVEL|$*" > "$dir/env"',
          // Ready: close fd 5 before starting the readers (they would inherit it).
          'exec 5>&-',
          'cat <&3 > "$dir/out" &',
          'cat <&4 > "$dir/err"',
          'wait',
          'echo finished > "$dir/done"',
        ].join('\n'),
      );
      const io = await createProcessIO(env.options(binaryStdio(logger, dir, '&env.LEVEL=debug'), { containerId: 'ctr-7' }));
      // createProcessIO waited for readiness: the logger wrote its env before closing fd 5.
      assert.equal(readFileSync(join(dir, 'env'), 'utf8'), `ctr-7|testns|/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin|debug|dir ${dir}\n`);
      const pid = loggerPid(dir);
      assert.ok(io.runtimeFds[1] > 2 && io.runtimeFds[2] > 2);
      const child = env.sh('seq 1 10000; echo oops >&2', io.runtimeFds);
      await io.started();
      assert.deepEqual(await within(child.exited, 'the exit of the process'), { kind: 'exited', code: 0 });
      assert.equal(await io.drain(1000), true);
      await io.close();
      assert.ok(gone(pid), 'the logger was stopped and reaped');
      await eventually(() => existsSync(join(dir, 'out')) && readFileSync(join(dir, 'out'), 'utf8') === numberedLines(10_000), 'stdout in the logger');
      assert.equal(readFileSync(join(dir, 'err'), 'utf8'), 'oops\n');
    });
  });

  test('a byte written on fd 5 is ready too, while the logger keeps fd 5 open', async () => {
    await noFdLeak(async () => {
      const dir = loggerDir('byte');
      const logger = script('byte-logger', ['echo $$ > "$dir/pid"', "trap 'exit 0' TERM", 'printf r >&5', 'cat <&3 > "$dir/out"'].join('\n'));
      const io = await createProcessIO(env.options(binaryStdio(logger, dir)));
      const pid = loggerPid(dir);
      const child = env.sh('echo hi', io.runtimeFds);
      await io.started();
      await within(child.exited, 'the exit of the process');
      await io.close();
      assert.ok(gone(pid));
      assert.equal(readFileSync(join(dir, 'out'), 'utf8'), 'hi\n');
    });
  });

  test('a logger ignoring SIGTERM is killed after the grace period', async () => {
    await noFdLeak(async () => {
      const dir = loggerDir('stubborn');
      const logger = script('stubborn-logger', ['echo $$ > "$dir/pid"', "trap '' TERM", 'exec 5>&-', `exec ${BUSYBOX} sleep 100`].join('\n'));
      const io = await createProcessIO(env.options(binaryStdio(logger, dir), { loggerStopGraceMs: 300 }));
      const pid = loggerPid(dir);
      await io.started();
      const closing = Date.now();
      await io.close();
      const took = Date.now() - closing;
      assert.ok(took >= 290 && took < 5000, `close took ${took} ms`);
      assert.ok(gone(pid));
      assert.ok(env.logger.entries.some((e) => e.level === 'warn' && e.msg?.includes('did not exit after SIGTERM') === true));
    });
  });

  test('a logger that exits before it is ready fails createProcessIO, and nothing leaks', async () => {
    await noFdLeak(async () => {
      const dir = loggerDir('dies');
      const logger = script('dies-logger', ['echo $$ > "$dir/pid"', 'exit 3'].join('\n'));
      await assert.rejects(
        createProcessIO(env.options(binaryStdio(logger, dir))),
        (err: unknown) => err instanceof RuntimeError && /exited with status 3 before it was ready/.test(err.message),
      );
      assert.ok(gone(loggerPid(dir)));
    });
  });

  test('a logger that never signals readiness is killed after the bound: DeadlineExceeded', async () => {
    await noFdLeak(async () => {
      const dir = loggerDir('silent');
      const logger = script('silent-logger', ['echo $$ > "$dir/pid"', `exec ${BUSYBOX} sleep 100`].join('\n'));
      await assert.rejects(
        createProcessIO(env.options(binaryStdio(logger, dir), { loggerReadyTimeoutMs: 200 })),
        (err: unknown) => err instanceof RuntimeError && err.code === 'DeadlineExceeded' && /fd 5 within 200 ms/.test(err.message),
      );
      assert.ok(gone(loggerPid(dir)));
    });
  });

  test('a logger path that does not exist fails with a sentence, and nothing leaks', async () => {
    await noFdLeak(async () => {
      await assert.rejects(
        createProcessIO(env.options(binaryStdio(join(env.dir, 'no-such-logger'), env.dir))),
        (err: unknown) => err instanceof RuntimeError && /binary logger '.*no-such-logger' could not be started/.test(err.message),
      );
    });
  });
});
