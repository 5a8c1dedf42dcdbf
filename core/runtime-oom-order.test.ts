// The OOM of a killed container is published before its exit, even when the OOM
// notification never reaches the runtime, over real runc and a real v1 memory cgroup.
// The kernel counts an OOM kill before it sends the SIGKILL, and the exit path reads
// that count. Here a wrapper around the real addon drops every wakeup of the OOM
// watch's eventfd, so that read is the only way the OOM can be reported: without it
// there is no task-oom at all, whatever the machine's scheduling.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import type { FdWatcher, Native } from '../native/facade.js';
import { loadNative } from '../native/index.js';
import { canRunRunc } from './test-bundle.js';
import type { Harness } from './test-harness.js';
import { createHarness } from './test-harness.js';

const real = loadNative();
/** eventfds handed out (the v1 OOM watch is their only user) and not yet unwatched. */
const eventFds = new Set<number>();
let droppedWatches = 0;
// The only Native of this file (the orphan sweep is per Native).
const native: Native = {
  ...real,
  eventfd() {
    const fd = real.eventfd();
    eventFds.add(fd);
    return fd;
  },
  watchReadable(fd, onReadable): FdWatcher {
    if (!eventFds.has(fd)) return real.watchReadable(fd, onReadable);
    droppedWatches++;
    return {
      close() {
        eventFds.delete(fd);
      },
    };
  },
};

function skipReason(): string | undefined {
  const runc = canRunRunc();
  if (runc !== undefined) return runc;
  if (!existsSync('/sys/fs/cgroup/memory/cgroup.event_control')) return 'needs a cgroup v1 memory controller (the watch under test)';
  return undefined;
}

describe('OOM before exit (real runc, OOM notifications dropped)', { skip: skipReason() }, () => {
  let h: Harness;
  before(() => {
    h = createHarness('oom-order', { native });
  });
  after(async () => {
    await h.teardown();
  });

  test('a container killed by the OOM killer: task-oom, then its 137 exit', async () => {
    const id = 'oom-silent';
    const limit = 16 * 1024 * 1024;
    // tail keeps the current "line" of /dev/zero in memory: it grows until the kill.
    await h.run(id, { args: ['tail', '/dev/zero'], resources: { memory: { limit, swap: limit } } });
    assert.equal(droppedWatches, 1, 'the OOM watch registered its eventfd, whose wakeups this test drops');
    assert.equal((await h.runtime.wait(id)).exitStatus, 137);
    const types = h.eventsOf(id).map((e) => e.type);
    assert.ok(types.includes('task-oom'), `a task-oom without any notification: ${types.join(' ')}`);
    assert.ok(types.indexOf('task-oom') < types.indexOf('task-exit'), `the OOM before the exit it caused: ${types.join(' ')}`);
    await h.runtime.delete(id);
  });
});
