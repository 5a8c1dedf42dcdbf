// Stats and OOM over real runc and this host's cgroups (v1 here): values that move,
// and an OOM kill that produces a task-oom event.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { canRunRunc } from './test-bundle.js';
import type { Harness } from './test-harness.js';
import { createHarness } from './test-harness.js';

interface Numbers {
  cpu: number;
  memory: number;
  pids: number;
}

/** The few numbers the test follows, from either metrics shape. */
function numbers(stats: { kind: 'v1' | 'v2'; metrics: Readonly<Record<string, unknown>> }): Numbers {
  const m = stats.metrics as Record<string, Record<string, unknown> | undefined>;
  if (stats.kind === 'v1') {
    const usage = m['cpu']?.['usage'] as { total: number | string } | undefined;
    const memory = m['memory']?.['usage'] as { usage: number | string } | undefined;
    return { cpu: Number(usage?.total ?? 0), memory: Number(memory?.usage ?? 0), pids: Number(m['pids']?.['current'] ?? 0) };
  }
  return { cpu: Number(m['cpu']?.['usageUsec'] ?? 0), memory: Number(m['memory']?.['usage'] ?? 0), pids: Number(m['pids']?.['current'] ?? 0) };
}

describe('stats and OOM (real runc)', { skip: canRunRunc() }, () => {
  let h: Harness;
  before(() => {
    h = createHarness('cgroups');
  });
  after(async () => {
    await h.teardown();
  });

  test('stats values move while the container works', async () => {
    const id = 'busy';
    await h.run(id, { args: ['sh', '-c', 'while :; do :; done'] });
    const first = numbers(await h.runtime.stats(id));
    await new Promise((resolve) => setTimeout(resolve, 300));
    const second = numbers(await h.runtime.stats(id));
    assert.ok(second.cpu > first.cpu, `cpu usage grows: ${first.cpu} -> ${second.cpu}`);
    assert.ok(second.memory > 0, 'memory usage is reported');
    assert.equal(second.pids, 1);
    await h.runtime.exec(h.execRequest(id, 'sleeper', ['sleep', '1000']));
    await h.runtime.start(id, 'sleeper');
    // runc exec's own short-lived helpers pass through the cgroup: wait for them to go.
    const deadline = Date.now() + 10_000;
    let pids = numbers(await h.runtime.stats(id)).pids;
    while (pids !== 2 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      pids = numbers(await h.runtime.stats(id)).pids;
    }
    assert.equal(pids, 2, 'the exec shows in pids.current');
    await h.runtime.kill(id, '', 9, true);
    await h.runtime.wait(id);
    await h.runtime.delete(id, 'sleeper');
    await h.runtime.delete(id);
    await assert.rejects(h.runtime.stats(id), { code: 'NotFound' });
  });

  test('an OOM kill produces a task-oom event and a 137 exit', async () => {
    const id = 'oom';
    const limit = 16 * 1024 * 1024;
    // tail keeps the current "line" of /dev/zero in memory: it grows until the kill.
    await h.run(id, { args: ['tail', '/dev/zero'], resources: { memory: { limit, swap: limit } } });
    const oom = await h.nextEvent((e) => e.type === 'task-oom' && e.containerId === id);
    assert.equal(oom.type, 'task-oom');
    assert.equal((await h.runtime.wait(id)).exitStatus, 137);
    const types = h.eventsOf(id).map((e) => e.type);
    assert.ok(types.indexOf('task-oom') > types.indexOf('task-start'));
    assert.ok(types.indexOf('task-oom') < types.indexOf('task-exit'), `the OOM before the exit it caused: ${types.join(' ')}`);
    await h.runtime.delete(id);
  });
});
