/**
 * The `start` action: find or start the daemon of the container's group and print
 * its address (facts section 2.4; containerd's runc shim manager Start).
 *
 * 1. Group key from the bundle's annotations, else the configured policy.
 * 2. Socket `unix:///run/containerd/s/<sha256(address/namespace/group)>`, root-only.
 * 3. Bind it. If it is taken and answers, the group's daemon is alive: reuse it.
 *    If it is taken but dead (a daemon that was killed), remove it and bind again.
 * 4. Spawn the daemon detached (new session) with the listening socket as fd 3 and
 *    /dev/null on 0-2: containerd waits for EOF on the start process's stdout and
 *    stderr, so the daemon must never hold them.
 * 5. The daemon joins runc Options' ShimCgroup when set; oom_score_adj of the daemon = containerd's + 1; write `<bundle>/address`;
 *    print the address (plain for containerd < 2.3, a BootstrapResult for 2.3+).
 *
 * Race left as the Go shim leaves it: a start that finds a live daemon in the
 * instant that daemon decides to exit (Shutdown with no task left) hands
 * containerd an address that stops answering; containerd then fails that Create
 * and the next start binds a fresh socket.
 */
import { chmodSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import { containerd } from '../protos/index.js';
import { answer, failure, type ActionContext, type ActionRequest, type ActionResult } from './action.js';
import { BundleError, readAnnotations, writeAddress, writeSettings } from './bundle.js';
import type { ShimCommandLine } from './flags.js';
import { defaultSocketDir, groupKey, socketAddress, socketPath } from './group.js';
import { decodeStartInput, type StartInput } from './options.js';
import { SettingsError } from './settings.js';
import { moveToShimCgroup } from './shim-cgroup.js';

/** How long a dial may take to prove a group daemon is alive (the Go shim uses 100 ms). */
const aliveDialTimeoutMs = 100;
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

  let listenFd: number;
  try {
    const bound = await bindOrReuse(context, path);
    if (bound === 'reuse') return finish(bundle, address, input, '');
    listenFd = bound;
  } catch (error) {
    return failure(`tsrun start ${id}: cannot listen on ${path}: ${errorText(error)}`);
  }

  let warning = '';
  try {
    const args = [...context.daemon.args, '-namespace', namespace, '-id', id, '-address', containerdAddress];
    if (cmd.flags.publishBinary !== '') args.push('-publish-binary', cmd.flags.publishBinary);
    if (cmd.flags.debug) args.push('-debug');
    const env = Object.entries(request.env).flatMap(([k, v]) => (v === undefined ? [] : [`${k}=${v}`]));
    const daemon = context.native.spawn({ file: context.daemon.file, args, env, cwd: bundle, fds: [-1, -1, -1, listenFd], setsid: true });
    try {
      if (input.settings.shimCgroup !== '') moveToShimCgroup(daemon.pid, input.settings.shimCgroup);
    } catch (error) {
      context.native.pidfdSendSignal(daemon.pidfd, 9);
      throw error;
    } finally {
      // The daemon outlives us: we never wait for it (it reparents to init or a subreaper).
      context.native.close(daemon.pidfd);
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
  return finish(bundle, address, input, warning);
}

function finish(bundle: string, address: string, input: StartInput, stderr: string): ActionResult {
  writeAddress(bundle, address);
  if (input.bootstrap === undefined) return answer(address, stderr);
  const result = containerd.runtime.bootstrap.v1.BootstrapResult.encode({ version: 3, address, protocol: 'ttrpc' }).finish();
  return answer(result, stderr);
}

/** Binds the group socket, or reports that a live daemon already serves it. */
async function bindOrReuse(context: ActionContext, path: string): Promise<number | 'reuse'> {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  for (let attempt = 0; ; attempt++) {
    try {
      const fd = context.native.listenUnix(path, listenBacklog);
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

function isAlive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(path);
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(false);
    }, aliveDialTimeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => {
      clearTimeout(timer);
      resolve(false);
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
