/**
 * The `start` action: find or start the daemon of the container's group and print
 * its address (facts section 2.4; containerd's runc shim manager Start).
 *
 * 1. Group key from the bundle's annotations, else the configured policy.
 * 2. Socket `unix:///run/containerd/s/<sha256(address/namespace/group)>`, root-only.
 * 3. Bind it. If it is taken and answers, the group's daemon is alive: reuse it.
 *    If it is taken but dead (a daemon that was killed), remove it and bind again.
 * 4. Launch the daemon detached (new session) with the listening socket as fd 3 and
 *    /dev/null on 0-2: containerd waits for EOF on the start process's stdout and
 *    stderr, so the daemon must never hold them. The context's launcher spawns a
 *    fresh daemon (CLI) or hands the socket to a pre-booted spare (manager).
 * 5. The daemon joins runc Options' ShimCgroup when set; oom_score_adj of the daemon = containerd's + 1; write `<bundle>/address`;
 *    print the address (plain for containerd < 2.3, a BootstrapResult for 2.3+).
 *
 * Race left as the Go shim leaves it: a start that finds a live daemon in the
 * instant that daemon decides to exit (Shutdown with no task left) hands
 * containerd an address that stops answering; containerd then fails that Create
 * and the next start binds a fresh socket.
 */
import { chmodSync, mkdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import type { Native } from '../native/facade.js';
import { containerd } from '../protos/index.js';
import { answer, failure, type ActionContext, type ActionRequest, type ActionResult } from './action.js';
import { BundleError, readAnnotations, writeAddress, writeSettings } from './bundle.js';
import { daemonEnvironment } from './daemon-launcher.js';
import { deletedMarkerPath } from './deleted-marker.js';
import type { ShimCommandLine } from './flags.js';
import { defaultSocketDir, groupKey, socketAddress, socketPath } from './group.js';
import { decodeStartInput, type StartInput } from './options.js';
import { SettingsError } from './settings.js';
import { moveToShimCgroup } from './shim-cgroup.js';

/** Bound on a dial that neither connects nor fails (the kernel decides a unix connect at once). */
const aliveDialBoundMs = 2000;
/** Backlog of the group socket: containerd may connect before the daemon has booted. */
const listenBacklog = 1024;

/** Runs `start`. Never throws: failures come back as an exit code and a sentence. */
export async function start(cmd: ShimCommandLine, request: ActionRequest, context: ActionContext): Promise<ActionResult> {
  const { id, namespace, address: containerdAddress } = cmd.flags;
  if (id === '' || namespace === '' || containerdAddress === '') {
    return failure('start needs -id, -namespace and -address (containerd passes them): run it through containerd');
  }
  const bundle = request.cwd;
  let annotations: Record<string, string>;
  let input: StartInput;
  try {
    annotations = readAnnotations(bundle);
    input = decodeStartInput(request.stdin, id, namespace);
  } catch (error) {
    if (error instanceof BundleError || error instanceof SettingsError) return failure(`tsrun start ${id}: ${error.message}`);
    throw error;
  }

  const group = groupKey(id, namespace, annotations, input.settings.groupPolicy);
  const socketDir = input.bootstrap !== undefined && input.bootstrap.socketDir !== '' ? input.bootstrap.socketDir : defaultSocketDir;
  const address = socketAddress(containerdAddress, namespace, group, socketDir);
  const path = socketPath(address);
  writeSettings(bundle, input.settings);
  // A marker left by an earlier task of this bundle path must not answer this one's delete.
  rmSync(deletedMarkerPath(bundle), { force: true });

  let listenFd: number;
  try {
    const bound = await bindOrReuse(context.native, path, listenBacklog);
    if (bound === 'reuse') {
      writeAddress(bundle, address);
      return finish(address, input, '');
    }
    listenFd = bound;
  } catch (error) {
    return failure(`tsrun start ${id}: cannot listen on ${path}: ${errorText(error)}`);
  }

  let warning = '';
  try {
    // Before the launch: the daemon reads it when it starts (to remove its socket when it
    // exits), and a pre-booted spare starts at once.
    writeAddress(bundle, address);
    const env = daemonEnvironment(request.env);
    const flags = { namespace, id, address: containerdAddress, publishBinary: cmd.flags.publishBinary, debug: cmd.flags.debug };
    const daemon = await context.launcher.launch({ listenFd, flags, env, cwd: bundle });
    try {
      if (input.settings.shimCgroup !== '') moveToShimCgroup(daemon.pid, input.settings.shimCgroup);
    } catch (error) {
      daemon.kill();
      throw error;
    } finally {
      // The daemon outlives us: we never wait for it here.
      daemon.release();
    }
    warning = adjustOomScore(daemon.pid, request.parentPid);
  } catch (error) {
    try {
      unlinkSync(path);
    } catch {
      // Already gone; nothing else listens on it.
    }
    return failure(`tsrun start ${id}: cannot start the shim daemon: ${errorText(error)}`);
  } finally {
    context.native.close(listenFd);
  }
  return finish(address, input, warning);
}

function finish(address: string, input: StartInput, stderr: string): ActionResult {
  if (input.bootstrap === undefined) return answer(address, stderr);
  const result = containerd.runtime.bootstrap.v1.BootstrapResult.encode({ version: 3, address, protocol: 'ttrpc' }).finish();
  return answer(result, stderr);
}

/**
 * Binds a root-only unix socket at `path` (its directory made 0700 if missing), or
 * reports that a live server already answers there. A socket file nobody serves (its
 * server died) is replaced. The manager binds its control socket the same way.
 * @throws the bind error (not EADDRINUSE of a dead socket, which is handled).
 */
export async function bindOrReuse(native: Native, path: string, backlog: number): Promise<number | 'reuse'> {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  for (let attempt = 0; ; attempt++) {
    try {
      const fd = native.listenUnix(path, backlog);
      chmodSync(path, 0o600);
      return fd;
    } catch (error) {
      if (!isErrno(error, 'EADDRINUSE') || attempt > 0) throw error;
    }
    if (await isAlive(path)) return 'reuse';
    // A socket file nobody serves: the daemon died without removing it.
    try {
      unlinkSync(path);
    } catch (error) {
      if (!isErrno(error, 'ENOENT')) throw error;
    }
  }
}

/**
 * Whether a daemon serves the socket at `path`. A unix connect() is decided by the
 * kernel at once: refused (or no such file) means nobody listens; success, or a
 * full backlog (EAGAIN), means a live daemon. No short timer decides it: on a
 * starved CPU a 100 ms timer fires before the finished connect is handled, and a
 * live daemon would be taken for dead and its group split across two daemons.
 * The long bound only guards against a connect that never completes.
 */
function isAlive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(path);
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(true);
    }, aliveDialBoundMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(true);
    });
    socket.once('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve(error.code === 'EAGAIN');
    });
  });
}

/**
 * Sets the daemon's oom_score_adj one above containerd's, so the kernel kills a
 * shim before containerd (containerd pkg/shim AdjustOOMScore). Raising needs no
 * privilege; a failure is reported on stderr (containerd logs it) but does not
 * fail the start.
 */
function adjustOomScore(daemonPid: number, containerdPid: number): string {
  try {
    const parent = Number.parseInt(readFileSync(`/proc/${containerdPid}/oom_score_adj`, 'utf8').trim(), 10);
    const score = Math.min(Number.isNaN(parent) ? 0 : parent + 1, 1000);
    writeFileSync(`/proc/${daemonPid}/oom_score_adj`, String(score));
    return '';
  } catch (error) {
    return `tsrun: warning: could not set the shim daemon's oom_score_adj: ${errorText(error)}\n`;
  }
}

function isErrno(error: unknown, code: string): boolean {
  return error instanceof Error && (error as NodeJS.ErrnoException).code === code;
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
