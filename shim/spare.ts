/**
 * Spare daemons: a Node process booted ahead of need, which becomes a new group's
 * daemon the moment `start` hands it the group's listening socket, so that a new
 * group does not wait for Node to boot (issue 7; DESIGN.md section 2, point 2).
 *
 * The manager spawns `node entry.cjs -spare -address <a>` in a new session with /dev/null
 * on fds 0-2 and one end of a socketpair as fd 3: the spare's control channel. (The
 * manager's first spare is forked the same way by the launcher, beside the manager, so
 * that both boot at once: native/launcher/PROTOCOL.md.) Over the channel travel
 * newline-terminated JSON messages:
 *
 *   spare -> manager  {"kind":"ready"}                 booted: modules loaded, first steps rehearsed
 *   manager -> spare  {"kind":"adopt","args":[...],"env":[...],"cwd":"<bundle>"}
 *                     with the group's listening socket attached (SCM_RIGHTS)
 *   spare -> manager  {"kind":"serving"}               the Task API is served on it
 *                  or {"kind":"failed","error":"..."}  it could not (the manager spawns a daemon instead)
 *
 * `args` are the daemon flags a spawned daemon would get (daemonArgs), `env` is
 * containerd's environment for the shim, `cwd` the first container's bundle. The spare
 * chdirs there, takes that environment as its own, and runs exactly the daemon code a
 * spawned daemon runs (runDaemon), on the received socket. After "serving" both sides
 * close the channel: from then on the spare is an ordinary group daemon and the manager
 * only reaps it (it is the manager's child). An idle spare exits when its channel reaches
 * end of file, so a manager's death (even SIGKILL) takes its idle spare along and
 * never a daemon.
 *
 * Cost control on a small box: a spare boots niced (spare-pool.ts, bootNice) and its
 * replacement starts a little after an adoption (replaceDelayMs), so that booting it does
 * not slow the container being started; before reporting ready it rehearses the daemon's
 * first steps once, so that the adoption and the group's first Task calls run warm.
 *
 * Files: this one is the spare's side; spare-pool.ts the manager's; spare-channel.ts the
 * channel both speak.
 */
import { unlinkSync } from 'node:fs';
import { getPriority, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRuntime } from '../core/index.js';
import type { Native } from '../native/facade.js';
import { connect, createServer, createServiceClient, implement } from '../ttrpc/index.js';
import { runDaemon } from './daemon.js';
import { FlagError, parseFlags } from './flags.js';
import { environmentOf } from './launcher-protocol.js';
import { createLogger } from './log.js';
import { Channel, type SpareMessage } from './spare-channel.js';
import { restoreNormalPriority } from './spare-pool.js';
import { createTaskService, TaskService } from './task-service.js';

/**
 * Runs a spare: reports ready on `channelFd`, waits to be adopted, then runs as that
 * group's daemon. Resolves with the process exit code: 0 when the manager went away
 * before adopting it (end of file), the daemon's code after an adoption, 1 when the
 * adoption failed (reported to the manager, which spawns a daemon instead).
 */
export async function runSpare(native: Native, channelFd = 3): Promise<number> {
  await rehearse(native);
  type Adoption = { readonly message: Extract<SpareMessage, { kind: 'adopt' }>; readonly fds: number[] };
  let settle: ((adoption: Adoption | undefined) => void) | undefined;
  const adopted = new Promise<Adoption | undefined>((resolve) => {
    settle = resolve;
  });
  const channel = new Channel(
    native,
    channelFd,
    (message, fds) => {
      if (message.kind === 'adopt') {
        settle?.({ message, fds });
        return;
      }
      for (const fd of fds) native.close(fd);
    },
    () => {
      settle?.(undefined);
    },
  );
  try {
    channel.send({ kind: 'ready' });
  } catch {
    channel.close();
    return 0;
  }
  const adoption = await adopted;
  if (adoption === undefined) return 0;

  // A spare boots at a low priority (see SparePoolOptions.bootNice); a daemon runs at the normal one.
  if (getPriority() > 0) restoreNormalPriority(process.pid);
  const [listenFd, ...extra] = adoption.fds;
  for (const fd of extra) native.close(fd);
  const fail = (error: string): number => {
    if (listenFd !== undefined) native.close(listenFd);
    try {
      channel.send({ kind: 'failed', error });
    } catch {
      // The manager is gone: it will not wait for us.
    }
    channel.close();
    return 1;
  };
  if (listenFd === undefined) return fail('the adopt message carried no listening socket');
  let cmd;
  try {
    cmd = parseFlags(adoption.message.args);
    process.chdir(adoption.message.cwd);
  } catch (error) {
    return fail(error instanceof FlagError ? `bad daemon flags: ${error.message}` : `cannot enter the bundle ${adoption.message.cwd}: ${messageOf(error)}`);
  }
  adoptEnvironment(adoption.message.env);

  const progress = { serving: false };
  try {
    return await runDaemon(cmd, native, process.env, {
      fd: listenFd,
      onServing: () => {
        progress.serving = true;
        try {
          channel.send({ kind: 'serving' });
        } catch {
          // The manager is gone; we serve all the same.
        }
        channel.close();
      },
    });
  } catch (error) {
    if (!progress.serving) return fail(`the daemon did not start: ${messageOf(error)}`);
    throw error;
  }
}

/**
 * Runs, once, the code a new daemon runs first, while nobody waits for it: a logger, a
 * runtime, the Task service behind a ttrpc server on a throwaway socket, and a client's
 * calls to it (Connect, and State of a task that does not exist). V8 compiles functions
 * on their first call and Node sets up `net` internals on the first server; done here,
 * an adoption takes about 2 ms instead of 10 on this 2-core box, and the first Task calls
 * of the group start warm. Never throws: a failed rehearsal only costs that time back.
 */
async function rehearse(native: Native): Promise<void> {
  const path = join(tmpdir(), `tsrun-spare-${process.pid}.sock`);
  const logger = createLogger('info', { write: () => undefined, attach: () => undefined, dropped: 0 }, { rehearsal: true });
  logger.info({ pid: process.pid }, 'rehearsal');
  let runtime: ReturnType<typeof createRuntime> | undefined;
  let server: ReturnType<typeof createServer> | undefined;
  try {
    runtime = createRuntime({ native, namespace: 'tsrun-rehearsal', logger });
    const service = createTaskService({ runtime, namespace: 'tsrun-rehearsal', logger, onShutdown: () => undefined });
    server = createServer({ checkPeer: () => true });
    server.register('containerd.task.v2.Task', implement(TaskService, service));
    const fd = native.listenUnix(path, 1);
    await server.listen({ fd });
    const client = await connect(path);
    // The socket file is only needed to connect; leave nothing in the shim's TMPDIR.
    unlinkSync(path);
    try {
      const task = createServiceClient(client, 'containerd.task.v2.Task', TaskService);
      await task.Connect({ id: '' }, { timeoutMs: 5000 });
      await task.State({ id: 'rehearsal', execId: '' }, { timeoutMs: 5000 }).catch(() => undefined);
    } finally {
      await client.close();
    }
  } catch {
    // Only an optimisation.
  } finally {
    try {
      unlinkSync(path);
    } catch {
      // Removed above, or never made.
    }
    await server?.shutdown().catch(() => undefined);
    await runtime?.close().catch(() => undefined);
  }
}

/** Replaces this process's environment with containerd's, as a spawned daemon would have it. */
function adoptEnvironment(entries: readonly string[]): void {
  const env = environmentOf(entries);
  for (const key of Object.keys(process.env)) {
    if (!(key in env)) Reflect.deleteProperty(process.env, key);
  }
  Object.assign(process.env, env);
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
