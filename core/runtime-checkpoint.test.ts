// Checkpoint and restore over real runc and CRIU. Where CRIU cannot work on this host,
// the test proves it: CRIU's own check fails, our checkpoint fails with runc's error
// and CRIU's log kept in the bundle, and the container keeps running; then the
// restore half is skipped with CRIU's reason.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { openSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { CheckpointRequest } from './api.js';
import { createProcessMonitor, exitStatusOf } from './process-monitor.js';
import { canRunRunc } from './test-bundle.js';
import type { Harness } from './test-harness.js';
import { createHarness } from './test-harness.js';

const CRIU = ['/usr/sbin/criu', '/usr/bin/criu', '/sbin/criu'].find((p) => existsSync(p));

/** Runs `criu check`: undefined when CRIU works here, else its last error line. */
async function criuProblem(h: Harness): Promise<string | undefined> {
  if (CRIU === undefined) return 'criu is not installed';
  const monitor = createProcessMonitor(h.native, h.logger);
  const out = join(h.fixture.dir, 'criu-check.log');
  const fd = openSync(out, 'w');
  try {
    const child = monitor.spawn({ file: CRIU, args: ['criu', 'check'], env: ['PATH=/usr/sbin:/usr/bin:/sbin:/bin'], fds: [-1, fd, fd] });
    closeSync(fd);
    const status = exitStatusOf(await child.exited);
    if (status === 0) return undefined;
    const lines = readFileSync(out, 'utf8').trim().split('\n');
    return `criu check exits ${status}: ${lines.slice(0, 2).join(' / ')}`;
  } finally {
    monitor.close();
  }
}

describe('checkpoint and restore (real runc, CRIU)', { skip: canRunRunc() }, () => {
  let h: Harness;
  let images: string;
  before(() => {
    h = createHarness('checkpoint');
    images = mkdtempSync(join(tmpdir(), 'tsrun-core-images-'));
  });
  after(async () => {
    await h.teardown();
    rmSync(images, { recursive: true, force: true });
  });

  test('checkpoint a running container and restore it in a new one', async (t) => {
    const id = 'ckpt';
    const { bundle } = await h.run(id, { args: ['sh', '-c', 'i=0; while :; do i=$((i+1)); echo $i > /tmp/n; sleep 0.05; done'] });
    const request: CheckpointRequest = {
      containerId: id,
      path: join(images, id),
      exit: true,
      openTcp: false,
      externalUnixSockets: false,
      terminal: false,
      fileLocks: false,
      emptyNamespaces: [],
      cgroupsMode: '',
      workPath: '',
    };
    const problem = await criuProblem(h);
    if (problem !== undefined) {
      await assert.rejects(h.runtime.checkpoint(request), (err: unknown) => {
        assert.ok(err instanceof Error);
        assert.match(err.message, /runc checkpoint of container 'ckpt' failed/);
        return true;
      });
      assert.equal((await h.runtime.state(id)).status, 'running', 'a failed checkpoint leaves the container running');
      assert.ok(existsSync(join(bundle.path, 'criu-dump.log')) || problem.includes('not installed'), "CRIU's log is kept in the bundle");
      t.skip(`CRIU cannot work on this host: ${problem}`);
      return;
    }
    await h.runtime.checkpoint(request);
    assert.equal((await h.runtime.wait(id)).exitStatus, 137, 'checkpoint with exit stops the container');
    assert.ok(h.events.some((e) => e.type === 'task-checkpointed' && e.containerId === id));
    await h.runtime.delete(id);

    const restored = h.fixture.bundle('restored', { args: ['sh', '-c', 'exit 99'] });
    const created = await h.runtime.create({ ...h.fixture.request(restored), checkpoint: request.path });
    assert.equal(created.pid, 0, 'no process until start restores it');
    const { pid } = await h.runtime.start('restored');
    assert.ok(pid > 0);
    assert.equal((await h.runtime.state('restored')).status, 'running');
    await h.runtime.kill('restored', '', 9, true);
    assert.equal((await h.runtime.wait('restored')).exitStatus, 137);
    await h.runtime.delete('restored');
  });
});
