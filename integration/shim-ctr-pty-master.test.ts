/**
 * The shim's read side of a container's terminal, on a real pty without containerd: the
 * stream core/io makes over a pty master (terminalStream) must give every byte the
 * process wrote before its end, however slowly it is consumed. The end-to-end form of
 * this check is in shim-ctr-tty.test.ts ("terminal output still in the pty ...").
 *
 * Regression: libuv reads a pty master as a pipe. It took a hang-up seen after one short
 * read (a pty hands out at most 4 KiB per read) for the end of file, and Node destroyed
 * the stream on the EIO that ends a drained pty, dropping what it had buffered for a slow
 * consumer: with a consumer that yields once per write, nearly every run lost the tail.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { closeSync } from 'node:fs';
import { Writable } from 'node:stream';
import { describe, test } from 'node:test';
import { terminalStream } from '../core/io/fd-stream.js';
import { loadNative } from '../native/index.js';

const native = loadNative();

/** `seq 1 n` as it comes out of a terminal (ONLCR: every \n becomes \r\n). */
function terminalSeqBytes(n: number): number {
  let bytes = 0;
  for (let i = 1; i <= n; i++) bytes += String(i).length + 2;
  return bytes;
}

/**
 * Runs `seq 1 n` on a new pty and copies the master's output into a consumer that
 * completes each write after `delayMs` (synchronously when negative).
 * @returns the bytes the consumer got and how the stream ended.
 */
async function copyTerminal(n: number, delayMs: number): Promise<{ bytes: number; ending: string }> {
  const { master, slave } = native.openPty();
  const child = spawn('seq', ['1', String(n)], { stdio: ['ignore', slave, slave] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => { resolve(); }));
  // Only the process may hold the slave, or the master never sees its hang-up.
  closeSync(slave);
  const stream = terminalStream(native, master);
  let bytes = 0;
  const consumer = new Writable({
    highWaterMark: 16 * 1024,
    write(chunk: Buffer, _encoding, callback) {
      bytes += chunk.length;
      if (delayMs < 0) callback();
      else setTimeout(callback, delayMs);
    },
  });
  try {
    const ending = await new Promise<string>((resolve) => {
      stream.once('end', () => { resolve('end'); });
      stream.once('error', (error: NodeJS.ErrnoException) => { resolve(`error ${error.code ?? error.message}`); });
      stream.pipe(consumer, { end: false });
    });
    await exited;
    // Let the consumer finish what it was handed.
    await new Promise<void>((resolve) => {
      consumer.end(resolve);
    });
    return { bytes, ending };
  } finally {
    stream.destroy();
  }
}

describe("the shim's terminal stream over a pty master", () => {
  const expected = terminalSeqBytes(100_000);

  for (const delayMs of [-1, 0, 2]) {
    test(`delivers everything before its end to a consumer that takes ${delayMs < 0 ? 'each write at once' : `${delayMs} ms per write`}`, async () => {
      for (let run = 0; run < 4; run++) {
        const { bytes, ending } = await copyTerminal(100_000, delayMs);
        assert.equal(bytes, expected, `run ${run}: ${expected - bytes} bytes lost (the stream ended with ${ending})`);
        assert.equal(ending, 'end', 'the end of a drained terminal is an end, not an error');
      }
    });
  }
});
