/**
 * The tsrun manager: one long-lived Node process per containerd that answers the native
 * launcher's `start`, `delete`, `-info` and `-v` over a root-only control socket
 * (native/launcher/PROTOCOL.md), so that containerd never waits for Node to boot on a
 * container's path (issue 7; DESIGN.md section 2, point 2).
 *
 * - Socket: `/run/tsrun/<first 16 hex of sha256(address)>.sock` (0600, directory 0700).
 *   A live socket there means another manager won the race to start: this one exits 0
 *   quietly. A socket file nobody answers on (a manager that was killed) is replaced.
 * - Each connection carries one request frame; the peer must have our uid
 *   (SO_PEERCRED). The request is served by the same `runAction` as the one-shot CLI
 *   (cli.ts), and its answer written back as one response frame; then the connection
 *   closes. A malformed, oversized or truncated request gets exit code 2 and a sentence,
 *   never a crash; a connection that does not deliver its request in time is dropped.
 * - A new group's daemon is, when one is ready, the pre-booted spare (spare.ts);
 *   otherwise a daemon is spawned as the CLI would. Either way it is this process's
 *   child, so a process monitor reaps it when it exits: no zombie accumulates.
 * - It exits after `idleMs` without a request in flight, and soon after the containerd
 *   it serves (the parent of its launchers) exits. Its death, even by SIGKILL, touches
 *   no daemon and no container: they are separate processes in their own sessions; an
 *   idle spare sees end of file on its channel and exits.
 *
 * Race left open, by design: a launcher that connects in the instant the manager closes
 * its socket (idle exit) gets its connection reset without an answer; the launcher then
 * runs the Node CLI itself (PROTOCOL.md step 5), so containerd only sees a slower call.
 */
import { createHash } from 'node:crypto';
import { chmodSync, fstatSync, ftruncateSync, mkdirSync, openSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createProcessMonitor, type Logger, type ProcessMonitor } from '../core/index.js';
import type { FdWatcher, Native } from '../native/facade.js';
import { failure, type ActionContext, type ActionResult } from './action.js';
import { runAction } from './cli.js';
import { saveCodeCacheSoon } from './code-cache-saver.js';
import { daemonEnvironment, daemonSpawnOptions, type DaemonCommand, type DaemonLauncher, type DaemonSpec, type LaunchedDaemon } from './daemon-launcher.js';
import { parseFlags } from './flags.js';
import { createFrameReader, decodeRequest, encodeResponse, environmentOf, MAX_FRAME_BYTES, type LauncherRequest } from './launcher-protocol.js';
import { createLogger, createLogSink } from './log.js';
import type { LogLevel } from './settings.js';
import { canRaisePriority, createSparePool, type SparePool } from './spare-pool.js';
import { bindOrReuse } from './start.js';

/** Where managers listen (PROTOCOL.md). */
export const MANAGER_SOCKET_DIR = '/run/tsrun';
/** The default idle time before a manager exits: 5 minutes (env TSRUN_MANAGER_IDLE_MS). */
export const DEFAULT_MANAGER_IDLE_MS = 5 * 60_000;
/** How long a connection may take to deliver its whole request. */
const requestTimeoutMs = 10_000;
/** The nice value spares boot at (see SparePoolOptions.bootNice). */
const spareBootNice = 10;
/** Backlog of the control socket: a burst of parallel launchers queues there. */
const listenBacklog = 1024;

/** The control socket of the manager of the containerd at `address` ('' when there is none). */
export function controlSocketPath(address: string, dir: string = MANAGER_SOCKET_DIR): string {
  return join(dir, `${createHash('sha256').update(address).digest('hex').slice(0, 16)}.sock`);
}

/** Where the launcher puts the channel of the spare it forked beside the manager (`-spare-pid`). */
const FIRST_SPARE_CHANNEL_FD = 3;

/** A manager log larger than this at start is truncated (the log is quiet: lifecycle lines and problems). */
const maxLogBytesAtStart = 1024 * 1024;

/**
 * The `-manager` process: `node entry.cjs -manager -address <a> [-spare-pid <p>]` as the
 * launcher starts it (new session, /dev/null on 0-2; with `-spare-pid`, the channel of
 * the first spare, which the launcher forked beside it, on fd 3). Logs with pino to `/run/tsrun/<hash>.log` (beside
 * its socket; level `info` = lifecycle lines and problems, or TSRUN_MANAGER_LOG_LEVEL),
 * so a manager problem is found without containerd's help. A clean exit that logged no
 * warning or error removes the log (nothing in it is worth keeping, and one containerd
 * after another would leave one each); a log that grew past 1 MiB is truncated when the
 * next manager starts. Knobs from the environment:
 * TSRUN_MANAGER_IDLE_MS (idle exit, default 5 min), TSRUN_MANAGER_SPARE=0 (keep no
 * spare). Resolves with the exit code: 0 after an idle exit, or at once when another
 * manager already serves the socket.
 */
export async function runManagerProcess(native: Native, address: string, entry: DaemonCommand, firstSparePid = ''): Promise<number> {
  // Never pin the directory of the first container's bundle (the launcher's cwd).
  process.chdir('/');
  const socketPath = controlSocketPath(address);
  mkdirSync(MANAGER_SOCKET_DIR, { recursive: true, mode: 0o700 });
  const logPath = socketPath.replace(/\.sock$/, '.log');
  const logFd = openSync(logPath, 'a', 0o600);
  const sink = createLogSink(logFd, { attached: true });
  let troubled = false;
  const logger = createLogger(
    parseLogLevel(process.env['TSRUN_MANAGER_LOG_LEVEL'] ?? '') ?? 'info',
    {
      get dropped() {
        return sink.dropped;
      },
      attach: (bundle) => {
        sink.attach(bundle);
      },
      write: (line) => {
        if (/"level":"(warn|error|fatal)"/.test(line)) troubled = true;
        sink.write(line);
      },
    },
    { component: 'manager' },
  );
  process.on('uncaughtException', (err) => {
    logger.fatal({ err }, 'manager crashed');
    process.exit(1);
  });
  process.on('SIGPIPE', () => {
    // A launcher that went away: its socket write fails with EPIPE, handled there.
  });
  // Before the socket exists: a SIGTERM while it is being bound must still remove it
  // (the default action would leave the socket and the log behind).
  const stop: { requested: boolean; manager: Manager | undefined } = { requested: false, manager: undefined };
  const onSignal = (): void => {
    stop.requested = true;
    void stop.manager?.close();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  const idle = Number.parseInt(process.env['TSRUN_MANAGER_IDLE_MS'] ?? '', 10);
  let firstSpare: { pid: number; channelFd: number } | undefined;
  if (firstSparePid !== '') {
    const pid = Number(firstSparePid);
    // Only a child of ours: the pool signals and reaps its spares, and a pid typed by hand
    // must never make it kill some other process.
    if (Number.isSafeInteger(pid) && pid > 0 && parentOf(pid) === process.pid) {
      firstSpare = { pid, channelFd: FIRST_SPARE_CHANNEL_FD };
    } else {
      logger.warn({ sparePid: firstSparePid }, 'ignoring -spare-pid: not a child of this manager; booting a spare');
      // A channel on fd 3 is closed (a spare at its other end exits); anything else there
      // (fd 3 of a hand-run manager may be one of Node's own) is left alone.
      if (isSocket(FIRST_SPARE_CHANNEL_FD)) native.close(FIRST_SPARE_CHANNEL_FD);
    }
  }
  const manager = await startManager({
    native,
    address,
    socketPath,
    logger,
    idleMs: Number.isInteger(idle) && idle >= 0 ? idle : DEFAULT_MANAGER_IDLE_MS,
    daemon: entry,
    ...(process.env['TSRUN_MANAGER_SPARE'] === '0' ? {} : { spare: { file: entry.file, args: [...entry.args, '-spare', '-address', address] } }),
    ...(firstSpare === undefined ? {} : { firstSpare }),
    env: daemonEnvironment(process.env),
    // Before the socket goes: no newer manager can be writing to the same log yet.
    onStopping: () => {
      if (!troubled) unlinkQuietly(logPath);
    },
  });
  // The loser of a race to start leaves the winner's log alone.
  if (manager === 'taken') return 0;
  if (fstatSync(logFd).size > maxLogBytesAtStart) ftruncateSync(logFd, 0);
  raiseOomScore(logger);
  stop.manager = manager;
  if (stop.requested) void manager.close();
  const reason = await manager.stopped;
  logger.info({ reason }, 'manager exiting');
  return 0;
}

function isSocket(fd: number): boolean {
  try {
    return fstatSync(fd).isSocket();
  } catch {
    return false;
  }
}

/** The parent pid of `pid` from /proc, or undefined when it cannot be read. */
function parentOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so from the last ')'.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    return Number.isSafeInteger(ppid) ? ppid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The manager inherits containerd's oom_score_adj through the launcher; like a shim it
 * goes one above, so the kernel kills it (and its idle spare) before containerd. Raising
 * needs no privilege.
 */
function raiseOomScore(logger: Logger): void {
  try {
    const current = Number.parseInt(readFileSync('/proc/self/oom_score_adj', 'utf8').trim(), 10);
    if (Number.isInteger(current) && current < 1000) writeFileSync('/proc/self/oom_score_adj', String(current + 1));
  } catch (err) {
    logger.warn({ err }, 'could not raise the manager oom_score_adj');
  }
}

function parseLogLevel(value: string): LogLevel | undefined {
  const levels: readonly LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'];
  return levels.find((level) => level === value.toLowerCase());
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // Already gone.
  }
}

/** Options of {@link startManager}. */
export interface ManagerOptions {
  readonly native: Native;
  /** The `-address` of the containerd served ('' for a hand-run `-v` or `-info`). */
  readonly address: string;
  /** The control socket; {@link controlSocketPath} of `address` in production. */
  readonly socketPath: string;
  readonly logger: Logger;
  /** Exit after this long with no request in flight. */
  readonly idleMs: number;
  /** How a daemon is spawned when no spare is ready (this entry point under this node). */
  readonly daemon: DaemonCommand;
  /** How a spare is spawned (`... -spare -address <a>`); none kept when undefined. */
  readonly spare?: DaemonCommand;
  /**
   * The spare the launcher forked beside this manager (`-spare-pid`; our child, its
   * channel on `channelFd`): the pool's first spare. Owned from here on: its channel is
   * closed (and so the spare ends) when there is no pool or the socket is taken.
   */
  readonly firstSpare?: { readonly pid: number; readonly channelFd: number };
  /** The spares' environment before adoption, `KEY=value` each. */
  readonly env: readonly string[];
  /** Called once when the manager starts stopping, before its socket is removed. */
  readonly onStopping?: (reason: ManagerStop) => void;
}

/** Why a manager stopped. */
export type ManagerStop = 'idle' | 'containerd-exited' | 'closed';

/** A running manager. */
export interface Manager {
  /** Resolves when the manager has stopped serving. */
  readonly stopped: Promise<ManagerStop>;
  /** The spare pool (diagnostics and tests); undefined without spares. */
  readonly spares: SparePool | undefined;
  /** Stops now: closes the socket (removing it if it is still ours) and the spare. Idempotent. */
  close(): Promise<void>;
}

/**
 * Binds the control socket and serves it.
 * @returns the manager, or 'taken' when a live manager already answers on the socket.
 * @throws the bind error when the socket cannot be made (e.g. EACCES on /run/tsrun).
 */
export async function startManager(options: ManagerOptions): Promise<Manager | 'taken'> {
  const { native, socketPath } = options;
  const dir = join(socketPath, '..');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  // An existing directory keeps its mode through mkdir: make sure it is root-only.
  chmodSync(dir, 0o700);
  let bound: Awaited<ReturnType<typeof bindOrReuse>>;
  try {
    bound = await bindOrReuse(native, socketPath, listenBacklog);
  } catch (error) {
    if (options.firstSpare !== undefined) native.close(options.firstSpare.channelFd);
    throw error;
  }
  if (bound === 'reuse') {
    if (options.firstSpare !== undefined) native.close(options.firstSpare.channelFd);
    return 'taken';
  }
  const manager = new ControlServer(options, bound);
  try {
    await manager.listen();
  } catch (error) {
    await manager.close();
    throw error;
  }
  return manager;
}

class ControlServer implements Manager {
  readonly stopped: Promise<ManagerStop>;
  readonly spares: SparePool | undefined;
  readonly #options: ManagerOptions;
  readonly #listenFd: number;
  readonly #socketInode: number;
  readonly #server: Server;
  readonly #monitor: ProcessMonitor;
  readonly #context: ActionContext;
  readonly #uid = process.getuid?.() ?? 0;
  #resolveStopped: ((reason: ManagerStop) => void) | undefined;
  /** Requests accepted and not yet answered (their action may outlive the connection). */
  #inflight = 0;
  #idleTimer: NodeJS.Timeout | undefined;
  /** containerd exited: stop as soon as nothing is in flight. */
  #draining = false;
  #stopping = false;
  #containerd: { readonly pidfd: number; readonly watcher: FdWatcher } | undefined;
  #watchingContainerd = false;
  /** The server took the listening fd over. */
  #listened = false;

  constructor(options: ManagerOptions, listenFd: number) {
    this.#options = options;
    this.#listenFd = listenFd;
    this.#socketInode = statSync(options.socketPath).ino;
    this.stopped = new Promise((resolve) => {
      this.#resolveStopped = resolve;
    });
    this.#monitor = createProcessMonitor(options.native, options.logger);
    this.spares =
      options.spare === undefined
        ? undefined
        : createSparePool({
            native: options.native,
            monitor: this.#monitor,
            command: options.spare,
            env: options.env,
            logger: options.logger,
            ...(canRaisePriority() ? { bootNice: spareBootNice } : {}),
            ...(options.firstSpare === undefined ? {} : { first: options.firstSpare }),
          });
    if (options.spare === undefined && options.firstSpare !== undefined) options.native.close(options.firstSpare.channelFd);
    this.#context = { native: options.native, launcher: this.#launcher() };
    this.#server = createServer({ allowHalfOpen: true }, (socket) => {
      this.#serve(socket);
    });
    this.#server.on('error', (err) => {
      options.logger.error({ err }, 'control socket failed');
    });
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen({ fd: this.#listenFd, backlog: listenBacklog }, () => {
        this.#server.off('error', reject);
        this.#listened = true;
        resolve();
      });
    });
    this.spares?.start();
    this.#armIdle();
    this.#options.logger.info({ socket: this.#options.socketPath, address: this.#options.address, idleMs: this.#options.idleMs }, 'manager serving');
  }

  close(): Promise<void> {
    this.#stop('closed');
    return this.stopped.then(() => undefined);
  }

  /** The manager's daemon launcher: the ready spare, else a spawn this process reaps. */
  #launcher(): DaemonLauncher {
    return {
      launch: async (spec: DaemonSpec): Promise<LaunchedDaemon> => {
        const adopted = await this.spares?.adopt(spec);
        if (adopted !== undefined) return adopted;
        const child = this.#monitor.spawn(daemonSpawnOptions(this.#options.daemon, spec));
        let exited = false;
        void child.exited.then((status) => {
          exited = true;
          this.#options.logger.debug({ daemonPid: child.pid, status }, 'daemon exited');
        });
        this.#options.logger.debug({ daemonPid: child.pid, id: spec.flags.id }, 'no spare ready: spawned a daemon');
        return {
          pid: child.pid,
          kill: () => {
            if (exited) return;
            try {
              this.#options.native.pidfdSendSignal(child.pidfd, 9);
            } catch {
              // Exited meanwhile.
            }
          },
          release: () => {
            // The monitor keeps the pidfd until it reaps the daemon.
          },
        };
      },
    };
  }

  #serve(socket: Socket): void {
    this.#inflight++;
    this.#disarmIdle();
    let settled = false;
    let running = false;
    const done = (): void => {
      if (settled) return;
      settled = true;
      this.#inflight--;
      this.#armIdle();
    };
    socket.on('error', () => {
      // 'close' follows; a launcher that went away is its own business.
    });
    socket.on('close', () => {
      if (!running) done();
    });
    if (!this.#peerAllowed(socket)) {
      socket.destroy();
      return;
    }
    const timer = setTimeout(() => {
      this.#options.logger.warn({}, `a launcher did not send its request within ${requestTimeoutMs} ms: dropped`);
      socket.destroy();
    }, requestTimeoutMs);
    const reader = createFrameReader(MAX_FRAME_BYTES);
    let answered = false;
    const answer = (result: ActionResult): void => {
      if (answered) return;
      answered = true;
      clearTimeout(timer);
      socket.pause();
      if (socket.destroyed) return;
      socket.end(encodeResponse({ exitCode: result.exitCode, stdout: result.stdout, stderr: Buffer.from(result.stderr) }));
    };
    socket.on('data', (chunk: Buffer) => {
      if (answered || running) return;
      const state = reader.push(chunk);
      switch (state.kind) {
        case 'partial':
          return;
        case 'oversized':
          answer(failure(`tsrun manager: request frame of ${state.length} bytes is over the ${MAX_FRAME_BYTES}-byte limit: refused`, 2));
          return;
        case 'frame': {
          const decoded = decodeRequest(state.payload);
          if (!decoded.ok) {
            this.#options.logger.warn({ error: decoded.error }, 'malformed launcher request');
            answer(failure(`tsrun manager: malformed request: ${decoded.error}`, 2));
            return;
          }
          running = true;
          clearTimeout(timer);
          void this.#handle(decoded.value).then((result) => {
            answer(result);
            running = false;
            done();
          });
          return;
        }
      }
    });
    socket.on('end', () => {
      if (!answered && !running) answer(failure('tsrun manager: the request ended before its frame was complete', 2));
    });
  }

  /** Serves one decoded request. Never rejects. */
  async #handle(request: LauncherRequest): Promise<ActionResult> {
    const started = performance.now();
    this.#watchContainerd(request);
    let result: ActionResult;
    try {
      result = await runAction(
        { argv: request.argv, env: environmentOf(request.env), cwd: request.cwd, stdin: request.stdin, parentPid: request.parentPid },
        this.#context,
        this.#options.logger,
      );
    } catch (error) {
      // runAction does not throw; a bug that makes it must still be an answer.
      this.#options.logger.error({ err: error }, 'an action threw');
      result = failure(`tsrun manager: ${error instanceof Error ? error.message : String(error)}`);
    }
    this.#options.logger.debug({ argv: request.argv, exitCode: result.exitCode, ms: Math.round((performance.now() - started) * 100) / 100 }, 'request served');
    // After a start and a delete this process compiled what it serves: worth a runtime code cache (code-cache.cts).
    if (result.exitCode === 0 && request.argv.includes('delete')) {
      saveCodeCacheSoon((err: unknown) => {
        this.#options.logger.debug({ err }, 'could not write the runtime code cache');
      });
    }
    return result;
  }

  /** The same check as the daemon's: only our own uid (ttrpc UnixSocketRequireSameUser). */
  #peerAllowed(socket: Socket): boolean {
    // Node keeps the fd on the socket's private handle; it is stable across Node 20.
    const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
    if (fd === undefined || fd < 0) return false;
    try {
      const peer = this.#options.native.peerCredentials(fd);
      if (peer.uid === this.#uid) return true;
      this.#options.logger.warn({ peerPid: peer.pid, peerUid: peer.uid }, 'refused a launcher of another user');
    } catch (err) {
      this.#options.logger.warn({ err }, 'cannot read the launcher peer credentials: refused');
    }
    return false;
  }

  /**
   * Watches the containerd this manager serves (the parent of a launcher that passed our
   * `-address`), so the manager does not outlive it: a new containerd starts a new manager.
   */
  #watchContainerd(request: LauncherRequest): void {
    if (this.#watchingContainerd || this.#options.address === '' || request.parentPid <= 1) return;
    let address: string;
    try {
      address = parseFlags(request.argv).flags.address;
    } catch {
      return;
    }
    if (address !== this.#options.address) return;
    this.#watchingContainerd = true;
    const { native, logger } = this.#options;
    let pidfd: number;
    try {
      pidfd = native.pidfdOpen(request.parentPid);
    } catch (err) {
      logger.info({ err, containerdPid: request.parentPid }, 'containerd is already gone: exiting when idle');
      this.#drain();
      return;
    }
    const watcher = native.watchReadable(pidfd, () => {
      logger.info({ containerdPid: request.parentPid }, 'containerd exited: exiting when idle');
      this.#unwatchContainerd();
      this.#drain();
    });
    this.#containerd = { pidfd, watcher };
  }

  #unwatchContainerd(): void {
    const watched = this.#containerd;
    this.#containerd = undefined;
    if (watched === undefined) return;
    watched.watcher.close();
    this.#options.native.close(watched.pidfd);
  }

  #drain(): void {
    this.#draining = true;
    this.#armIdle();
  }

  #disarmIdle(): void {
    if (this.#idleTimer !== undefined) clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
  }

  #armIdle(): void {
    this.#disarmIdle();
    if (this.#inflight > 0 || this.#stopping) return;
    this.#idleTimer = setTimeout(
      () => {
        this.#stop(this.#draining ? 'containerd-exited' : 'idle');
      },
      this.#draining ? 0 : this.#options.idleMs,
    );
  }

  #stop(reason: ManagerStop): void {
    if (this.#stopping) return;
    this.#stopping = true;
    this.#options.onStopping?.(reason);
    this.#disarmIdle();
    this.#unwatchContainerd();
    // Unlink before closing, and only our own socket: a manager that replaced ours must keep its.
    try {
      if (statSync(this.#options.socketPath).ino === this.#socketInode) unlinkSync(this.#options.socketPath);
    } catch {
      // Already gone.
    }
    this.spares?.close();
    const listened = this.#listened;
    this.#server.close();
    // Never listened (listen failed): the fd is still ours.
    if (!listened) this.#options.native.close(this.#listenFd);
    this.#monitor.close();
    this.#options.logger.info({ reason }, 'manager stopping');
    this.#resolveStopped?.(reason);
  }
}
