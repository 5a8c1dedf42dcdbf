/**
 * A burst: `size` `ctr run --rm IMAGE ID /bin/true` started at the same instant, timed
 * from the first spawn to the last exit (every container created, run and removed).
 * Whether the containers share a shim is the placement's: `own` gives each its own shim
 * (for tsrun, `size` Node daemons booting at once on this 2-core machine), a `group`
 * sends them all to a running keeper's daemon.
 */
import type { Comparison } from './results-model.js';
import { interleave, toComparison } from './interleave.js';
import { trueCommand } from './measure-latency.js';
import type { Placement, Rig } from './rig.js';

/** Measures `rounds` bursts per shim, interleaved; a burst with any failed run is a failed sample. */
export async function measureBurst(
  rig: Rig,
  rounds: number,
  size: number,
  placement: Placement,
  expected: ReadonlySet<number>,
  meta: { readonly id: string; readonly title: string; readonly note: string },
): Promise<Comparison> {
  const set = await interleave(rounds, async (shim) => {
    await rig.settle(expected, meta.id);
    const started = performance.now();
    const outcomes = await Promise.all(Array.from({ length: size }, () => rig.runToExit(shim, placement, meta.id.replace('.', '-'), trueCommand, { timeoutMs: 180_000 })));
    const ms = performance.now() - started;
    const failed = outcomes.filter((o) => !o.ok);
    if (failed.length > 0) return { ok: false, error: `${failed.length} of ${size} runs failed, first: ${failed[0]?.error ?? '?'}` };
    return { ok: true, value: ms };
  });
  return toComparison({ ...meta, unit: 'ms', better: 'lower' }, set);
}
