/**
 * Helpers for the core/io tests (not used by the runtime): real fifos, real
 * processes started through the process monitor (no child_process: one reaper),
 * readers of fifos, and the fd count a test must leave as it found it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Native, WaitStatus } from '../../native/facade.js';
import { loadNative } from '../../native/index.js';
import { BUSYBOX, openFdCount } from '../../native/testing-support.js';
import type { MonitoredChild, ProcessMonitor } from '../process-monitor.js';
import { createProcessMonitor } from '../process-monitor.js';
import type { TestLogger } from '../test-logger.js';
import { createTestLogger } from '../test-logger.js';
import { pipeReader } from './fd-stream.js';
import type { ProcessIOOptions } from './index.js';

/** Re-exported for the io tests: the busybox they run and the fd counter. */
export { BUSYBOX, openFdCount };

/** What every core/io test uses: the real addon, a monitor, a recording logger, a temp dir. */
export interface IoTestEnv {
  readonly native: Native;
  readonly monitor: ProcessMonitor;
  readonly logger: TestLogger;
  /** A fresh temporary directory, removed by {@link IoTestEnv.close}. */
  readonly dir: string;
  /** ProcessIOOptions with everything but stdio filled in. */
  options(stdio: ProcessIOOptions['stdio'], more?: Partial<ProcessIOOptions>): ProcessIOOptions;
  /** busybox mkfifo. */
  mkfifo(...paths: string[]): Promise<void>;
  /** busybox sh -c `script` with the given fd table. */
  sh(script: string, fds: readonly number[], env?: readonly string[]): MonitoredChild;
  close(): void;
}

/** Loads the real addon and starts a monitor; throws when the addon is not built. Call close() in `after`. */
export function createIoTestEnv(): IoTestEnv {
  const native = loadNative();
  const logger = createTestLogger();
  const monitor = createProcessMonitor(native, logger);
  const dir = mkdtempSync(join(tmpdir(), 'tsrun-io-'));
  const sh = (script: string, fds: readonly number[], env: readonly string[] = []): MonitoredChild =>
    monitor.spawn({ file: BUSYBOX, args: ['sh', '-c', script], env: ['PATH=/usr/bin:/bin', ...env], fds });
  return {
    native,
    monitor,
    logger,
    dir,
    options: (stdio, more = {}) => ({
      monitor,
      native,
      logger,
      namespace: 'testns',
      containerId: 'c1',
      execId: '',
      stdio,
      ioUid: 0,
      ioGid: 0,
      workDir: dir,
      ...more,
    }),
    async mkfifo(...paths) {
      const status = await monitor.spawn({ file: BUSYBOX, args: ['mkfifo', ...paths], env: [], fds: [-1, -1, 2] }).exited;
      if (status.kind !== 'exited' || status.code !== 0) throw new Error(`mkfifo ${paths.join(' ')} failed`);
    },
    sh,
    close() {
      monitor.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A reader of a fifo (what containerd does with a stdout fifo), collecting everything it reads. */
export interface FifoReader {
  /** Everything read so far. */
  text(): string;
  readonly bytes: () => number;
  /** Resolves at EOF (every writer of the fifo closed). */
  readonly ended: Promise<void>;
  /** Closes the reader (containerd going away). */
  close(): void;
}

/**
 * Opens `path` for reading and collects it. `keep` false counts bytes only (for
 * throughput); `pauseMs` makes a slow reader that rests after every chunk, so
 * output backs up in the pipes and the fifo.
 */
export function readFifo(native: Native, path: string, options: { keep?: boolean; pauseMs?: number } = {}): FifoReader {
  const { keep = true, pauseMs = 0 } = options;
  const stream: net.Socket = pipeReader(native, native.openFifo(path, 'read'));
  const chunks: Buffer[] = [];
  let bytes = 0;
  stream.on('data', (chunk: Buffer) => {
    bytes += chunk.length;
    if (keep) chunks.push(chunk);
    if (pauseMs > 0) {
      stream.pause();
      setTimeout(() => stream.resume(), pauseMs);
    }
  });
  const ended = new Promise<void>((resolve, reject) => {
    stream.once('end', resolve);
    stream.once('close', resolve);
    stream.once('error', reject);
  });
  return {
    text: () => Buffer.concat(chunks).toString('utf8'),
    bytes: () => bytes,
    ended,
    close: () => stream.destroy(),
  };
}

/** Resolves once `check()` holds; rejects with `what` after `timeoutMs`. */
export async function eventually(check: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** `promise`, or a rejection naming `what` after `ms`: a broken test fails instead of hanging. */
export async function within<T>(promise: Promise<T>, what: string, ms = 10_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => {
          reject(new Error(`timed out after ${ms} ms waiting for ${what}`));
        }, ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** `exited` or 'running' after `ms`. */
export async function exitWithin(child: MonitoredChild, ms: number): Promise<WaitStatus | 'running'> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([child.exited, new Promise<'running'>((resolve) => (timer = setTimeout(resolve, ms, 'running')))]);
  } finally {
    clearTimeout(timer);
  }
}

/** The numbers 1..n, one per line, as `seq` prints them. */
export function numberedLines(n: number, from = 1): string {
  const lines: string[] = [];
  for (let i = from; i < from + n; i++) lines.push(String(i));
  return `${lines.join('\n')}\n`;
}
