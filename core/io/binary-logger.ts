/**
 * `binary://` loggers: a program containerd's user names in the stdout URI, which
 * receives the process's stdout on its fd 3 and stderr on its fd 4, and signals
 * readiness on fd 5 (containerd's runtime/v2/logging: `Run` closes fd 5 once set
 * up). Started through the process monitor, never child_process (one reaper).
 */
import type { Logger } from '../api.js';
import type { Native, WaitStatus } from '../../native/facade.js';
import { hasErrno, messageOf, RuntimeError, unknown } from '../errors.js';
import type { MonitoredChild, ProcessMonitor } from '../process-monitor.js';
import { exitStatusOf } from '../process-monitor.js';
import { pipeReader } from './fd-stream.js';
import type { BinaryLoggerCommand } from './stdio-uri.js';

/** A running logger. */
export interface BinaryLogger {
  readonly pid: number;
  /**
   * Stops the logger: SIGTERM, then SIGKILL if it is still running after `graceMs`
   * (the Go shim gives it 12 s). Resolves once it was reaped. Idempotent.
   */
  stop(graceMs: number): Promise<void>;
}

/** What {@link startBinaryLogger} needs. */
export interface BinaryLoggerOptions {
  readonly monitor: ProcessMonitor;
  readonly native: Native;
  readonly logger: Logger;
  readonly command: BinaryLoggerCommand;
  readonly containerId: string;
  readonly namespace: string;
  /** Our read end of the stdout pipe: the logger's fd 3. Not taken over (the caller closes it). */
  readonly stdoutRead: number;
  /** Our read end of the stderr pipe: the logger's fd 4. Not taken over. */
  readonly stderrRead: number;
  /** Bound on waiting for fd 5. */
  readonly readyTimeoutMs: number;
}

/** The PATH a logger gets: the Go shim passes none, which leaves a logger unable to run helpers by name. */
const LOGGER_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/**
 * After the ready pipe reached EOF without a byte, how long to look for the
 * logger's exit before calling it ready. A logger that dies closes fd 5 a moment
 * before its exit is reported (the kernel closes a process's files before it
 * signals the exit); a healthy logger closes fd 5 and keeps running.
 */
const EXIT_SETTLE_MS = 25;

/** Signal numbers (Linux). */
const SIGTERM = 15;
const SIGKILL = 9;

/**
 * Starts the logger and waits until it is ready: fd 5 written or closed. Rejects
 * (after killing and reaping the logger) when it cannot be started, exits first, or
 * is not ready within `readyTimeoutMs`. Every fd it opened is closed on every path.
 */
export async function startBinaryLogger(options: BinaryLoggerOptions): Promise<BinaryLogger> {
  const { native, command } = options;
  const log = options.logger.child({ logger: command.path });
  const [readyRead, readyWrite] = native.pipe();
  let child: MonitoredChild;
  try {
    child = options.monitor.spawn({
      file: command.path,
      args: [command.path, ...command.args],
      env: [`CONTAINER_ID=${options.containerId}`, `CONTAINER_NAMESPACE=${options.namespace}`, LOGGER_PATH, ...command.env],
      fds: [-1, -1, -1, options.stdoutRead, options.stderrRead, readyWrite],
    });
  } catch (err) {
    native.close(readyRead);
    throw unknown(
      `the binary logger '${command.path}' could not be started: ${messageOf(err)}; check the path of the stdout URI`,
      err,
    );
  } finally {
    // Only the logger may hold the write end, or its EOF would never come.
    native.close(readyWrite);
  }
  const logger = new RunningLogger(native, child, log);
  try {
    await waitReady(native, readyRead, child, command.path, options.readyTimeoutMs);
  } catch (err) {
    await logger.kill();
    throw err;
  }
  log.debug({ pid: child.pid }, 'binary logger is ready');
  return logger;
}

class RunningLogger implements BinaryLogger {
  readonly #native: Native;
  readonly #child: MonitoredChild;
  readonly #log: Logger;
  /** Set in the same turn the monitor resolves `exited` (it closed the pidfd then). */
  #exited: WaitStatus | undefined;
  #stopping: Promise<void> | undefined;

  constructor(native: Native, child: MonitoredChild, log: Logger) {
    this.#native = native;
    this.#child = child;
    this.#log = log;
    void child.exited.then((status) => {
      this.#exited = status;
      if (this.#stopping === undefined) {
        log.warn({ pid: child.pid, exitStatus: exitStatusOf(status) }, 'binary logger exited while its process may still write output');
      }
    });
  }

  get pid(): number {
    return this.#child.pid;
  }

  stop(graceMs: number): Promise<void> {
    this.#stopping ??= this.#stop(graceMs);
    return this.#stopping;
  }

  /** SIGKILL and reap, for a logger that failed to start. */
  kill(): Promise<void> {
    this.#stopping ??= (async () => {
      this.#signal(SIGKILL);
      await this.#child.exited;
    })();
    return this.#stopping;
  }

  async #stop(graceMs: number): Promise<void> {
    // SIGTERM first, so the logger can flush what it read (process/io.go binaryIO.cancel).
    this.#signal(SIGTERM);
    const status = await withTimeout(this.#child.exited, graceMs);
    if (status !== undefined) {
      this.#log.debug({ pid: this.pid, exitStatus: exitStatusOf(status) }, 'binary logger stopped');
      return;
    }
    this.#log.warn({ pid: this.pid, graceMs }, 'binary logger did not exit after SIGTERM: killing it');
    this.#signal(SIGKILL);
    await this.#child.exited;
  }

  /**
   * Signals through the pidfd, never a bare pid: the pid may be recycled once the
   * logger was reaped. The monitor closes the pidfd right before `exited` resolves;
   * `#exited` is set by the first reaction to that, so a stale pidfd is never used by
   * code that runs later. ESRCH means it exited and was not yet reaped: nothing to do.
   */
  #signal(signal: number): void {
    if (this.#exited !== undefined || this.#child.pidfd < 0) return;
    try {
      this.#native.pidfdSendSignal(this.#child.pidfd, signal);
    } catch (err) {
      if (!hasErrno(err, 'ESRCH')) this.#log.warn({ err, pid: this.pid, signal }, 'signalling the binary logger failed');
    }
  }
}

/**
 * Waits for the logger's ready signal on `readyRead` (which it takes over and
 * closes): a byte or EOF. Rejects if the logger exits first or the bound passes.
 */
async function waitReady(native: Native, readyRead: number, child: MonitoredChild, path: string, timeoutMs: number): Promise<void> {
  const ready = pipeReader(native, readyRead);
  let timer: NodeJS.Timeout | undefined;
  try {
    // Never rejects: it may settle after the race was decided by another outcome.
    const signal = new Promise<'byte' | 'eof' | { readError: Error }>((resolve) => {
      ready.once('data', () => {
        resolve('byte');
      });
      ready.once('end', () => {
        resolve('eof');
      });
      ready.once('error', (readError: Error) => {
        resolve({ readError });
      });
    });
    const exited = child.exited.then((status) => ({ exited: status }));
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(resolve, timeoutMs, 'timeout');
    });
    let outcome = await Promise.race([signal, exited, timeout]);
    if (outcome === 'eof') {
      // See EXIT_SETTLE_MS: an EOF may be the logger dying.
      outcome = await Promise.race([exited, delay(EXIT_SETTLE_MS, 'eof' as const)]);
    }
    if (outcome === 'timeout') {
      throw new RuntimeError('DeadlineExceeded', `the binary logger '${path}' did not signal readiness on fd 5 within ${timeoutMs} ms`);
    }
    if (typeof outcome === 'object' && 'readError' in outcome) {
      throw unknown(`reading the ready pipe of the binary logger '${path}' failed: ${messageOf(outcome.readError)}`, outcome.readError);
    }
    if (typeof outcome === 'object') {
      throw unknown(
        `the binary logger '${path}' exited with status ${exitStatusOf(outcome.exited)} before it was ready; check its arguments and its own logs`,
      );
    }
  } finally {
    clearTimeout(timer);
    ready.destroy();
  }
}

function delay<T>(ms: number, value: T): Promise<T> {
  return new Promise((resolve) => setTimeout(resolve, ms, value));
}

async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<undefined>((resolve) => (timer = setTimeout(resolve, ms, undefined)))]);
  } finally {
    clearTimeout(timer);
  }
}
