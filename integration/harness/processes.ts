/**
 * Host processes as /proc shows them, for finding what a private containerd left behind:
 * shims are started by containerd in their own process group and outlive it, so the
 * harness finds them by the containerd address on their command line, and finds the
 * container processes beneath them by parent pid.
 */
import { readFileSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

/** One live process. */
export interface ProcessEntry {
  readonly pid: number;
  readonly ppid: number;
  /** argv, split on NUL; empty for kernel threads and processes that just exited. */
  readonly argv: readonly string[];
}

/** Reads every process in /proc. Processes that exit while being read are skipped. */
export async function listProcesses(): Promise<ProcessEntry[]> {
  const names = await readdir('/proc');
  const entries = await Promise.all(
    names
      .filter((name) => /^\d+$/.test(name))
      .map(async (name): Promise<ProcessEntry | undefined> => {
        try {
          const [stat, cmdline] = await Promise.all([
            readFile(`/proc/${name}/stat`, 'utf8'),
            readFile(`/proc/${name}/cmdline`, 'utf8'),
          ]);
          // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so parse after the last ')'.
          const afterComm = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
          const ppid = Number(afterComm[1]);
          const argv = cmdline.split('\0');
          if (argv.at(-1) === '') argv.pop();
          return { pid: Number(name), ppid, argv };
        } catch {
          return undefined;
        }
      }),
  );
  return entries.filter((entry): entry is ProcessEntry => entry !== undefined);
}

/**
 * Processes whose argv holds `flag` immediately followed by `value` (Go's flag package also
 * accepts `flag=value`, matched too): how a shim names the containerd it belongs to
 * (`-address /path/grpc.sock`).
 */
export function withFlag(processes: readonly ProcessEntry[], flag: string, value: string): ProcessEntry[] {
  return processes.filter((p) => p.argv.some((arg, i) => (arg === flag && p.argv[i + 1] === value) || arg === `${flag}=${value}`));
}

/**
 * Processes whose environment holds `name=value`: containerd gives every shim it starts
 * `TTRPC_ADDRESS=<its ttrpc socket>`, which finds a shim daemon that does not repeat the
 * `-address` flag on its own command line. Processes whose environ cannot be read are skipped.
 */
export function withEnvironment(processes: readonly ProcessEntry[], name: string, value: string): ProcessEntry[] {
  const wanted = `${name}=${value}`;
  return processes.filter((p) => {
    try {
      return readFileSync(`/proc/${p.pid}/environ`, 'utf8').split('\0').includes(wanted);
    } catch {
      return false;
    }
  });
}

/** All descendants of the given pids (children, grandchildren, ...), not the pids themselves. */
export function descendantsOf(processes: readonly ProcessEntry[], pids: Iterable<number>): ProcessEntry[] {
  const byParent = new Map<number, ProcessEntry[]>();
  for (const p of processes) {
    const siblings = byParent.get(p.ppid);
    if (siblings === undefined) byParent.set(p.ppid, [p]);
    else siblings.push(p);
  }
  const found: ProcessEntry[] = [];
  const queue = [...pids];
  for (let pid = queue.shift(); pid !== undefined; pid = queue.shift()) {
    for (const child of byParent.get(pid) ?? []) {
      found.push(child);
      queue.push(child.pid);
    }
  }
  return found;
}

/**
 * Whether a process with this pid is still running. A zombie does not count: it has exited
 * and only waits for its parent (or init) to reap it, which the harness cannot hurry.
 */
export function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/**
 * Sends SIGKILL to each pid and waits until none exists any more.
 *
 * A killed process that is still a zombie counts as gone (see {@link isAlive}).
 *
 * @returns the pids still present after `timeoutMs` (empty when all are gone).
 */
export async function killAndWait(pids: readonly number[], timeoutMs = 5_000): Promise<number[]> {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  const deadline = Date.now() + timeoutMs;
  let alive = pids.filter(isAlive);
  while (alive.length > 0 && Date.now() < deadline) {
    await sleep(20);
    alive = alive.filter(isAlive);
  }
  return alive;
}
