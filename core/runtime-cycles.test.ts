// 200 create/start/exit/delete cycles over real runc (rootfs bind-mounted by core/,
// an exec in every tenth): nothing may leak (fds, zombies, mounts, cgroups, runc
// state, work directories).
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { WORK_DIR_PREFIX } from './container.js';
import { canRunRunc } from './test-bundle.js';
import type { Harness } from './test-harness.js';
import { createHarness } from './test-harness.js';

const CYCLES = 200;
const PARALLEL = 4;
const WARM_UP = CYCLES * 10 - 1;

/**
 * core/ makes its private work directories (console sockets, exec specs) in the
 * temp dir, which other processes on the machine share: the test gives this process
 * a temp dir of its own, so only this runtime's directories are counted.
 */
const privateTmp = mkdtempSync(join(tmpdir(), 'tsrun-cycles-tmp-'));
process.env['TMPDIR'] = privateTmp;

function workDirs(): number {
  return readdirSync(tmpdir()).filter((n) => n.startsWith(WORK_DIR_PREFIX)).length;
}

describe('create/start/exit/delete cycles (real runc)', { skip: canRunRunc() }, () => {
  let h: Harness;
  before(() => {
    h = createHarness('cycles');
  });
  after(async () => {
    await h.teardown();
    rmSync(privateTmp, { recursive: true, force: true });
  });

  async function cycle(i: number): Promise<void> {
    const id = `cycle-${i}`;
    await h.create(id, { args: ['sh', '-c', `exit ${i % 3}`], mountRootfs: true });
    if (i === WARM_UP) assert.ok(h.fixture.counts().mounts >= 1, 'core/ mounted the rootfs (the mount count can see a leak)');
    if (i % 10 === 0) {
      await h.runtime.exec(h.execRequest(id, 'e', ['true']));
    }
    await h.runtime.start(id);
    if (i % 10 === 0) {
      // The init may already be gone: then the exec start is refused, as it must be.
      await h.runtime.start(id, 'e').then(
        async () => {
          await h.runtime.wait(id, 'e');
        },
        () => undefined,
      );
    }
    const exit = await h.runtime.wait(id);
    assert.equal(exit.exitStatus, i % 3, id);
    if (i % 10 === 0) await h.runtime.delete(id, 'e');
    await h.runtime.delete(id);
  }

  test(`${CYCLES} cycles leak no fds, zombies, mounts, cgroups, runc state or work dirs`, async () => {
    await cycle(WARM_UP); // warm-up: lazily opened fds (the addon, libuv) count as baseline
    await new Promise((resolve) => setTimeout(resolve, 100));
    const before = { ...h.fixture.counts(), workDirs: workDirs() };
    const started = Date.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: PARALLEL }, async () => {
        while (next < CYCLES) await cycle(next++);
      }),
    );
    const elapsed = Date.now() - started;
    console.error(`# ${CYCLES} cycles (${PARALLEL} in parallel) in ${elapsed} ms`);
    await new Promise((resolve) => setTimeout(resolve, 200)); // a last SIGCHLD sweep
    const afterCounts = { ...h.fixture.counts(), workDirs: workDirs() };
    assert.deepEqual(afterCounts, before);
    assert.deepEqual(h.runtime.containerIds(), []);
    // Exactly once: one exit per init and per started exec, one delete per container.
    const count = (type: string): number => h.events.filter((e) => e.type === type).length;
    assert.equal(count('task-create'), CYCLES + 1);
    assert.equal(count('task-exit'), count('task-create') + count('exec-started'));
    assert.equal(count('task-delete'), CYCLES + 1);
  });
});
