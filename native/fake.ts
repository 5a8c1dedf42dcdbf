/**
 * An in-memory {@link Native} for unit tests of core/ and shim/: processes that
 * exit when the test says so, pidfds that become readable, watchers that fire on
 * later loop turns, sockets that carry fds, and an fd table to check for leaks.
 * It follows the real addon's rules (tracked children are collected only by
 * pidfdWait, untracked ones only by reapOrphans; errors have Node's errno shape),
 * so code that passes against it has not relied on anything the kernel would refuse.
 * Nothing here touches the system; fds are numbers from 1000 up that no syscall knows.
 */
import { constants as osConstants } from 'node:os';
import { getSystemErrorMap } from 'node:util';
import type {
  FdWatcher,
  Native,
  NativeError,
  PeerCredentials,
  ReapedExit,
  ReceivedMessage,
  SpawnOptions,
  SpawnedProcess,
  WaitStatus,
  WindowSize,
} from './facade.js';

/** A process the fake knows about. */
export interface FakeProcess {
  readonly pid: number;
  /** What spawn() was given; undefined for a process added with {@link FakeNative.addProcess}. */
  readonly options: SpawnOptions | undefined;
  /** Our child (so its status is ours to collect), or a stranger. */
  readonly child: boolean;
  /** running -> exited (a zombie, for a child) -> reaped. A stranger's exit is final. */
  readonly state: 'running' | 'exited' | 'reaped';
  readonly status: WaitStatus | undefined;
  /** Every signal sent to it through a pidfd, in order (0 included). */
  readonly signals: readonly number[];
}

/** One call made to the fake, for assertions on order and arguments. */
export interface FakeCall {
  readonly method: keyof Native;
  readonly args: readonly unknown[];
}

/** A mount made through the fake and not yet unmounted. */
export interface FakeMount {
  readonly source: string;
  readonly target: string;
  readonly fstype: string;
  readonly flags: number;
  readonly data: string;
}

/** Hooks that script the fake's processes. */
export interface FakeNativeOptions {
  /**
   * Runs inside spawn() once the process exists, before spawn returns. Throw (e.g.
   * `nativeError('ENOENT', 'execve', options.file)`) to make spawn fail as a failed
   * exec does: the process vanishes and its pidfd is closed. To play a program,
   * schedule `fake.exit(process.pid, ...)` for later.
   */
  readonly onSpawn?: (process: FakeProcess, fake: FakeNative) => void;
  /**
   * Runs for each pidfdSendSignal to a running process. Default: a signal whose
   * default action terminates makes the process exit `signaled` (no core dump);
   * 0, SIGCHLD, SIGCONT, SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU, SIGURG and SIGWINCH do nothing.
   */
  readonly onSignal?: (process: FakeProcess, signal: number, fake: FakeNative) => void;
  /** Runs on a later turn after a child exits, as SIGCHLD would (e.g. to trigger a reapOrphans sweep). */
  readonly onChildExit?: () => void;
  /** The first pid handed out (default 4000); pids then count up. */
  readonly firstPid?: number;
}

/** The fake: a complete {@link Native} plus controls for the test. */
export interface FakeNative extends Native {
  /** Every process ever known, by pid. */
  readonly processes: ReadonlyMap<number, FakeProcess>;
  /** Every call, in order. */
  readonly calls: readonly FakeCall[];
  /** Mounts in place, by target. */
  readonly mounts: ReadonlyMap<string, FakeMount>;
  /**
   * Paths bound by listenUnix. Like real socket files they outlive the fd; delete one
   * to play an unlink (a second bind of a path still here throws EADDRINUSE).
   */
  readonly socketPaths: Set<string>;
  /** Whether setChildSubreaper() was called. */
  readonly subreaper: boolean;
  /**
   * Makes a running process exit with `status`: its pidfds turn readable (watchers
   * fire on later turns), pidfdWait (tracked) or reapOrphans (untracked) collects
   * it. Throws when the process is unknown or not running.
   */
  exit(pid: number, status: WaitStatus): void;
  /**
   * A running process not started by spawn(): a container init started by the OCI
   * runtime (`child: true`, reparented to the subreaper; untracked until pidfdOpen)
   * or a stranger (`child: false`, the default).
   */
  addProcess(options?: { readonly pid?: number; readonly child?: boolean }): FakeProcess;
  /** Marks an fd readable or not (an eventfd, a pipe): watchers of a readable fd fire every turn, like uv_poll. */
  setReadable(fd: number, readable: boolean): void;
  /**
   * Sets what {@link Native.pendingBytes} reports for `fd`'s buffer: a pipe's two
   * ends share one, as do all fds of one fifo path (one pipe buffer per fifo, as in
   * the kernel); a pty end has its own. Throws for other kinds of fd.
   */
  setPendingBytes(fd: number, count: number): void;
  /** The next call of `method` throws `error` instead of running. Queued: call twice for two failures. */
  failNext(method: keyof Native, error: Error): void;
  /** The fds open in the fake, ascending, for leak checks. */
  openFds(): number[];
  /** Whether a tracked pid (spawned, or pidfdOpen'ed child) is still waiting for pidfdWait. */
  isTracked(pid: number): boolean;
}

/**
 * An Error with Node's errno shape, as the real addon throws: `nativeError('ESRCH',
 * 'pidfd_send_signal')` has message "ESRCH: no such process, pidfd_send_signal",
 * errno -3. Throws a TypeError for a code this platform does not know.
 */
export function nativeError(code: string, syscall: string, path?: string): NativeError {
  const number = (osConstants.errno as Readonly<Record<string, number | undefined>>)[code];
  if (number === undefined) throw new TypeError(`unknown errno code '${code}'`);
  const description = getSystemErrorMap().get(-number)?.[1] ?? DESCRIPTIONS_LIBUV_LACKS[code] ?? 'unknown error';
  const message = `${code}: ${description}, ${syscall}${path === undefined ? '' : ` '${path}'`}`;
  const error = new Error(message) as Error & { errno: number; code: string; syscall: string; path?: string };
  error.errno = -number;
  error.code = code;
  error.syscall = syscall;
  if (path !== undefined) error.path = path;
  return error;
}

const DESCRIPTIONS_LIBUV_LACKS: Readonly<Record<string, string>> = { ECHILD: 'no child processes' };

const IGNORED_BY_DEFAULT = new Set([0, 17, 18, 19, 20, 21, 22, 23, 28]);

interface MutableProcess {
  pid: number;
  options: SpawnOptions | undefined;
  child: boolean;
  state: 'running' | 'exited' | 'reaped';
  status: WaitStatus | undefined;
  signals: number[];
  tracked: boolean;
}

interface Message {
  data: Uint8Array;
  fds: Description[];
}

/** The unread bytes of a pipe (or fifo, or pty end) as pendingBytes reports them; shared like the kernel's buffer. */
interface PipeBuffer {
  pending: number;
}

/** What an fd refers to; dup2 makes two fds share one, as open file descriptions are shared. */
type Description =
  | { kind: 'pidfd'; pid: number }
  | { kind: 'eventfd'; readable: boolean }
  | { kind: 'pipe'; end: 'read' | 'write'; readable: boolean; buffer: PipeBuffer }
  | { kind: 'fifo'; path: string; mode: 'read' | 'write' | 'readwrite'; readable: boolean; buffer: PipeBuffer }
  | { kind: 'socket'; queue: Message[]; peer: SocketEnd | undefined; peerClosed: boolean; readable: boolean }
  | { kind: 'pty'; end: 'master' | 'slave'; size: { rows: number; cols: number }; readable: boolean; buffer: PipeBuffer }
  | { kind: 'listener'; path: string; readable: boolean };

type SocketEnd = Extract<Description, { kind: 'socket' }>;

interface Watcher {
  fd: number;
  onReadable: () => void;
  open: boolean;
}

/** Creates a fresh fake; see {@link FakeNativeOptions} for scripting it. */
export function createFakeNative(options: FakeNativeOptions = {}): FakeNative {
  const processes = new Map<number, MutableProcess>();
  const fds = new Map<number, Description>();
  const watchers: Watcher[] = [];
  const calls: FakeCall[] = [];
  const mounts = new Map<string, FakeMount>();
  const socketPaths = new Set<string>();
  const failures = new Map<keyof Native, Error[]>();
  /** One buffer per fifo path, as the kernel keeps one pipe per fifo inode. */
  const fifoBuffers = new Map<string, PipeBuffer>();
  let nextPid = options.firstPid ?? 4000;
  let nextFd = 1000;
  let subreaper = false;
  let pumpScheduled = false;

  const record = (method: keyof Native, args: readonly unknown[]): void => {
    calls.push({ method, args });
    const queued = failures.get(method);
    const failure = queued?.shift();
    if (failure !== undefined) throw failure;
  };

  const allocate = (description: Description): number => {
    const fd = nextFd++;
    fds.set(fd, description);
    return fd;
  };

  const describe = (fd: number, syscall: string): Description => {
    const description = fds.get(fd);
    if (description === undefined) throw nativeError('EBADF', syscall);
    return description;
  };

  const processOf = (fd: number, syscall: string): MutableProcess => {
    const description = describe(fd, syscall);
    if (description.kind !== 'pidfd') throw nativeError('EINVAL', syscall);
    const process = processes.get(description.pid);
    if (process === undefined) throw new Error(`fake: pidfd ${fd} names unknown pid ${description.pid}`);
    return process;
  };

  const isReadable = (description: Description): boolean => {
    switch (description.kind) {
      case 'pidfd':
        return processes.get(description.pid)?.state !== 'running';
      case 'socket':
        return description.queue.length > 0 || description.peerClosed || description.readable;
      case 'eventfd':
      case 'pipe':
      case 'fifo':
      case 'pty':
      case 'listener':
        return description.readable;
    }
  };

  // Level-triggered like uv_poll: while any watched fd is readable, its watcher
  // fires once per loop turn (setImmediate), never inside the call that made it so.
  const schedulePump = (): void => {
    if (pumpScheduled) return;
    pumpScheduled = true;
    setImmediate(() => {
      pumpScheduled = false;
      for (const watcher of [...watchers]) {
        const description = fds.get(watcher.fd);
        if (!watcher.open || description === undefined || !isReadable(description)) continue;
        watcher.onReadable();
      }
      if (watchers.some((w) => w.open && fds.has(w.fd) && isReadable(fds.get(w.fd) as Description))) schedulePump();
    });
  };

  const exitProcess = (process: MutableProcess, status: WaitStatus): void => {
    process.state = process.child ? 'exited' : 'reaped';
    process.status = status;
    if (process.child && options.onChildExit !== undefined) {
      const onChildExit = options.onChildExit;
      setImmediate(onChildExit);
    }
    schedulePump();
  };

  const newProcess = (pid: number, child: boolean, spawnOptions: SpawnOptions | undefined): MutableProcess => {
    if (processes.has(pid) && processes.get(pid)?.state !== 'reaped') throw new Error(`fake: pid ${pid} is in use`);
    const process: MutableProcess = {
      pid,
      options: spawnOptions,
      child,
      state: 'running',
      status: undefined,
      signals: [],
      tracked: false,
    };
    processes.set(pid, process);
    return process;
  };

  const closeFd = (fd: number): void => {
    const description = fds.get(fd);
    fds.delete(fd);
    if (description?.kind === 'socket' && description.peer !== undefined && ![...fds.values()].includes(description)) {
      description.peer.peerClosed = true;
      schedulePump();
    }
  };

  const fake: FakeNative = {
    get processes() {
      return processes;
    },
    calls,
    mounts,
    socketPaths,
    get subreaper() {
      return subreaper;
    },

    exit(pid, status) {
      const process = processes.get(pid);
      if (process?.state !== 'running') throw new Error(`fake: pid ${pid} is not a running process`);
      exitProcess(process, status);
    },

    addProcess(added = {}) {
      const pid = added.pid ?? nextPid++;
      return newProcess(pid, added.child ?? false, undefined);
    },

    setReadable(fd, readable) {
      const description = describe(fd, 'fake.setReadable');
      if (description.kind === 'pidfd') throw new Error('fake: a pidfd is readable when its process exits; use exit()');
      description.readable = readable;
      if (readable) schedulePump();
    },

    setPendingBytes(fd, count) {
      const description = describe(fd, 'fake.setPendingBytes');
      if (description.kind !== 'pipe' && description.kind !== 'fifo' && description.kind !== 'pty')
        throw new Error(`fake: fd ${fd} is a ${description.kind}, which has no pipe buffer`);
      description.buffer.pending = count;
    },

    failNext(method, error) {
      const queued = failures.get(method) ?? [];
      queued.push(error);
      failures.set(method, queued);
    },

    openFds() {
      return [...fds.keys()].sort((a, b) => a - b);
    },

    isTracked(pid) {
      return processes.get(pid)?.tracked ?? false;
    },

    setChildSubreaper() {
      record('setChildSubreaper', []);
      subreaper = true;
    },

    spawn(spawnOptions): SpawnedProcess {
      record('spawn', [spawnOptions]);
      if (!spawnOptions.file.startsWith('/'))
        throw new TypeError(`The "options.file" property must be an absolute path; received '${spawnOptions.file}'`);
      if (spawnOptions.args.length === 0) throw new TypeError('The "options.args" property must hold at least argv[0]');
      for (const fd of spawnOptions.fds) {
        if (fd !== -1 && !fds.has(fd)) throw nativeError('EBADF', 'fcntl');
      }
      const process = newProcess(nextPid++, true, spawnOptions);
      process.tracked = true;
      const pidfd = allocate({ kind: 'pidfd', pid: process.pid });
      try {
        options.onSpawn?.(process, fake);
      } catch (error) {
        process.state = 'reaped';
        process.tracked = false;
        processes.delete(process.pid);
        closeFd(pidfd);
        throw error;
      }
      return { pid: process.pid, pidfd };
    },

    pidfdOpen(pid) {
      record('pidfdOpen', [pid]);
      const process = processes.get(pid);
      if (process === undefined || process.state === 'reaped') throw nativeError('ESRCH', 'pidfd_open');
      if (process.child) process.tracked = true;
      return allocate({ kind: 'pidfd', pid });
    },

    pidfdSendSignal(pidfd, signal) {
      record('pidfdSendSignal', [pidfd, signal]);
      const process = processOf(pidfd, 'pidfd_send_signal');
      if (process.state === 'reaped') throw nativeError('ESRCH', 'pidfd_send_signal');
      process.signals.push(signal);
      if (process.state !== 'running') return;
      if (options.onSignal !== undefined) {
        options.onSignal(process, signal, fake);
      } else if (!IGNORED_BY_DEFAULT.has(signal)) {
        exitProcess(process, { kind: 'signaled', signal, coreDumped: false });
      }
    },

    pidfdWait(pidfd) {
      record('pidfdWait', [pidfd]);
      const process = processOf(pidfd, 'waitid');
      if (!process.child || process.state === 'reaped') throw nativeError('ECHILD', 'waitid');
      if (process.state === 'running') return undefined;
      process.state = 'reaped';
      process.tracked = false;
      return process.status;
    },

    reapOrphans(): ReapedExit[] {
      record('reapOrphans', []);
      const reaped: ReapedExit[] = [];
      for (const process of processes.values()) {
        if (!process.child || process.tracked || process.state !== 'exited' || process.status === undefined) continue;
        process.state = 'reaped';
        reaped.push({ pid: process.pid, status: process.status });
      }
      return reaped;
    },

    watchReadable(fd, onReadable): FdWatcher {
      record('watchReadable', [fd, onReadable]);
      describe(fd, 'uv_poll_init');
      if (watchers.some((w) => w.open && w.fd === fd)) throw nativeError('EEXIST', 'uv_poll_init');
      const watcher: Watcher = { fd, onReadable, open: true };
      watchers.push(watcher);
      schedulePump();
      return {
        close() {
          if (!watcher.open) return;
          watcher.open = false;
          watchers.splice(watchers.indexOf(watcher), 1);
        },
      };
    },

    sendFds(socketFd, data, sent) {
      record('sendFds', [socketFd, data, sent]);
      const end = describe(socketFd, 'sendmsg');
      if (end.kind !== 'socket') throw nativeError('ENOTSOCK', 'sendmsg');
      if (sent.length > 0 && data.length === 0)
        throw new RangeError('sendFds needs at least one byte of data to carry fds');
      if (end.peer === undefined || !([...fds.values()] as Description[]).includes(end.peer))
        throw nativeError('EPIPE', 'sendmsg');
      end.peer.queue.push({ data: Uint8Array.from(data), fds: sent.map((fd) => describe(fd, 'sendmsg')) });
      schedulePump();
    },

    receiveFds(socketFd, maxData, maxFds): ReceivedMessage {
      record('receiveFds', [socketFd, maxData, maxFds]);
      const end = describe(socketFd, 'recvmsg');
      if (end.kind !== 'socket') throw nativeError('ENOTSOCK', 'recvmsg');
      const message = end.queue[0];
      if (message === undefined) {
        if (end.peerClosed) return { data: new Uint8Array(0), fds: [] };
        throw nativeError('EAGAIN', 'recvmsg');
      }
      // A stream socket: bytes beyond maxData stay queued; fds come with the first read.
      const received = message.fds;
      message.fds = [];
      const data = message.data.slice(0, maxData);
      message.data = message.data.slice(maxData);
      if (message.data.length === 0) end.queue.shift();
      if (received.length > maxFds) throw nativeError('EMSGSIZE', 'recvmsg');
      return { data, fds: received.map((description) => allocate(description)) };
    },

    peerCredentials(socketFd): PeerCredentials {
      record('peerCredentials', [socketFd]);
      const end = describe(socketFd, 'getsockopt');
      if (end.kind !== 'socket') throw nativeError('ENOTSOCK', 'getsockopt');
      return {
        pid: globalThis.process.pid,
        uid: globalThis.process.getuid?.() ?? 0,
        gid: globalThis.process.getgid?.() ?? 0,
      };
    },

    socketPair() {
      record('socketPair', []);
      const a: SocketEnd = { kind: 'socket', queue: [], peer: undefined, peerClosed: false, readable: false };
      const b: SocketEnd = { kind: 'socket', queue: [], peer: a, peerClosed: false, readable: false };
      a.peer = b;
      return [allocate(a), allocate(b)] as const;
    },

    listenUnix(path, backlog) {
      record('listenUnix', [path, backlog]);
      if (socketPaths.has(path)) throw nativeError('EADDRINUSE', 'bind', path);
      socketPaths.add(path);
      return allocate({ kind: 'listener', path, readable: false });
    },

    pipe() {
      record('pipe', []);
      const buffer: PipeBuffer = { pending: 0 };
      return [
        allocate({ kind: 'pipe', end: 'read', readable: false, buffer }),
        allocate({ kind: 'pipe', end: 'write', readable: false, buffer }),
      ] as const;
    },

    pendingBytes(fd) {
      record('pendingBytes', [fd]);
      const description = describe(fd, 'ioctl');
      switch (description.kind) {
        case 'pipe':
        case 'fifo':
        case 'pty':
          return description.buffer.pending;
        case 'socket':
          return description.queue.reduce((sum, message) => sum + message.data.length, 0);
        case 'listener':
          throw nativeError('EINVAL', 'ioctl');
        case 'pidfd':
        case 'eventfd':
          throw nativeError('ENOTTY', 'ioctl');
      }
    },

    setWindowSize(fd, size) {
      record('setWindowSize', [fd, size]);
      const description = describe(fd, 'ioctl');
      if (description.kind !== 'pty') throw nativeError('ENOTTY', 'ioctl');
      description.size.rows = size.rows;
      description.size.cols = size.cols;
    },

    getWindowSize(fd): WindowSize {
      record('getWindowSize', [fd]);
      const description = describe(fd, 'ioctl');
      if (description.kind !== 'pty') throw nativeError('ENOTTY', 'ioctl');
      return { rows: description.size.rows, cols: description.size.cols };
    },

    openFifo(path, mode) {
      record('openFifo', [path, mode]);
      let buffer = fifoBuffers.get(path);
      if (buffer === undefined) {
        buffer = { pending: 0 };
        fifoBuffers.set(path, buffer);
      }
      return allocate({ kind: 'fifo', path, mode, readable: false, buffer });
    },

    dup2(oldFd, newFd) {
      record('dup2', [oldFd, newFd]);
      const description = describe(oldFd, 'dup2');
      if (oldFd === newFd) return;
      closeFd(newFd);
      fds.set(newFd, description);
    },

    close(fd) {
      record('close', [fd]);
      describe(fd, 'close');
      closeFd(fd);
    },

    eventfd() {
      record('eventfd', []);
      return allocate({ kind: 'eventfd', readable: false });
    },

    openPty() {
      record('openPty', []);
      const size = { rows: 0, cols: 0 };
      const master = allocate({ kind: 'pty', end: 'master', size, readable: false, buffer: { pending: 0 } });
      const slave = allocate({ kind: 'pty', end: 'slave', size, readable: false, buffer: { pending: 0 } });
      return { master, slave, slavePath: `/dev/pts/${master - 1000}` };
    },

    mount(source, target, fstype, flags, data) {
      record('mount', [source, target, fstype, flags, data]);
      mounts.set(target, { source, target, fstype, flags, data });
    },

    umount2(target, flags) {
      record('umount2', [target, flags]);
      if (!mounts.delete(target)) throw nativeError('EINVAL', 'umount2', target);
    },
  };
  return fake;
}
