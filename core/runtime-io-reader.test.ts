// The exit waits for the client to read its stdout fifo, over real runc
// (core/io/reader-wait.ts: containerd 1.6's ctr drops what is still in the fifo when
// the exit reaches it). The client here reads one chunk each time the runtime looks
// at the fifo's unread count (a wrapper around the real addon), so the order of
// reads and the exit event does not depend on how the machine schedules anything:
// without the wait, nothing would be read before the exit.
import assert from 'node:assert/strict';
import { readSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Native } from '../native/facade.js';
import { loadNative } from '../native/index.js';
import { canRunRunc } from './test-bundle.js';
import type { Harness } from './test-harness.js';
import { createHarness } from './test-harness.js';

/** Less than a fifo holds (64 KiB): the copy completes while nobody reads. */
const TOTAL = 40_000;

const real = loadNative();
let onLook: (() => void) | undefined;
// The only Native of this file (the orphan sweep is per Native).
const native: Native = {
  ...real,
  pendingBytes(fd) {
    onLook?.();
    return real.pendingBytes(fd);
  },
};

/** A client of a stdout fifo that reads one chunk of at most 4 KiB per look of the runtime. */
function lookDrivenClient(h: Harness, path: string): { readonly order: string[]; consumed(): number; close(): void } {
  const fd = h.native.openFifo(path, 'read');
  const chunk = Buffer.alloc(4096);
  const order: string[] = [];
  let consumed = 0;
  onLook = () => {
    try {
      const n = readSync(fd, chunk, 0, chunk.length, null);
      consumed += n;
      if (n > 0) order.push('read');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
    }
  };
  return {
    order,
    consumed: () => consumed,
    close() {
      onLook = undefined;
      h.native.close(fd);
    },
  };
}

function readerWaits(h: Harness): { outcome: string; pendingAtStart: number; containerId: string }[] {
  return h.logger.entries
    .filter((e) => e.msg === 'waited for the client to read its fifo')
    .map((e) => e.obj as { outcome: string; pendingAtStart: number; containerId: string });
}

describe('the exit waits for the client to read its fifo (real runc)', { skip: canRunRunc() }, () => {
  let h: Harness;
  before(() => {
    h = createHarness('io-reader', { native });
  });
  after(async () => {
    await h.teardown();
  });

  for (const terminal of [false, true]) {
    const kind = terminal ? 'tty' : 'pipes';
    test(`${kind}: a slow client reads every byte before the exit is published`, async () => {
      const id = `slow-${kind}`;
      const stdout = join(h.fixture.dir, `${id}-stdout`);
      await h.mkfifo(stdout);
      const client = lookDrivenClient(h, stdout);
      let consumedAtExit = -1;
      const onExit = (e: { containerId: string }): void => {
        if (e.containerId !== id) return;
        client.order.push('exit');
        consumedAtExit = client.consumed();
      };
      h.runtime.on('task-exit', onExit);
      try {
        await h.run(id, { args: ['head', '-c', String(TOTAL), '/dev/zero'], terminal }, { stdout, terminal });
        const exit = await h.nextEvent((e) => e.type === 'task-exit' && e.containerId === id);
        assert.equal(exit.type === 'task-exit' ? exit.exitStatus : -1, 0);
        assert.equal(consumedAtExit, TOTAL, 'every byte was read from the fifo before the exit went out');
        assert.equal(client.order.at(-1), 'exit');
        assert.ok(client.order.length >= Math.ceil(TOTAL / 4096) + 1, `the client read in chunks: ${client.order.join(' ')}`);
        assert.deepEqual(
          readerWaits(h)
            .filter((w) => w.containerId === id)
            .map((w) => [w.outcome, w.pendingAtStart > 0]),
          [['read', true]],
        );
        await h.runtime.delete(id);
      } finally {
        h.runtime.off('task-exit', onExit);
        client.close();
      }
    });
  }

  test('no client reads the fifo: the exit is published anyway, after the no-progress window', async () => {
    const id = 'unread';
    const stdout = join(h.fixture.dir, 'unread-stdout');
    await h.mkfifo(stdout);
    await h.run(id, { args: ['head', '-c', String(TOTAL), '/dev/zero'] }, { stdout });
    const exit = await h.nextEvent((e) => e.type === 'task-exit' && e.containerId === id);
    const publishedAt = Date.now();
    assert.equal(exit.type === 'task-exit' ? exit.exitStatus : -1, 0);
    const waited = publishedAt - (exit.type === 'task-exit' ? exit.exitedAt.getTime() : 0);
    assert.ok(waited < 2000, `the unread fifo did not hold the exit (${waited} ms after the process exited)`);
    assert.deepEqual(
      readerWaits(h)
        .filter((w) => w.containerId === id)
        .map((w) => [w.outcome, w.pendingAtStart]),
      [['stalled', TOTAL]],
    );
    await h.runtime.delete(id);
  });
});
