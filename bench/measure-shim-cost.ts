/**
 * The shim's own cost per Task call, from the timings tsrun daemons record themselves
 * (shim/timings.ts). The Go shim records none, so these numbers have no runc-v2 twin.
 *
 * Per method, two numbers: the handling time (request in to response out), and the
 * shim's own part of it, the handling time minus the time spent waiting for runc (each
 * runc invocation publishes its duration on the diagnostics channel `tsrun:runc`, summed
 * per call). Daemons built before that accounting log only the handling time. Wait is a
 * long poll: its time is the life of the process waited for, not a cost.
 *
 * Two sources:
 * - the keeper's group daemon, which served many containers and execs: SIGUSR1 makes it
 *   log a "diagnostic report" line with its timings;
 * - every one-container daemon of the sequential latency runs (first, cold): each logs its
 *   timings once in its "daemon exiting" line; per method, the bench summarises each
 *   daemon's p50 (for one container, its one sample) across daemons. These are first calls
 *   in a fresh Node process: cold code, not yet optimised by the JIT.
 */
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseDaemonTimings, type CallTimings, type DaemonTimings } from './daemon-log.js';
import type { ShimCost } from './results-model.js';
import type { Rig } from './rig.js';
import { shimProcesses } from './shim-processes.js';
import { summarize, type Summary } from './stats.js';

/** The label every report prints above these numbers. */
export const shimCostLabel =
  "tsrun daemon timings per Task call: 'handling' is request in to response out, runc included; " +
  "'own' is handling minus the time spent waiting for runc (diagnostics channel tsrun:runc), '-' where the daemon does not record it; " +
  'Wait is a long poll (its time is the life of the process)';

async function readLog(rig: Rig): Promise<DaemonTimings[]> {
  try {
    return parseDaemonTimings(await readFile(rig.containerd.logPath, 'utf8'));
  } catch {
    return [];
  }
}

/**
 * Asks the tsrun daemon serving container `keeperId` for its timings
 * (SIGUSR1) and waits up to 5 s for the "diagnostic report" line in containerd's log.
 * @returns its timings, or undefined with the reason pushed to the rig's notes.
 */
export async function groupDaemonTimings(rig: Rig, keeperId: string): Promise<CallTimings | undefined> {
  // The keeper's daemon serves its container: by `-id` when it was spawned for the keeper,
  // else (an adopted spare keeps its `-spare` command line) the only tsrun process serving.
  const serving = (await shimProcesses(rig.containerd.address)).filter((p) => p.shim === 'tsrun' && p.serving);
  const daemon = serving.find((p) => p.id === keeperId) ?? (serving.length === 1 ? serving[0] : undefined);
  if (daemon === undefined) {
    rig.notes.push(`shim cost: cannot tell which tsrun process serves keeper ${keeperId} (${serving.length} serve containers)`);
    return undefined;
  }
  const before = (await readLog(rig)).filter((t) => t.pid === daemon.pid && t.message === 'diagnostic report').length;
  process.kill(daemon.pid, 'SIGUSR1');
  const deadline = performance.now() + 5000;
  while (performance.now() < deadline) {
    const reports = (await readLog(rig)).filter((t) => t.pid === daemon.pid && t.message === 'diagnostic report');
    if (reports.length > before) return reports.at(-1)?.timings;
    await sleep(50);
  }
  rig.notes.push(`shim cost: tsrun daemon ${daemon.pid} logged no diagnostic report within 5 s of SIGUSR1`);
  return undefined;
}

/** Per method, the spread over one-container daemons of their p50 handling and own times. */
export interface OneContainerTimings {
  readonly byMethod: Record<string, { readonly handling: Summary; readonly own: Summary | undefined }>;
  readonly daemons: number;
}

/**
 * Per method, the distribution of each one-container daemon's p50, over the daemons whose
 * first container id starts with `idPrefix` (the runs of {@link Rig.runToExit}).
 */
export async function oneContainerDaemonTimings(rig: Rig, idPrefix: string): Promise<OneContainerTimings> {
  const exits = (await readLog(rig)).filter((t) => t.message === 'daemon exiting' && t.group.startsWith(idPrefix));
  const perMethod = new Map<string, { handling: number[]; own: number[] }>();
  for (const exit of exits) {
    for (const [method, timing] of Object.entries(exit.timings)) {
      let values = perMethod.get(method);
      if (values === undefined) {
        values = { handling: [], own: [] };
        perMethod.set(method, values);
      }
      values.handling.push(timing.p50);
      if (timing.ownP50 !== undefined) values.own.push(timing.ownP50);
    }
  }
  const byMethod: OneContainerTimings['byMethod'] = {};
  for (const [method, values] of perMethod) {
    const handling = summarize(values.handling);
    if (handling !== undefined) byMethod[method] = { handling, own: summarize(values.own) };
  }
  return { byMethod, daemons: exits.length };
}

/** Both sources, as the results hold them. */
export function shimCostOf(group: CallTimings | undefined, groupNote: string, oneContainer: OneContainerTimings): ShimCost {
  return { label: shimCostLabel, groupDaemon: group, groupDaemonNote: groupNote, oneContainerDaemons: oneContainer.byMethod, oneContainerDaemonCount: oneContainer.daemons };
}
