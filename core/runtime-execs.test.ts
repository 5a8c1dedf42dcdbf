// 500 concurrent execs into one container over real runc: every exit code right,
// every exec exit emitted (once) before the init's exit (containerd#9719, #10603).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { canRunRunc } from './test-bundle.js';
import type { Harness, RecordedEvent } from './test-harness.js';
import { createHarness } from './test-harness.js';

const EXECS = 500;

describe('concurrent execs (real runc)', { skip: canRunRunc() }, () => {
  let h: Harness;
  before(() => {
    h = createHarness('execs');
  });
  after(async () => {
    await h.teardown();
  });

  test(`${EXECS} concurrent execs, each with its own exit code, all exit before the init`, async () => {
    const id = 'many';
    // The init outlives the execs by a little, then exits on its own with 7.
    await h.run(id, { args: ['sh', '-c', 'trap "exit 7" TERM; while :; do sleep 0.2; done'] });
    const started = Date.now();
    const code = (i: number): number => (i * 7) % 256;
    await Promise.all(
      Array.from({ length: EXECS }, async (_, i) => {
        const execId = `x${i}`;
        await h.runtime.exec(h.execRequest(id, execId, ['sh', '-c', `sleep 0.$((RANDOM % 5)); exit ${code(i)}`]));
        await h.runtime.start(id, execId);
      }),
    );
    const exits = await Promise.all(Array.from({ length: EXECS }, (_, i) => h.runtime.wait(id, `x${i}`)));
    const elapsed = Date.now() - started;
    for (let i = 0; i < EXECS; i++) assert.equal(exits[i]?.exitStatus, code(i), `x${i}`);
    console.error(`# ${EXECS} execs started and exited in ${elapsed} ms`);

    await h.runtime.kill(id, '', 15, false);
    assert.equal((await h.runtime.wait(id)).exitStatus, 7);

    const events = h.eventsOf(id);
    const exitEvents = events.filter((e): e is Extract<RecordedEvent, { type: 'task-exit' }> => e.type === 'task-exit');
    assert.equal(exitEvents.length, EXECS + 1, 'one exit per process, no duplicates');
    assert.equal(new Set(exitEvents.map((e) => e.id)).size, EXECS + 1);
    assert.equal(exitEvents[exitEvents.length - 1]?.id, id, 'the init exit is the last exit');
    for (let i = 0; i < EXECS; i++) {
      const execId = `x${i}`;
      const order = events
        .filter((e) => (e.type === 'task-exit' ? e.id === execId : 'execId' in e && e.execId === execId))
        .map((e) => e.type);
      assert.deepEqual(order, ['exec-added', 'exec-started', 'task-exit'], execId);
    }
    await Promise.all(Array.from({ length: EXECS }, (_, i) => h.runtime.delete(id, `x${i}`)));
    await h.runtime.delete(id);
  });
});
