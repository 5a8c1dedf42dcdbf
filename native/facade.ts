/**
 * The native facade: the syscalls Node lacks, as plain typed functions.
 *
 * This file is the contract between the addon (native/src/*.cc, loaded by
 * native/index.ts) and its users (core/, shim/). core/ receives a `Native` by
 * injection so its unit tests can run against a fake. No policy lives behind this
 * interface: retries, timeouts and what an errno means are decided by the caller.
 *
 * Errors thrown by every function have Node's errno shape (see {@link NativeError}).
 * Every fd the addon creates is O_CLOEXEC; EINTR is retried inside the addon.
 */

/** An Error with Node's errno shape, like the errors of `node:fs`. */
export interface NativeError extends Error {
  /** Symbolic errno name, e.g. `ESRCH`. */
  readonly code: string;
  /** Negative errno number, as in Node (`-3` for ESRCH). */
  readonly errno: number;
  /** The failing syscall, e.g. `pidfd_send_signal`. */
  readonly syscall: string;
  /** The path involved, when there is one. */
  readonly path?: string;
}

/** How a process ended, as the kernel reported it to waitid(). */
export type WaitStatus =
  | { readonly kind: 'exited'; readonly code: number }
  | { readonly kind: 'signaled'; readonly signal: number; readonly coreDumped: boolean };

/** An exit collected by the orphan sweep. */
export interface ReapedExit {
  readonly pid: number;
  readonly status: WaitStatus;
}

/** What to start, with every detail explicit (no PATH search, no shell). */
export interface SpawnOptions {
  /** Absolute path of the executable. */
  readonly file: string;
  /** The full argv, argv[0] included. */
  readonly args: readonly string[];
  /** The full environment as `KEY=value` strings. */
  readonly env: readonly string[];
  /** Working directory of the child; the parent's when absent. */
  readonly cwd?: string;
  /**
   * The child's fd table: the child's fd `i` is a dup of our fd `fds[i]`; `-1`
   * leaves the child's fd `i` open on /dev/null. Every fd of ours that is not
   * listed is closed in the child.
   */
  readonly fds: readonly number[];
  /** Start the child in a new session (setsid). */
  readonly setsid?: boolean;
  /** Start the child in a new process group (setpgid(0, 0)); ignored with `setsid`. */
  readonly setpgid?: boolean;
}

/**
 * A spawned child, returned atomically with its pidfd (clone3 CLONE_PIDFD): there
 * is no window in which the pid can be reaped or reused before we hold the pidfd.
 */
export interface SpawnedProcess {
  readonly pid: number;
  /** A pidfd for the child (O_CLOEXEC, non-blocking). The caller closes it. */
  readonly pidfd: number;
}

/** Credentials of the peer of a connected unix socket (SO_PEERCRED). */
export interface PeerCredentials {
  readonly pid: number;
  readonly uid: number;
  readonly gid: number;
}

/** Bytes and fds received from a unix socket with SCM_RIGHTS. */
export interface ReceivedMessage {
  readonly data: Uint8Array;
  readonly fds: readonly number[];
}

/** A terminal's size. */
export interface WindowSize {
  readonly rows: number;
  readonly cols: number;
}

/**
 * A readiness watcher on an fd (libuv `uv_poll_t` on the environment's loop).
 * The callback runs on the JS thread each time the fd is readable, until closed.
 */
export interface FdWatcher {
  /** Stop watching and release the handle. Idempotent; also runs on environment teardown. */
  close(): void;
}

/**
 * The native syscalls. Exactly-once delivery of exits relies on a split that the
 * addon documents beside its code: children returned by {@link Native.spawn} and
 * pids passed to {@link Native.pidfdOpen} are *tracked* and reaped only by
 * {@link Native.pidfdWait}; {@link Native.reapOrphans} reaps only untracked children.
 */
export interface Native {
  /** prctl(PR_SET_CHILD_SUBREAPER, 1): orphaned descendants reparent to this process. */
  setChildSubreaper(): void;

  /**
   * Starts a program; the only way core/ and shim/ start processes. The child is
   * tracked. When the child fails before running the program, it is reaped and the
   * error of the failing step is thrown: `execve` (e.g. ENOENT, with `path` = file),
   * `chdir` (with `path` = cwd), `setsid`, `dup2`...; `clone` errors (EAGAIN) too.
   * The child shares the open file descriptions of `fds` (and so their O_NONBLOCK).
   */
  spawn(options: SpawnOptions): SpawnedProcess;

  /**
   * pidfd_open(pid) for an existing process, e.g. a container init read from a
   * pid file. If the process is our child, it becomes tracked (see {@link Native}).
   * Throws ESRCH when no such process exists.
   */
  pidfdOpen(pid: number): number;

  /** pidfd_send_signal(): never reaches a recycled pid. Throws ESRCH once the process is gone. */
  pidfdSendSignal(pidfd: number, signal: number): void;

  /**
   * A non-blocking waitid(P_PIDFD, WEXITED | WNOHANG) that reaps the child: the
   * status once it has exited, `undefined` while it runs. Throws ECHILD when the
   * process is not our child (its status cannot be collected by us) or was already
   * reaped. A tracked child must be waited for here until this returns its status:
   * {@link Native.reapOrphans} never takes it, so it would stay a zombie.
   */
  pidfdWait(pidfd: number): WaitStatus | undefined;

  /**
   * Reaps every exited child that is not tracked (reparented grandchildren, a
   * container init whose pid file we have not read yet) and returns their exits.
   * Never takes the status of a tracked child. Call it on every
   * `process.on('SIGCHLD')` (signals coalesce; one call takes every zombie there is)
   * and once right after subscribing. Never mix with `child_process` in one process.
   */
  reapOrphans(): ReapedExit[];

  /**
   * Calls `onReadable` each time `fd` becomes readable (a pidfd: when the process exits).
   * Level-triggered: it repeats on every loop turn while the fd stays readable (an
   * exited process's pidfd always is), so close the watcher once done. Makes the fd
   * non-blocking (uv_poll). Close the watcher before the fd. Throws EEXIST when the
   * fd is already watched.
   */
  watchReadable(fd: number, onReadable: () => void): FdWatcher;

  /**
   * sendmsg() with SCM_RIGHTS on a connected unix socket. Sends all of `data` (the fds
   * ride with its first byte, so `data` must not be empty when `fds` is not). Throws
   * EAGAIN when a non-blocking socket takes nothing.
   */
  sendFds(socketFd: number, data: Uint8Array, fds: readonly number[]): void;

  /**
   * recvmsg() with SCM_RIGHTS; received fds are O_CLOEXEC. Throws EAGAIN on a non-blocking
   * socket with nothing to read, and EMSGSIZE (after closing the fds that did arrive) when
   * the message held more than `maxFds` fds or a datagram more than `maxData` bytes. End of
   * stream is empty `data` with no fds.
   */
  receiveFds(socketFd: number, maxData: number, maxFds: number): ReceivedMessage;

  /** SO_PEERCRED of a connected unix socket. */
  peerCredentials(socketFd: number): PeerCredentials;

  /** ioctl(TIOCSWINSZ). */
  setWindowSize(fd: number, size: WindowSize): void;

  /** ioctl(TIOCGWINSZ). */
  getWindowSize(fd: number): WindowSize;

  /** Opens a fifo (or any path) with O_NONBLOCK | O_CLOEXEC and the given access mode. */
  openFifo(path: string, mode: 'read' | 'write' | 'readwrite'): number;

  /** dup2(oldFd, newFd) (dup3 with O_CLOEXEC cleared), e.g. the log fifo onto fd 2. */
  dup2(oldFd: number, newFd: number): void;

  /** close(fd), ignoring EINTR. */
  close(fd: number): void;

  /** eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), for cgroup v1 memory.oom_control notifications. */
  eventfd(): number;

  /** A new pseudo-terminal pair (posix_openpt + unlockpt), both ends O_CLOEXEC; the master is non-blocking. */
  openPty(): { readonly master: number; readonly slave: number; readonly slavePath: string };

  /**
   * mount(2). `flags` are MS_* bits; `data` the filesystem-specific option string. An
   * empty `source`, `fstype` or `data` is passed as NULL (bind mounts, remounts,
   * propagation changes).
   */
  mount(source: string, target: string, fstype: string, flags: number, data: string): void;

  /** umount2(2). `flags` are MNT_* / UMOUNT_* bits (MNT_DETACH = 2). */
  umount2(target: string, flags: number): void;

  /**
   * ioctl(FIONREAD): how many bytes wait to be read. For a pipe or fifo this is the
   * pipe's buffer, through either end, so the holder of any end sees whether the
   * reader has caught up; sockets and terminals answer too. Throws EBADF, and ENOTTY
   * for an fd without such a count (eventfd, pidfd). Added for core/io.
   */
  pendingBytes(fd: number): number;

  /** pipe2(O_CLOEXEC): `[readEnd, writeEnd]`, both blocking (the caller sets O_NONBLOCK where it wants it). Added for core/io. */
  pipe(): readonly [number, number];

  /** socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC): a connected pair, e.g. for fd-passing tests. */
  socketPair(): readonly [number, number];

  /**
   * socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC) + bind(path) + listen(backlog): a
   * listening socket fd that the caller owns. Unlike a Node server, closing the fd
   * never unlinks `path`: the shim's `start` binds the group socket and hands the fd
   * to the daemon (as fd 3), then closes its own copy. Throws EADDRINUSE when the
   * path exists.
   */
  listenUnix(path: string, backlog: number): number;
}
