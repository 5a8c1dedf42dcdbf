/**
 * Memory per running container: the PSS (smaps_rollup) of every process of one shim
 * (daemons; for tsrun also its manager and spares, when the native launcher runs them;
 * not the short-lived `start`/`delete` actions), summed and divided by the number of idle
 * containers (`sleep`, no stdio) they serve, at
 * each count of the plan (1, 10, 50), for three groupings:
 *
 * - container: one shim per container (tsrun's default policy; the Go shim's default).
 * - pod: containers carry CRI's `io.kubernetes.cri.sandbox-id` annotation, `podSize` per
 *   pod (no pause container: only the grouping is under test). tsrun also gets
 *   `GroupPolicy = "pod"`; both shims group on that annotation, one shim per pod.
 * - namespace: tsrun's `GroupPolicy = "namespace"`, one daemon for all; the Go shim gets
 *   the same placement through one `io.containerd.runc.v2.group` annotation.
 *
 * Per grouping, tsrun's containers are started and measured, then removed, then runc-v2's
 * (the interleaving of this phase: A B per grouping). PSS divides each shared page among
 * the processes that map it, so 50 Node daemons count node's text once, not 50 times.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Comparison, ShimKey } from './results-model.js';
import { addSample, createSampleSet, toComparison } from './interleave.js';
import { shimsUnderTest, type Placement, type Rig, type ShimUnderTest } from './rig.js';
import { processMemory, shimProcesses } from './shim-processes.js';
import { median } from './stats.js';

/** The groupings memory is measured in. */
export const groupings = ['container', 'pod', 'namespace'] as const;
export type Grouping = (typeof groupings)[number];

/** How many `ctr` calls run at once while filling or emptying the machine. */
const concurrency = 4;

/** One reading: total memory of one shim's processes, and how many there were. */
interface Reading {
  readonly pssKiB: number;
  readonly ussKiB: number;
  readonly rssKiB: number;
  /** Processes serving containers. */
  readonly serving: number;
  /** Others (tsrun's manager and idle spares). */
  readonly others: number;
  /** PSS and USS of those others alone (included in the totals above). */
  readonly othersPssKiB: number;
  readonly othersUssKiB: number;
}

/** Runs `work` over `items`, at most `limit` at a time. */
async function inPool<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < items.length; i = next++) await work(items[i] as T);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

function placementOf(grouping: Grouping, shim: ShimUnderTest, index: number, podSize: number): Placement {
  switch (grouping) {
    case 'container':
      return { kind: 'own' };
    case 'pod':
      return { kind: 'pod', sandboxId: `pod-${shim.key}-${Math.floor(index / podSize)}` };
    case 'namespace':
      return { kind: 'namespace' };
  }
}

/**
 * Total memory of `shim`'s processes now, leaving out actions and the rig's stuck shims
 * (which outlived earlier containers and must not count here); three reads 200 ms apart,
 * the median of each.
 */
async function readShimMemory(rig: Rig, shim: ShimKey): Promise<Reading> {
  const reads: Reading[] = [];
  for (let i = 0; i < 3; i++) {
    if (i > 0) await sleep(200);
    const processes = (await shimProcesses(rig.containerd.address)).filter((p) => p.shim === shim && p.role !== 'action' && !rig.stuck.has(p.pid));
    let pssKiB = 0;
    let ussKiB = 0;
    let rssKiB = 0;
    let othersPssKiB = 0;
    let othersUssKiB = 0;
    for (const p of processes) {
      const memory = await processMemory(p.pid);
      pssKiB += memory?.pssKiB ?? 0;
      ussKiB += memory?.ussKiB ?? 0;
      rssKiB += memory?.rssKiB ?? 0;
      if (!p.serving) {
        othersPssKiB += memory?.pssKiB ?? 0;
        othersUssKiB += memory?.ussKiB ?? 0;
      }
    }
    const serving = processes.filter((p) => p.serving).length;
    reads.push({ pssKiB, ussKiB, rssKiB, serving, others: processes.length - serving, othersPssKiB, othersUssKiB });
  }
  return {
    pssKiB: median(reads.map((r) => r.pssKiB)),
    ussKiB: median(reads.map((r) => r.ussKiB)),
    rssKiB: median(reads.map((r) => r.rssKiB)),
    serving: Math.max(...reads.map((r) => r.serving)),
    others: Math.max(...reads.map((r) => r.others)),
    othersPssKiB: median(reads.map((r) => r.othersPssKiB)),
    othersUssKiB: median(reads.map((r) => r.othersUssKiB)),
  };
}

/** Options of {@link measureMemory}. */
export interface MemoryOptions {
  readonly counts: readonly number[];
  readonly podSize: number;
  readonly settleMs: number;
}

/**
 * Measures every grouping at every count, for both shims.
 * @returns one comparison per (grouping, count), in MiB of PSS per container.
 */
export async function measureMemory(rig: Rig, options: MemoryOptions): Promise<Comparison[]> {
  const counts = [...options.counts].sort((a, b) => a - b);
  const comparisons: Comparison[] = [];
  // PSS per container of runc-v2 with one shim per container, to set groupings against.
  const runcDefault = new Map<number, number>();
  for (const grouping of groupings) {
    const sets = counts.map(() => createSampleSet());
    const detail: Partial<Record<ShimKey, Reading>>[] = counts.map(() => ({}));
    for (const shim of shimsUnderTest) {
      const ids: string[] = [];
      // Counts measured so far: a failure leaves the rest without a sample.
      let reached = 0;
      try {
        for (const [c, count] of counts.entries()) {
          const fresh = Array.from({ length: count - ids.length }, (_, k) => ({ id: rig.nextId(`idle-${shim.key}-${grouping}`), index: ids.length + k }));
          // The first container of a group starts its daemon alone; the rest join at once.
          const [first, ...rest] = fresh;
          if (first !== undefined && ids.length === 0) {
            await rig.startIdle(shim, placementOf(grouping, shim, first.index, options.podSize), first.id);
            ids.push(first.id);
          } else if (first !== undefined) {
            rest.unshift(first);
          }
          await inPool(rest, concurrency, async ({ id, index }) => {
            await rig.startIdle(shim, placementOf(grouping, shim, index, options.podSize), id);
            ids.push(id);
          });
          await rig.settle(await rig.persistentPids(), `memory ${grouping} ${shim.label}`);
          await sleep(options.settleMs);
          const reading = await readShimMemory(rig, shim.key);
          detail[c] = { ...detail[c], [shim.key]: reading };
          const perContainer = reading.pssKiB / 1024 / count;
          addSample(sets[c] ?? createSampleSet(), shim.key, { ok: true, value: perContainer });
          if (grouping === 'container' && shim.key === 'runcV2') runcDefault.set(count, perContainer);
          reached = c + 1;
        }
      } catch (error) {
        const message = error instanceof Error ? (error.message.split('\n')[0] ?? '') : String(error);
        for (const set of sets.slice(reached)) addSample(set, shim.key, { ok: false, error: message });
      } finally {
        await inPool([...ids], concurrency, (id) => rig.remove(id));
        await rig.settle(new Set(), `memory ${grouping} ${shim.label} teardown`);
      }
    }
    for (const [c, count] of counts.entries()) {
      const d = detail[c] ?? {};
      const describe = (key: ShimKey, name: string): string => {
        const r = d[key];
        if (r === undefined) return `${name}: no reading`;
        const mib = (kib: number): string => (kib / 1024).toFixed(1);
        const others = r.others === 0 ? '' : ` + ${r.others} other (manager, spares: PSS ${mib(r.othersPssKiB)} / USS ${mib(r.othersUssKiB)} MiB)`;
        return `${name}: ${r.serving} serving${others}, in all PSS ${mib(r.pssKiB)} / USS ${mib(r.ussKiB)} / RSS ${mib(r.rssKiB)} MiB`;
      };
      const comparison = toComparison(
        {
          id: `memory.${grouping}.${count}`,
          title: `PSS per container, ${count} idle, ${grouping} grouping`,
          unit: 'MiB',
          better: 'lower',
          note: `${describe('tsrun', 'tsrun')}; ${describe('runcV2', 'runc-v2')}`,
        },
        sets[c] ?? createSampleSet(),
      );
      comparisons.push(comparison);
    }
  }
  // Against what users get from the Go shim without any annotation.
  return comparisons.map((comparison) => {
    const count = Number(comparison.id.split('.').at(-1));
    const base = runcDefault.get(count);
    if (comparison.id.startsWith('memory.container.') || base === undefined || comparison.tsrun === undefined) return comparison;
    return { ...comparison, note: `${comparison.note ?? ''}; tsrun vs runc-v2 one shim per container: ${(comparison.tsrun.median / base).toFixed(2)}x` };
  });
}
