/**
 * How `start` gets a new group daemon running on the group's listening socket: the
 * seam between the one-shot CLI, which spawns a fresh Node daemon, and the manager,
 * which hands the socket to a pre-booted spare (spare.ts) so that no container waits
 * for Node to boot (DESIGN.md section 2, point 2).
 *
 * Whatever the implementation, the daemon runs in its own session with /dev/null on
 * fds 0-2 (containerd waits for EOF on the `start` process's stdout and stderr), the
 * listening socket as its serving socket, containerd's environment, and the first
 * container's bundle as cwd. `start` then applies ShimCgroup and oom_score_adj to its
 * pid, the same way for every implementation.
 */
import type { Native } from '../native/facade.js';
import { environmentEntries } from './launcher-protocol.js';

/** How to start a group daemon: the executable and the argv that precede the shim flags. */
export interface DaemonCommand {
  readonly file: string;
  readonly args: readonly string[];
}

/** The daemon's command-line flags (what containerd gave `start`, minus the action). */
export interface DaemonFlags {
  readonly namespace: string;
  readonly id: string;
  /** containerd's gRPC socket (`-address`). */
  readonly address: string;
  readonly publishBinary: string;
  readonly debug: boolean;
}

/** Everything a new group daemon needs. */
export interface DaemonSpec {
  /** The group's listening socket. The launcher never closes it: `start` does, after launch. */
  readonly listenFd: number;
  readonly flags: DaemonFlags;
  /** containerd's environment for the shim, `KEY=value` each. */
  readonly env: readonly string[];
  /** The first container's bundle: the daemon's cwd. */
  readonly cwd: string;
}

/** A daemon that was just launched. */
export interface LaunchedDaemon {
  readonly pid: number;
  /** SIGKILLs it, when `start` must abandon it (its ShimCgroup cannot be joined). Never throws. */
  kill(): void;
  /** Drops our handle on it (its pidfd); it runs on. Call exactly once, after the last {@link kill}. */
  release(): void;
}

/** Starts group daemons. */
export interface DaemonLauncher {
  /**
   * Starts a daemon serving `spec.listenFd`; resolves once it was started (a spawned
   * daemon may still be booting: containerd's first dial waits in the socket's backlog).
   * @throws the native spawn error (e.g. ENOENT for the node binary, or the chdir error).
   */
  launch(spec: DaemonSpec): Promise<LaunchedDaemon>;
}

/** The daemon's argv flags, in the order containerd's Go shim re-executes itself with. */
export function daemonArgs(flags: DaemonFlags): string[] {
  const args = ['-namespace', flags.namespace, '-id', flags.id, '-address', flags.address];
  if (flags.publishBinary !== '') args.push('-publish-binary', flags.publishBinary);
  if (flags.debug) args.push('-debug');
  return args;
}

/**
 * containerd's environment as a daemon or spare gets it, `KEY=value` each: all of it but
 * Node's own variables (NODE_*), as the launcher leaves them out of the Nodes it execs
 * (launcher.c exec_node). They configure Node, not tsrun: NODE_EXTRA_CA_CERTS is parsed
 * at every boot (an empty `node -e 0` here: 76 ms with Debian's 225 KB bundle, 27 ms
 * without; no tsrun process makes a TLS connection), NODE_OPTIONS may load code or open an
 * inspector port in every daemon. runc and the hooks it runs get their environment from
 * the daemon (hooks from the OCI spec): none of them reads NODE_*.
 */
export function daemonEnvironment(env: Readonly<Record<string, string | undefined>>): string[] {
  return environmentEntries(env).filter((entry) => !entry.startsWith('NODE_'));
}

/**
 * The spawn options of a fresh daemon: `command` plus the flags, in a new session,
 * with /dev/null on 0-2 and the listening socket on fd 3.
 */
export function daemonSpawnOptions(command: DaemonCommand, spec: DaemonSpec): { file: string; args: string[]; env: readonly string[]; cwd: string; fds: number[]; setsid: true } {
  return { file: command.file, args: [...command.args, ...daemonArgs(spec.flags)], env: spec.env, cwd: spec.cwd, fds: [-1, -1, -1, spec.listenFd], setsid: true };
}

/**
 * The launcher of the one-shot CLI: spawns `command` as the daemon. The CLI exits right
 * after `start`, so the daemon reparents to init (or a subreaper) which reaps it; we
 * only keep its pidfd until {@link LaunchedDaemon.release}.
 */
export function createSpawnLauncher(native: Native, command: DaemonCommand): DaemonLauncher {
  return {
    launch(spec) {
      const child = native.spawn(daemonSpawnOptions(command, spec));
      let open = true;
      return Promise.resolve({
        pid: child.pid,
        kill() {
          if (!open) return;
          try {
            native.pidfdSendSignal(child.pidfd, 9);
          } catch {
            // Already gone.
          }
        },
        release() {
          if (!open) return;
          open = false;
          native.close(child.pidfd);
        },
      });
    },
  };
}
