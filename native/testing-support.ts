/**
 * Helpers for the native tests (not part of the facade): waiting for an exit the
 * way core/ will (pidfd readiness, then pidfdWait), and counting what a test must
 * not leak (fds, zombie children). No child_process: it would compete with the
 * addon's reaper.
 */
import { closeSync, readdirSync, readFileSync, readSync } from 'node:fs';
import type { Native, SpawnOptions, SpawnedProcess, WaitStatus } from './facade.js';

/** The busybox the tests run programs with (static, always present on the test host). */
export const BUSYBOX = '/usr/bin/busybox';

/** Number of fds this process has open now. */
export function openFdCount(): number {
  return readdirSync('/proc/self/fd').length;
}

/** The fields of /proc/<pid>/stat that the tests look at, or undefined once the pid is gone. */
export function procStat(pid: number): { state: string; ppid: number; pgrp: number; session: number } | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return undefined;
  }
  // comm may hold spaces and parentheses: the fields start after the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { state: fields[0] ?? '', ppid: Number(fields[1]), pgrp: Number(fields[2]), session: Number(fields[3]) };
}

/** Pids of this process's children that are zombies right now. */
export function zombieChildren(): number[] {
  const zombies: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const stat = procStat(Number(name));
    if (stat?.ppid === process.pid && stat.state === 'Z') zombies.push(Number(name));
  }
  return zombies;
}

/** Resolves once `check()` is true, polling every few ms; rejects after `timeoutMs`. */
export async function until(check: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

/**
 * The exit status of a spawned child, collected as core/ does: watch the pidfd,
 * pidfdWait when readable. Closes the watcher, and the pidfd unless `keepPidfd`.
 */
export function waitForExit(native: Native, child: SpawnedProcess, keepPidfd = false): Promise<WaitStatus> {
  return new Promise((resolve, reject) => {
    const watcher = native.watchReadable(child.pidfd, () => {
      try {
        const status = native.pidfdWait(child.pidfd);
        if (status === undefined) return; // readiness without an exit: wait for the next one
        watcher.close();
        if (!keepPidfd) native.close(child.pidfd);
        resolve(status);
      } catch (error) {
        watcher.close();
        reject(error instanceof Error ? error : new Error(String(error)));
      }
    });
  });
}

/** Reads `fd` (blocking) to end of file, then closes it. */
export function readToEnd(fd: number): string {
  const chunks: Buffer[] = [];
  const buffer = Buffer.alloc(65536);
  for (;;) {
    const n = readSync(fd, buffer);
    if (n === 0) break;
    chunks.push(Buffer.from(buffer.subarray(0, n)));
  }
  closeSync(fd);
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * Runs a program with stdout on a pipe and waits for it: its output and status.
 * Child fd 1 is the pipe; the rest is `fds` (default: stdin and stderr on /dev/null).
 */
export async function run(
  native: Native,
  args: readonly string[],
  options: Partial<Omit<SpawnOptions, 'args' | 'file'>> = {},
): Promise<{ stdout: string; status: WaitStatus; pid: number }> {
  const [readEnd, writeEnd] = native.pipe();
  let child: SpawnedProcess;
  try {
    const fds = [...(options.fds ?? [-1, -1, -1])];
    fds[1] = writeEnd;
    child = native.spawn({ env: [], ...options, fds, file: args[0] ?? '', args });
  } finally {
    native.close(writeEnd);
  }
  const exited = waitForExit(native, child);
  const stdout = readToEnd(readEnd);
  return { stdout, status: await exited, pid: child.pid };
}

/** Flags of an fd (octal field of /proc/self/fdinfo), e.g. to check O_CLOEXEC and O_NONBLOCK. */
export function fdFlags(fd: number): number {
  const match = /^flags:\s+([0-7]+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'latin1'));
  if (match?.[1] === undefined) throw new Error(`no flags in /proc/self/fdinfo/${fd}`);
  return parseInt(match[1], 8);
}

/** O_CLOEXEC and O_NONBLOCK as /proc/<pid>/fdinfo reports them (x86_64 and arm64 alike). */
export const O_CLOEXEC = 0o2000000;
export const O_NONBLOCK = 0o4000;
