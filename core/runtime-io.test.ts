// stdio over real runc, as the exit machinery sees it: output that is written right
// before an exit is all there when the exit is published (init and exec), and an
// interactive shell through the console socket sees a resize.
import assert from 'node:assert/strict';
import { constants, openSync, readFileSync } from 'node:fs';
import { Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { canRunRunc } from './test-bundle.js';
import type { Harness } from './test-harness.js';
import { createHarness } from './test-harness.js';

const LINES = 100_000;
const DRAIN_BOUND_MS = 1000;

function assertNumberedLines(text: string, count: number): void {
  const lines = text.split('\n');
  assert.equal(lines.pop(), '', 'ends with a newline');
  assert.equal(lines.length, count, 'every line is there');
  for (let i = 0; i < count; i++) {
    if (lines[i] !== String(i + 1)) assert.fail(`line ${i + 1} is '${lines[i] ?? ''}'`);
  }
}

describe('stdio and exits (real runc)', { skip: canRunRunc() }, () => {
  let h: Harness;
  before(() => {
    h = createHarness('io', { ioDrainTimeoutMs: DRAIN_BOUND_MS });
  });
  after(async () => {
    await h.teardown();
  });

  test(`an init that writes ${LINES} numbered lines and exits at once: one exit, every line, in order`, async () => {
    const id = 'lines';
    const out = join(h.fixture.dir, 'out', 'lines.log');
    await h.run(id, { args: ['seq', '1', String(LINES)] }, { stdout: `file://${out}` });
    // The exit event comes only after stdout was copied to the end.
    await h.nextEvent((e) => e.type === 'task-exit' && e.containerId === id);
    assertNumberedLines(readFileSync(out, 'utf8'), LINES);
    assert.equal((await h.runtime.wait(id)).exitStatus, 0);
    assert.equal(h.eventsOf(id).filter((e) => e.type === 'task-exit').length, 1);
    await h.runtime.delete(id);
  });

  test(`an exec that writes ${LINES} numbered lines and exits at once: one exit, every line, in order`, async () => {
    const id = 'exec-lines';
    const out = join(h.fixture.dir, 'out', 'exec-lines.log');
    await h.run(id, { args: ['sleep', '1000'] });
    await h.runtime.exec(h.execRequest(id, 'seq', ['seq', '1', String(LINES)], { stdout: `file://${out}` }));
    await h.runtime.start(id, 'seq');
    await h.nextEvent((e) => e.type === 'task-exit' && e.id === 'seq');
    assertNumberedLines(readFileSync(out, 'utf8'), LINES);
    assert.equal(h.eventsOf(id).filter((e) => e.type === 'task-exit').length, 1);
    await h.runtime.kill(id, '', 9, true);
    await h.runtime.wait(id);
    await h.runtime.delete(id, 'seq');
    await h.runtime.delete(id);
  });

  test('an exec whose grandchild keeps stdout open: the exit waits for the drain bound, which is logged', async () => {
    const id = 'grandchild';
    const out = join(h.fixture.dir, 'out', 'grandchild.log');
    await h.run(id, { args: ['sleep', '1000'] });
    await h.runtime.exec(h.execRequest(id, 'bg', ['sh', '-c', 'sleep 4 & echo started; exit 2'], { stdout: `file://${out}` }));
    await h.runtime.start(id, 'bg');
    const exit = await h.nextEvent((e) => e.type === 'task-exit' && e.id === 'bg');
    const publishedAt = Date.now();
    assert.equal(exit.type === 'task-exit' ? exit.exitStatus : -1, 2);
    const waited = publishedAt - (exit.type === 'task-exit' ? exit.exitedAt.getTime() : 0);
    assert.ok(waited >= DRAIN_BOUND_MS - 50, `the exit waited for the drain (${waited} ms)`);
    assert.ok(waited < 3500, `but no longer than the bound (${waited} ms), not until the grandchild exits`);
    assert.ok(
      h.logger.entries.some((e) => e.level === 'warn' && 'timeoutMs' in e.obj && e.obj.timeoutMs === DRAIN_BOUND_MS),
      'the bound was logged',
    );
    assert.match(readFileSync(out, 'utf8'), /started/);
    await h.runtime.kill(id, '', 9, true);
    await h.runtime.wait(id);
    await h.runtime.delete(id, 'bg');
    await h.runtime.delete(id);
  });

  test('tty: an interactive shell through the console socket sees a resize (stty size)', async () => {
    const id = 'tty';
    const stdin = join(h.fixture.dir, 'tty-stdin');
    const stdout = join(h.fixture.dir, 'tty-stdout');
    await h.mkfifo(stdin);
    await h.mkfifo(stdout);
    // As containerd does: the client holds its ends of the fifos (read/write, non-blocking).
    const output = new Socket({ fd: openSync(stdout, constants.O_RDWR | constants.O_NONBLOCK), readable: true, writable: false });
    const input = new Socket({ fd: openSync(stdin, constants.O_RDWR | constants.O_NONBLOCK), readable: false, writable: true });
    let seen = '';
    output.on('data', (chunk: Buffer) => {
      seen += chunk.toString('utf8');
    });
    const waitFor = async (pattern: RegExp): Promise<void> => {
      const deadline = Date.now() + 10_000;
      while (!pattern.test(seen)) {
        if (Date.now() > deadline) assert.fail(`timed out waiting for ${String(pattern)}; output: ${JSON.stringify(seen)}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    };
    try {
      await h.run(id, { args: ['sh'], terminal: true }, { stdin, stdout, terminal: true });
      await h.runtime.resizePty(id, '', { width: 100, height: 40 });
      input.write('stty size; echo "TT""Y=$(tty)"\n');
      await waitFor(/40 100/);
      await waitFor(/TTY=\/dev\/pts\/\d+/);
      await h.runtime.resizePty(id, '', { width: 132, height: 43 });
      input.write('stty size\n');
      await waitFor(/43 132/);
      input.write('exit 5\n');
      assert.equal((await h.runtime.wait(id)).exitStatus, 5);
      await h.runtime.delete(id);
    } finally {
      output.destroy();
      input.destroy();
    }
  });
});
