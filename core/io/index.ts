/**
 * The stdio of one process (a container's init or an exec): what the OCI runtime
 * gets as the process's fds 0, 1 and 2 (or a console socket), and the copiers
 * between those and what containerd asked for (containerd-shim-facts.md section
 * 3.4; the Go shim's process/io.go and runc/platform.go).
 *
 * Lifecycle, driven by the container code:
 * 1. {@link createProcessIO} before `runc create|exec`: pipes, fifos, files, the
 *    console socket, a `binary://` logger (ready before this resolves).
 * 2. `runc` runs with {@link ProcessIO.runtimeFds} and {@link ProcessIO.consoleSocket}.
 * 3. {@link ProcessIO.started} once it exited successfully: our copies of the
 *    process's pipe ends are closed (or EOF would never come) and, with a terminal,
 *    the pty master is received and copied.
 * 4. {@link ProcessIO.drain} after the process exited, before its exit is
 *    published (DESIGN.md section 3, "No lost output"): the output copied to the
 *    end and, for a fifo, read by the client while it keeps reading
 *    (reader-wait.ts: containerd 1.6's ctr drops what is still in the fifo when
 *    the exit reaches it).
 * 5. {@link ProcessIO.close} when the process is deleted, or when create failed.
 *
 * Every fd this module opens is owned by exactly one of: the set of raw fds, the
 * set of the process's ends, a stream, or a sink; close() releases all four, and
 * createProcessIO calls it on every failure, so no path leaks an fd.
 */
import { fchownSync } from 'node:fs';
import type { Readable } from 'node:stream';
import type net from 'node:net';
import type { Native } from '../../native/facade.js';
import type { Logger, Stdio } from '../api.js';
import { failedPrecondition, invalidArgument, messageOf, RuntimeError, unknown } from '../errors.js';
import type { ProcessMonitor } from '../process-monitor.js';
import type { BinaryLogger } from './binary-logger.js';
import { startBinaryLogger } from './binary-logger.js';
import type { ConsoleSocket } from './console-socket.js';
import { createConsoleSocket } from './console-socket.js';
import { copyOutput, copyStdin, copyTerminalInput } from './copy.js';
import { pipeReader, pipeWriter, terminalStream } from './fd-stream.js';
import type { FifoReaderOptions, OutputSink } from './output-sink.js';
import { discardSink, fileSink, isFifoFd, openError, pathSink, pipeSink } from './output-sink.js';
import type { BinaryLoggerCommand } from './stdio-uri.js';
import { fifoPathOf, isNullStdio, parseOutputTarget } from './stdio-uri.js';

/** How long a `binary://` logger gets between SIGTERM and SIGKILL (the Go shim's binaryIOProcTermTimeout). */
export const DEFAULT_LOGGER_STOP_GRACE_MS = 12_000;
/** Bound on a `binary://` logger's readiness (fd 5); the Go shim bounds it by the create call's deadline. */
export const DEFAULT_LOGGER_READY_TIMEOUT_MS = 30_000;
/** Bound on receiving the pty master after `runc create|exec` returned (runc sent it before returning). */
export const DEFAULT_CONSOLE_TIMEOUT_MS = 10_000;

/** What {@link createProcessIO} needs. */
export interface ProcessIOOptions {
  readonly monitor: ProcessMonitor;
  readonly native: Native;
  readonly logger: Logger;
  readonly namespace: string;
  readonly containerId: string;
  readonly execId: string;
  readonly stdio: Stdio;
  readonly ioUid: number;
  readonly ioGid: number;
  /** dir for the temporary console socket */
  readonly workDir: string;
  /** SIGTERM-to-SIGKILL grace of a `binary://` logger; default {@link DEFAULT_LOGGER_STOP_GRACE_MS}. */
  readonly loggerStopGraceMs?: number;
  /** Default {@link DEFAULT_LOGGER_READY_TIMEOUT_MS}. */
  readonly loggerReadyTimeoutMs?: number;
  /** Default {@link DEFAULT_CONSOLE_TIMEOUT_MS}. */
  readonly consoleTimeoutMs?: number;
  /** How long a fifo's client may make no progress before its exit stops waiting for it; default READER_STALL_MS (reader-wait.ts). */
  readonly readerStallMs?: number;
}

/** The stdio of one process; see the module comment for the order of calls. */
export interface ProcessIO {
  /**
   * Our fds to map onto the OCI runtime process's fds 0,1,2 (spawn `fds`), -1 = /dev/null. With a terminal all three are -1.
   * Valid until started() (which closes them) or close().
   */
  readonly runtimeFds: readonly [number, number, number];
  /** Path to pass as --console-socket (terminal only). */
  readonly consoleSocket: string | undefined;
  /**
   * After runc create/exec exited successfully: close our copies of the child's ends;
   * with a terminal receive the pty master (bounded wait) and start copying. Rejects
   * (DeadlineExceeded, Unknown) when the master does not arrive; FailedPrecondition
   * after close(). Calling it again returns the first call's promise.
   */
  started(): Promise<void>;
  /** Sets the terminal's size. No-op without a terminal, or once it is gone. Throws Unknown if the ioctl fails. */
  resize(size: { width: number; height: number }): void;
  /**
   * Closes our own writer of the stdin fifo (containerd's CloseIO). Once the
   * client's writer is closed too, the process reads EOF; with a terminal, the
   * terminal is hung up instead (the process gets SIGHUP, as with the Go shim).
   * Idempotent; no-op without stdin.
   */
  closeStdin(): void;
  /**
   * Resolves true when stdout/stderr reached EOF and were written out (into a fifo:
   * and read by the client, unless it made no progress for READER_STALL_MS), false
   * after timeoutMs (logged; a wait for a fifo's reader then stops too). EOF needs
   * started() to have closed our copies of the write ends: drain waits for it (within the bound).
   */
  drain(timeoutMs: number): Promise<boolean>;
  /** Releases fifos, pipes, pty, loggers (binary:// logger: SIGTERM, grace, SIGKILL). Idempotent. */
  close(): Promise<void>;
}

/**
 * Sets up the stdio of one process. Throws (having released everything it opened):
 * InvalidArgument for an unknown scheme, a malformed URI, a stdio path that cannot
 * be opened or a stdin that is not a fifo; DeadlineExceeded or Unknown when a
 * `binary://` logger cannot start or is not ready in time; Unknown otherwise.
 */
export async function createProcessIO(options: ProcessIOOptions): Promise<ProcessIO> {
  const io = new StdioSession(options);
  try {
    await io.setUp();
  } catch (err) {
    await io.close();
    throw err instanceof RuntimeError ? err : unknown(`setting up the stdio of ${io.what} failed: ${messageOf(err)}`, err);
  }
  return io;
}

type Phase = 'creating' | 'created' | 'started' | 'closed';

class StdioSession implements ProcessIO {
  readonly what: string;
  readonly #options: ProcessIOOptions;
  readonly #native: Native;
  readonly #log: Logger;
  readonly #runtimeFds: [number, number, number] = [-1, -1, -1];
  #consoleSocketPath: string | undefined;
  #phase: Phase = 'creating';

  /** Raw fds we hold that no stream owns (pipe ends before hand-over). */
  readonly #fds = new Set<number>();
  /** Our copies of the ends the process gets: closed by started(). */
  readonly #processEnds = new Set<number>();
  /** The shim's own writer of the stdin fifo (see closeStdin). */
  #stdinWriter: number | undefined;
  /** Streams over fds: destroying one closes its fd. */
  readonly #streams = new Set<Readable>();
  readonly #sinks = new Set<OutputSink>();
  /** One per output copier; all settled = every byte written out. */
  readonly #copies: Promise<void>[] = [];
  /** Output copies that start with started() (see #copyFromProcess). */
  readonly #pendingCopies: (() => Promise<void>)[] = [];
  /**
   * Given to every fifo sink: aborted when the drain bound passes (the exit is
   * published anyway) or on close, so no wait for a fifo's reader outlives its use.
   */
  readonly #readerWaits = new AbortController();

  #console: ConsoleSocket | undefined;
  /** Terminal only: where the master's output goes, and the stdin fifo reader. */
  #terminalSink: OutputSink | undefined;
  #terminalInput: Readable | undefined;
  #master: { readonly fd: number; readonly stream: net.Socket } | undefined;
  #binaryLogger: BinaryLogger | undefined;

  #starting: Promise<void> | undefined;
  #closing: Promise<void> | undefined;
  /**
   * Resolved by the first started() (or close()). drain() waits for it: before
   * started() we still hold the process's write ends, so EOF cannot come yet. (An
   * exit can be reaped before started() ran: runc exec --detach returns after the
   * exec started, and a short one is gone by then.)
   */
  readonly #startRequested: Promise<void>;
  #onStartRequested: () => void = () => undefined;

  constructor(options: ProcessIOOptions) {
    this.#options = options;
    this.#native = options.native;
    this.what = options.execId === '' ? `container '${options.containerId}'` : `exec '${options.execId}' of container '${options.containerId}'`;
    this.#log = options.logger.child({ component: 'stdio', containerId: options.containerId, execId: options.execId });
    this.#startRequested = new Promise((resolve) => {
      this.#onStartRequested = resolve;
    });
  }

  get runtimeFds(): readonly [number, number, number] {
    return this.#runtimeFds;
  }

  get consoleSocket(): string | undefined {
    return this.#consoleSocketPath;
  }

  async setUp(): Promise<void> {
    const { stdio } = this.#options;
    if (stdio.terminal) {
      await this.#setUpTerminal();
    } else if (!isNullStdio(stdio)) {
      await this.#setUpPipes();
    }
    this.#phase = 'created';
    this.#log.debug({ stdio, runtimeFds: this.#runtimeFds, consoleSocket: this.#consoleSocketPath }, 'stdio set up');
  }

  started(): Promise<void> {
    this.#starting ??= this.#start();
    this.#onStartRequested();
    return this.#starting;
  }

  resize(size: { width: number; height: number }): void {
    const master = this.#master;
    if (master === undefined || master.stream.destroyed) return;
    try {
      this.#native.setWindowSize(master.fd, { rows: size.height, cols: size.width });
    } catch (err) {
      throw unknown(`resizing the terminal of ${this.what} failed: ${messageOf(err)}`, err);
    }
  }

  closeStdin(): void {
    const fd = this.#stdinWriter;
    if (fd === undefined) return;
    this.#stdinWriter = undefined;
    this.#closeFd(fd);
  }

  async drain(timeoutMs: number): Promise<boolean> {
    const copied = (async () => {
      await this.#startRequested;
      // A terminal's copier only exists once started() received the master.
      await this.#starting?.catch(() => undefined);
      await Promise.all(this.#copies);
      return true;
    })();
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<false>((resolve) => {
      timer = setTimeout(resolve, timeoutMs, false);
    });
    const drained = await Promise.race([copied, bound]);
    clearTimeout(timer);
    if (!drained) {
      this.#readerWaits.abort();
      this.#log.warn(
        { timeoutMs },
        'stdout/stderr did not reach end of file within the bound (a process still holds them open, or the client reads its fifo slowly or not at all): publishing the exit anyway',
      );
    }
    return drained;
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  // ---- set-up ------------------------------------------------------------------

  async #setUpPipes(): Promise<void> {
    const { stdio } = this.#options;
    // Parsed first: a bad URI fails before anything is opened.
    const target = parseOutputTarget(stdio.stdout);
    if (stdio.stdin !== '') {
      const [read, write] = this.#pipe();
      this.#giveToProcess(0, read);
      copyStdin(this.#openStdinFifo(stdio.stdin), this.#own(pipeWriter(this.#native, this.#take(write))), this.#log);
    }
    switch (target.kind) {
      case 'fifo': {
        // stdout and stderr naming one regular file share one writer.
        const files = new Map<string, OutputSink>();
        const readers = this.#fifoReaders();
        if (stdio.stdout !== '') this.#copyFromProcess(1, pathSink(this.#native, fifoPathOf(stdio.stdout), 'stdout', files, readers));
        if (stdio.stderr !== '') this.#copyFromProcess(2, pathSink(this.#native, fifoPathOf(stdio.stderr), 'stderr', files, readers));
        return;
      }
      case 'file': {
        const sink = this.#sink(fileSink(target.path, 'stdout file', { create: true }));
        this.#copyFromProcess(1, sink);
        // As the Go shim: stderr goes to the file when the client asked for stderr at all.
        if (stdio.stderr !== '') this.#copyFromProcess(2, sink);
        return;
      }
      case 'binary': {
        // The logger reads the pipes itself: nothing to copy, nothing of ours in between.
        const [outRead, outWrite] = this.#pipe();
        const [errRead, errWrite] = this.#pipe();
        this.#giveToProcess(1, outWrite);
        this.#giveToProcess(2, errWrite);
        await this.#startLogger(target.logger, outRead, errRead);
        return;
      }
    }
  }

  async #setUpTerminal(): Promise<void> {
    const { stdio } = this.#options;
    const target = parseOutputTarget(stdio.stdout);
    this.#console = await createConsoleSocket(this.#native, this.#options.workDir);
    this.#consoleSocketPath = this.#console.path;
    if (stdio.stdin !== '') this.#terminalInput = this.#openStdinFifo(stdio.stdin);
    // A terminal has one output stream; stderr is unused (runc/platform.go CopyConsole).
    switch (target.kind) {
      case 'fifo':
        this.#terminalSink = this.#sink(
          // The pty's output goes into the stdout fifo: the same wait for its reader.
          stdio.stdout === '' ? discardSink() : pathSink(this.#native, fifoPathOf(stdio.stdout), 'stdout', new Map(), this.#fifoReaders()),
        );
        return;
      case 'file':
        this.#terminalSink = this.#sink(fileSink(target.path, 'stdout file', { create: true }));
        return;
      case 'binary': {
        const [outRead, outWrite] = this.#pipe();
        const [errRead, errWrite] = this.#pipe();
        // The logger's fd 4 reads EOF at once: a terminal has no stderr.
        this.#closeFd(errWrite);
        await this.#startLogger(target.logger, outRead, errRead);
        this.#terminalSink = this.#sink(pipeSink(this.#native, this.#take(outWrite)));
        return;
      }
    }
  }

  /**
   * Opens the client's stdin fifo for reading (non-blocking) and, as the shim's own
   * writer, for writing (process/init.go openStdin): without our writer, the copier
   * would read EOF whenever the client has not opened (or has reopened) its end.
   */
  #openStdinFifo(stdin: string): Readable {
    const path = fifoPathOf(stdin);
    let readFd: number;
    try {
      readFd = this.#native.openFifo(path, 'read');
    } catch (err) {
      throw openError('stdin fifo', path, err);
    }
    this.#fds.add(readFd);
    if (!isFifoFd(readFd)) throw invalidArgument(`stdin '${path}' of ${this.what} is not a fifo`);
    try {
      this.#stdinWriter = this.#native.openFifo(path, 'write');
    } catch (err) {
      throw openError('stdin fifo', path, err);
    }
    this.#fds.add(this.#stdinWriter);
    return this.#own(pipeReader(this.#native, this.#take(readFd)));
  }

  /**
   * A pipe for output stream `index` (1 or 2): its write end to the process, its read end
   * copied into `sink` from started() on. Not before: what `runc create|exec` itself
   * writes there when it fails (its error, which the caller reports from runc's log)
   * must not reach the client's stream, as with the Go shim, which starts its copies
   * only after the runtime call succeeded. The process cannot lose output meanwhile: an
   * init runs no code of its own before `runc start`, and an exec that writes more than
   * a pipe holds before `runc exec` returns waits for the copy.
   */
  #copyFromProcess(index: 1 | 2, sink: OutputSink): void {
    this.#sink(sink);
    const [read, write] = this.#pipe();
    this.#giveToProcess(index, write);
    const source = this.#own(pipeReader(this.#native, this.#take(read)));
    this.#pendingCopies.push(() => copyOutput(source, sink, this.#log, index === 1 ? 'stdout' : 'stderr'));
  }

  async #startLogger(command: BinaryLoggerCommand, stdoutRead: number, stderrRead: number): Promise<void> {
    try {
      this.#binaryLogger = await startBinaryLogger({
        monitor: this.#options.monitor,
        native: this.#native,
        logger: this.#log,
        command,
        containerId: this.#options.containerId,
        namespace: this.#options.namespace,
        stdoutRead,
        stderrRead,
        readyTimeoutMs: this.#options.loggerReadyTimeoutMs ?? DEFAULT_LOGGER_READY_TIMEOUT_MS,
      });
    } finally {
      // The logger holds its own copies; ours would keep the pipes alive after it exits.
      this.#closeFd(stdoutRead);
      this.#closeFd(stderrRead);
    }
  }

  // ---- started / close -----------------------------------------------------------

  async #start(): Promise<void> {
    if (this.#phase === 'closed') throw failedPrecondition(`the stdio of ${this.what} is closed`);
    // Only the process may hold the write ends now, or their EOF never comes.
    for (const fd of this.#processEnds) this.#native.close(fd);
    this.#processEnds.clear();
    this.#phase = 'started';
    for (const begin of this.#pendingCopies.splice(0)) this.#copies.push(begin());
    const socket = this.#console;
    if (socket === undefined) return;
    const fd = await socket.receiveMaster(this.#options.consoleTimeoutMs ?? DEFAULT_CONSOLE_TIMEOUT_MS);
    if (this.#closing !== undefined) {
      // close() ran while we waited.
      this.#native.close(fd);
      throw failedPrecondition(`the stdio of ${this.what} was closed while receiving its terminal`);
    }
    const stream = this.#own(terminalStream(this.#native, fd));
    this.#master = { fd, stream };
    const sink = this.#terminalSink;
    if (sink !== undefined) this.#copies.push(copyOutput(stream, sink, this.#log, 'terminal'));
    if (this.#terminalInput !== undefined) {
      copyTerminalInput(this.#terminalInput, stream, () => stream.destroy(), this.#log);
    }
    this.#log.debug({ master: fd }, 'terminal received');
  }

  async #close(): Promise<void> {
    this.#phase = 'closed';
    this.#readerWaits.abort();
    this.#onStartRequested();
    await this.#console?.close();
    for (const stream of this.#streams) stream.destroy();
    this.#streams.clear();
    const sinks = [...this.#sinks];
    this.#sinks.clear();
    await Promise.all(sinks.map((sink) => sink.destroy()));
    for (const fd of [...this.#fds, ...this.#processEnds]) {
      try {
        this.#native.close(fd);
      } catch (err) {
        // A bug, not an input: keep releasing the rest.
        this.#log.error({ err, fd }, 'closing a stdio fd failed');
      }
    }
    this.#fds.clear();
    this.#processEnds.clear();
    this.#stdinWriter = undefined;
    this.#master = undefined;
    // Its pipes are closed now: a logger that exits at EOF is gone before the SIGTERM.
    await this.#binaryLogger?.stop(this.#options.loggerStopGraceMs ?? DEFAULT_LOGGER_STOP_GRACE_MS);
  }

  #fifoReaders(): FifoReaderOptions {
    const { readerStallMs } = this.#options;
    return { log: this.#log, signal: this.#readerWaits.signal, ...(readerStallMs === undefined ? {} : { stallMs: readerStallMs }) };
  }

  // ---- fd bookkeeping ----------------------------------------------------------

  #pipe(): [number, number] {
    const [read, write] = this.#native.pipe();
    this.#fds.add(read);
    this.#fds.add(write);
    return [read, write];
  }

  /** Hands our end `fd` to the process as its fd `index`, owned by IoUid/IoGid when set. */
  #giveToProcess(index: 0 | 1 | 2, fd: number): void {
    this.#fds.delete(fd);
    this.#processEnds.add(fd);
    this.#runtimeFds[index] = fd;
    const { ioUid, ioGid } = this.#options;
    if (ioUid === 0 && ioGid === 0) return;
    try {
      fchownSync(fd, ioUid, ioGid);
    } catch (err) {
      throw unknown(`cannot give the stdio pipes of ${this.what} to uid ${ioUid} gid ${ioGid} (IoUid/IoGid): ${messageOf(err)}`, err);
    }
  }

  /** Removes `fd` from the raw set: a stream is about to own it. */
  #take(fd: number): number {
    this.#fds.delete(fd);
    return fd;
  }

  #closeFd(fd: number): void {
    if (!this.#fds.delete(fd)) return;
    this.#native.close(fd);
  }

  #own<S extends Readable>(stream: S): S {
    this.#streams.add(stream);
    return stream;
  }

  #sink(sink: OutputSink): OutputSink {
    this.#sinks.add(sink);
    return sink;
  }
}
