import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadNative } from '../native/index.js';
import { createLogger, createLogSink } from './log.js';

const native = loadNative();

async function mkfifo(path: string): Promise<void> {
  const child = native.spawn({ file: '/usr/bin/mkfifo', args: ['mkfifo', path], env: [], fds: [-1, -1, -1] });
  try {
    for (;;) {
      const status = native.pidfdWait(child.pidfd);
      if (status !== undefined) {
        assert.deepEqual(status, { kind: 'exited', code: 0 });
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  } finally {
    native.close(child.pidfd);
  }
}

test('a log fifo that lost its reader never makes logging throw; attach re-points it at a new bundle', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tsrun-log-'));
  const [reader, writer] = native.pipe();
  t.after(() => {
    native.close(writer);
    rmSync(dir, { recursive: true, force: true });
  });
  const sink = createLogSink(writer, { native, attached: true });
  const logger = createLogger('info', sink, { test: true });
  logger.info({ n: 1 }, 'first');
  const buffer = Buffer.alloc(4096);
  const first = buffer.subarray(0, readSync(reader, buffer)).toString();
  assert.match(first, /"msg":"first"/);

  // containerd deleted the first container's bundle: nobody reads its fifo any more.
  native.close(reader);
  assert.doesNotThrow(() => {
    logger.info({ n: 2 }, 'lost');
    logger.error({ n: 3 }, 'lost too');
  });
  assert.equal(sink.dropped, 2);

  // The next container's Create brings a bundle whose fifo containerd reads.
  const bundle = join(dir, 'b2');
  mkdirSync(bundle);
  await mkfifo(join(bundle, 'log'));
  const fifoReader = native.openFifo(join(bundle, 'log'), 'read');
  t.after(() => {
    native.close(fifoReader);
  });
  sink.attach(bundle);
  logger.info({ n: 4 }, 'back');
  await new Promise((resolve) => setTimeout(resolve, 10));
  const again = buffer.subarray(0, readSync(fifoReader, buffer)).toString();
  assert.match(again, /"msg":"back"/);
  assert.equal(sink.dropped, 2);
});
