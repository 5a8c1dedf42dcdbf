/**
 * The group daemon: the long-lived shim process of one group (DESIGN.md section 2).
 *
 * `start` spawned it in a new session, with the group's listening socket on fd 3,
 * /dev/null on 0-2 and the first container's bundle as cwd (or a pre-booted spare
 * became it, receiving the socket over its control channel: spare.ts). It:
 * - becomes the child subreaper (every container process reparents to it, and the
 *   core's one reaper collects every exit: no child_process here);
 * - points fd 2 at the bundle's `log` fifo and logs there with pino;
 * - serves the Task API on the listening socket under containerd.task.v2.Task and
 *   v3.Task, refusing peers of another uid;
 * - marks each cleanly deleted task's bundle, so containerd's `delete` answers at once
 *   (deleted-marker.ts);
 * - forwards the core's events to containerd through one ordered publisher;
 * - exits once Shutdown found no container left, or gracefully on SIGTERM/SIGINT
 *   (containers keep running: they are not ours to kill); SIGUSR1 writes a
 *   diagnostic report to the log.
 */
import { readFileSync, statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { Socket } from 'node:net';
import { createRuntime, type Runtime } from '../core/index.js';
import type { Native } from '../native/facade.js';
import { timestampFromDate } from '../protos/index.js';
import { createServer, implement } from '../ttrpc/index.js';
import { readSettings } from './bundle.js';
import { recordCleanDeletes } from './deleted-marker.js';
import { socketPath } from './group.js';
import type { ShimCommandLine } from './flags.js';
import { createLogger, createLogSink } from './log.js';
import { createPublisher, type Publisher } from './publisher.js';
import { createTaskService, TaskService, taskServiceNames } from './task-service.js';
import { createCallTimings } from './timings.js';
import { runtimeName, version } from './version.js';

/** Bound on draining queued events when the daemon exits. */
const publisherDrainMs = 5000;

/** How the daemon gets its listening socket. */
export interface DaemonListen {
  /** The group's listening socket (3 when spawned by `start`); the daemon owns it. */
  readonly fd: number;
  /** Called once the Task API is served on it (a spare reports its adoption then). */
  readonly onServing?: () => void;
}

/** Runs the daemon until it decides to exit; resolves with the exit code. */
export async function runDaemon(cmd: ShimCommandLine, native: Native, env: NodeJS.ProcessEnv, listen: DaemonListen = { fd: 3 }): Promise<number> {
  const { namespace, id } = cmd.flags;
  const bundle = process.cwd();
  const settings = readSettings(bundle);
  // Read now: containerd removes this bundle when its container is deleted.
  const socket = createSocketRecord();
  socket.record(bundle);
  const logSink = createLogSink(2, { native, attached: false });
  logSink.attach(bundle);
  const logger = createLogger(cmd.flags.debug ? 'debug' : settings.logLevel, logSink, { runtime: runtimeName, namespace, group: id });

  native.setChildSubreaper();
  const runtime = createRuntime({ native, namespace, logger });
  const ttrpcAddress = env['TTRPC_ADDRESS'] ?? '';
  if (ttrpcAddress === '') logger.warn({}, 'TTRPC_ADDRESS is not set: events cannot reach containerd');
  const publisher = createPublisher({ address: ttrpcAddress, namespace, logger });
  forwardEvents(runtime, publisher);
  recordCleanDeletes(runtime, logger);
  // A group daemon's first bundle (whose fifo fd 2 writes to) may be gone: follow the newest container.
  runtime.on('task-create', (e) => {
    logSink.attach(e.bundle);
    socket.record(e.bundle);
  });

  const timings = createCallTimings();
  let exitLogged = false;
  /** The daemon's last info line, with its per-call timings; logged once, while containerd still reads. */
  const logExit = (): void => {
    if (exitLogged) return;
    exitLogged = true;
    logger.info({ timings: timings.summary(), droppedLogLines: logSink.dropped }, 'daemon exiting');
  };
  let exitRequested: ((code: number) => void) | undefined;
  const exited = new Promise<number>((resolve) => {
    exitRequested = resolve;
  });

  const service = createTaskService({
    runtime,
    namespace,
    logger,
    onShutdown: () => {
      logger.info({}, 'shutdown: no container left');
      // The last line goes out before the Shutdown answer: once containerd has it, it
      // runs `delete` and removes the bundle, and nobody reads this log fifo any more.
      logExit();
      // Let the Shutdown response go out first.
      setImmediate(() => exitRequested?.(0));
    },
    onTiming: (method, ms, runtimeMs) => {
      timings.record(method, ms, runtimeMs);
    },
  });
  const uid = process.getuid?.() ?? 0;
  const server = createServer({ checkPeer: (socket) => peerIsUid(native, socket, uid, logger) });
  const methods = implement(TaskService, service);
  for (const name of taskServiceNames) server.register(name, methods);
  await server.listen({ fd: listen.fd });
  logger.info({ version, node: process.version }, 'daemon serving');
  listen.onServing?.();

  const onTerm = (signal: NodeJS.Signals): void => {
    logger.info({ signal }, 'signal: exiting gracefully');
    logExit();
    exitRequested?.(0);
  };
  process.on('SIGTERM', onTerm);
  process.on('SIGINT', onTerm);
  process.on('SIGUSR1', () => {
    logger.info({ report: process.report.getReport(), timings: timings.summary() }, 'diagnostic report');
  });
  process.on('SIGPIPE', () => {
    // A log fifo or a stdio fifo lost its reader: nothing to do, writes report EPIPE.
  });

  const code = await exited;
  // Unlink first: a `start` that dials the socket from now on binds a new daemon
  // instead of handing containerd one that is going away.
  socket.removeIfOurs();
  await server.shutdown();
  await publisher.close(publisherDrainMs);
  await runtime.close();
  logger.debug({ droppedLogLines: logSink.dropped }, 'daemon exited');
  return code;
}

/** Publishes every core event, in the order the core emits them. */
function forwardEvents(runtime: Runtime, publisher: Publisher): void {
  runtime.on('task-create', (e) => {
    publisher.publish({
      topic: '/tasks/create',
      typeUrl: 'containerd.events.TaskCreate',
      message: {
        containerId: e.containerId,
        bundle: e.bundle,
        rootfs: e.rootfs.map((m) => ({ type: m.type, source: m.source, target: m.target, options: [...m.options] })),
        io: { stdin: e.stdio.stdin, stdout: e.stdio.stdout, stderr: e.stdio.stderr, terminal: e.stdio.terminal },
        checkpoint: e.checkpoint,
        pid: e.pid,
      },
    });
  });
  runtime.on('task-start', (e) => {
    publisher.publish({ topic: '/tasks/start', typeUrl: 'containerd.events.TaskStart', message: { containerId: e.containerId, pid: e.pid } });
  });
  runtime.on('task-exit', (e) => {
    publisher.publish({
      topic: '/tasks/exit',
      typeUrl: 'containerd.events.TaskExit',
      message: { containerId: e.containerId, id: e.id, pid: e.pid, exitStatus: e.exitStatus, exitedAt: timestampFromDate(e.exitedAt) },
    });
  });
  runtime.on('task-delete', (e) => {
    publisher.publish({
      topic: '/tasks/delete',
      typeUrl: 'containerd.events.TaskDelete',
      message: { containerId: e.containerId, id: e.id, pid: e.pid, exitStatus: e.exitStatus, exitedAt: timestampFromDate(e.exitedAt) },
    });
  });
  runtime.on('exec-added', (e) => {
    publisher.publish({ topic: '/tasks/exec-added', typeUrl: 'containerd.events.TaskExecAdded', message: { containerId: e.containerId, execId: e.execId } });
  });
  runtime.on('exec-started', (e) => {
    publisher.publish({
      topic: '/tasks/exec-started',
      typeUrl: 'containerd.events.TaskExecStarted',
      message: { containerId: e.containerId, execId: e.execId, pid: e.pid },
    });
  });
  runtime.on('task-oom', (e) => {
    publisher.publish({ topic: '/tasks/oom', typeUrl: 'containerd.events.TaskOOM', message: { containerId: e.containerId } });
  });
  runtime.on('task-paused', (e) => {
    publisher.publish({ topic: '/tasks/paused', typeUrl: 'containerd.events.TaskPaused', message: { containerId: e.containerId } });
  });
  runtime.on('task-resumed', (e) => {
    publisher.publish({ topic: '/tasks/resumed', typeUrl: 'containerd.events.TaskResumed', message: { containerId: e.containerId } });
  });
  runtime.on('task-checkpointed', (e) => {
    publisher.publish({
      topic: '/tasks/checkpointed',
      typeUrl: 'containerd.events.TaskCheckpointed',
      message: { containerId: e.containerId, checkpoint: e.checkpoint },
    });
  });
}

/** The peer check of every connection: the same uid as ours (ttrpc UnixSocketRequireSameUser). */
function peerIsUid(native: Native, socket: Socket, uid: number, logger: { warn(obj: object, msg?: string): void }): boolean {
  // Node keeps the fd on the socket's private handle; it is stable across Node 20.
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (fd === undefined || fd < 0) return false;
  const peer = native.peerCredentials(fd);
  if (peer.uid === uid) return true;
  logger.warn({ peerPid: peer.pid, peerUid: peer.uid }, 'refused a connection from another user');
  return false;
}

/**
 * The group socket this daemon serves, so it can remove it on exit (as the Go shim
 * does) without ever removing a socket that another daemon bound at the same path
 * since (a start that found this daemon dead replaced it). The path comes from a
 * bundle's `address` file: at boot when `start` wrote it already, else at the first
 * Create (containerd calls Create only after it read start's answer). The socket is
 * ours while the path still names the inode it had then.
 */
function createSocketRecord(): { record(bundle: string): void; removeIfOurs(): void } {
  let own: { readonly path: string; readonly ino: number } | undefined;
  return {
    record(bundle) {
      if (own !== undefined) return;
      try {
        const path = socketPath(readFileSync(join(bundle, 'address'), 'utf8').trim());
        own = { path, ino: statSync(path).ino };
      } catch {
        // Not written yet: the next Create records it.
      }
    },
    removeIfOurs() {
      if (own === undefined) return;
      try {
        if (statSync(own.path).ino === own.ino) unlinkSync(own.path);
      } catch {
        // Already removed.
      }
    },
  };
}
