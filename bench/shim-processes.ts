/**
 * The shim processes of one private containerd, told apart by runtime and role, and their
 * memory and CPU time.
 *
 * A shim of our containerd carries `-address <its grpc socket>` on its command line
 * (containerd passes it to `start`; the Go shim's re-executed daemon, tsrun's daemon, its
 * manager and its spares repeat it). Other containerds on the host (other test runs) have
 * other addresses, so their shims never count here.
 *
 * - runc-v2: `containerd-shim-runc-v2 -namespace ... -id ... -address ... [start|delete]`.
 * - tsrun: `.../containerd-shim-tsrun-v1 ... start|delete` (the native launcher or the
 *   Node CLI: a short-lived action), `node .../build/shim/entry.cjs -namespace ... -id ...`
 *   (a group daemon), `node entry.cjs -manager -address A` (the long-lived manager that
 *   answers the launcher), `node entry.cjs -spare -address A` (a pre-booted spare; once a
 *   group adopts it, it is that group's daemon under the same command line).
 */
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { listProcesses, withFlag, type ProcessEntry } from '../integration/harness/index.js';
import type { ShimKey } from './results-model.js';

/** What a shim process is for. */
export type ShimRole = 'daemon' | 'action' | 'manager' | 'spare';

/** Which shim a process is, or undefined when it is none (a container process, runc). */
export function shimOf(argv: readonly string[]): ShimKey | undefined {
  const [first = '', second = ''] = argv;
  if (first.endsWith('/containerd-shim-runc-v2') || first === 'containerd-shim-runc-v2') return 'runcV2';
  if (
    /\/build\/shim\/(?:entry\.cjs|main\.js)$/.test(second) ||
    second.endsWith('/containerd-shim-tsrun-v1') ||
    first.endsWith('/containerd-shim-tsrun-v1') ||
    first === 'containerd-shim-tsrun-v1'
  ) {
    return 'tsrun';
  }
  return undefined;
}

/** The role of a shim process, from its command line. */
export function roleOf(argv: readonly string[]): ShimRole {
  const last = argv.at(-1);
  if (last === 'start' || last === 'delete') return 'action';
  if (argv.includes('-manager')) return 'manager';
  if (argv.includes('-spare')) return 'spare';
  return 'daemon';
}

/** One shim process of our containerd. */
export interface ShimProcess {
  readonly pid: number;
  readonly shim: ShimKey;
  readonly role: ShimRole;
  /**
   * Whether it has a child that is not a shim: a container process reparented to it (the
   * shim is their subreaper). An adopted spare serves; an idle one does not.
   */
  readonly serving: boolean;
  /** The `-id` it was started for (for a daemon: the first container of its group). */
  readonly id: string | undefined;
  readonly argv: readonly string[];
}

/** The shim processes of the containerd listening on `address`. */
export async function shimProcesses(address: string): Promise<ShimProcess[]> {
  const all = await listProcesses();
  const processes: ProcessEntry[] = withFlag(all, '-address', address);
  const shimPids = new Set(processes.filter((p) => shimOf(p.argv) !== undefined).map((p) => p.pid));
  const servingPids = new Set(all.filter((p) => shimPids.has(p.ppid) && !shimPids.has(p.pid)).map((p) => p.ppid));
  const found: ShimProcess[] = [];
  for (const p of processes) {
    const shim = shimOf(p.argv);
    if (shim === undefined) continue;
    const idIndex = p.argv.indexOf('-id');
    found.push({ pid: p.pid, shim, role: roleOf(p.argv), serving: servingPids.has(p.pid), id: idIndex >= 0 ? p.argv[idIndex + 1] : undefined, argv: p.argv });
  }
  return found;
}

/** Whether a process comes and goes on its own schedule, not a container's (tsrun's manager and spares). */
export function isInfrastructure(p: ShimProcess): boolean {
  return p.role === 'manager' || p.role === 'spare';
}

/**
 * Waits until every shim process of `address` outside `expected` is tsrun infrastructure
 * (a manager or a spare, which outlive containers by design), or, with `everything`, until
 * there is none at all: the previous run's shim has exited.
 * @returns the processes still there after `timeoutMs` (empty when everything settled).
 */
export async function waitForShimsToExit(
  address: string,
  expected: ReadonlySet<number>,
  options: { readonly everything?: boolean; readonly timeoutMs?: number } = {},
): Promise<ShimProcess[]> {
  const deadline = performance.now() + (options.timeoutMs ?? 15_000);
  for (;;) {
    const extra = (await shimProcesses(address)).filter((p) => !expected.has(p.pid) && (options.everything === true || !isInfrastructure(p)));
    if (extra.length === 0 || performance.now() > deadline) return extra;
    await sleep(10);
  }
}

/** CPU time (user + system, in clock ticks) a process has used; 0 when it is gone. */
export async function cpuTicks(pid: number): Promise<number> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // Fields after "(comm) ": state is field 3, utime 14 and stime 15 (1-based).
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return 0;
  }
}

/**
 * Waits until the shim processes of `address` are quiet: their summed CPU time grows by at
 * most one clock tick over `windowMs`. A tsrun spare booting, or a daemon still closing
 * down, would otherwise take CPU from the next sample, which may be the other shim's.
 * @returns whether they became quiet within `timeoutMs`.
 */
export async function waitForQuietShims(address: string, windowMs = 100, timeoutMs = 5000): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  const total = async (): Promise<number> => {
    let sum = 0;
    for (const p of await shimProcesses(address)) sum += await cpuTicks(p.pid);
    return sum;
  };
  let before = await total();
  while (performance.now() < deadline) {
    await sleep(windowMs);
    const after = await total();
    if (after - before <= 1) return true;
    before = after;
  }
  return false;
}

/** Proportional, unique and resident set size of one process, in KiB. */
export interface ProcessMemory {
  readonly pssKiB: number;
  /** Private_Clean + Private_Dirty: what exiting would free, whatever else maps the binary. */
  readonly ussKiB: number;
  readonly rssKiB: number;
}

/**
 * Parses `/proc/PID/smaps_rollup` (Linux 4.14+): Pss is the process's resident memory with
 * every shared page divided by the number of processes mapping it, so summing Pss over
 * many shims that share the node (or Go) binary counts its text once, not once per shim.
 * Pages shared with processes that are not shims (any other node on the host) are divided
 * among those too, so PSS moves a little with what else runs; USS does not.
 * @throws Error when the text lacks one of the lines read.
 */
export function parseSmapsRollup(text: string): ProcessMemory {
  const field = (name: string): number => {
    const match = new RegExp(`^${name}:\\s+(\\d+) kB$`, 'm').exec(text);
    if (match?.[1] === undefined) throw new Error(`smaps_rollup has no ${name} line: is this Linux 4.14 or newer?`);
    return Number(match[1]);
  };
  return { pssKiB: field('Pss'), ussKiB: field('Private_Clean') + field('Private_Dirty'), rssKiB: field('Rss') };
}

/** Memory of a process; undefined when it exited meanwhile. */
export async function processMemory(pid: number): Promise<ProcessMemory | undefined> {
  let text: string;
  try {
    text = await readFile(`/proc/${pid}/smaps_rollup`, 'utf8');
  } catch {
    return undefined;
  }
  return parseSmapsRollup(text);
}
