/**
 * Start-to-exit latency of `ctr run --rm IMAGE ID /bin/true`: ctr's whole run (create the
 * container, start the shim or find it, Create, Start, wait for the exit, Delete, remove),
 * which is what a user waits for. Three situations:
 *
 * - first: no shim process of our containerd runs at all, of either shim: before each run
 *   tsrun's manager (when the native launcher runs one) is stopped and every shim process
 *   has exited. For tsrun this start pays for booting Node: the `start` action (or the
 *   manager the launcher starts) and the new group daemon.
 * - cold: a keeper container keeps one daemon of the shim running, and the new container
 *   gets its own (tsrun's default `container` policy; the Go shim's only default).
 * - warm: the new container joins the keeper's group through the shim's group annotation,
 *   so a daemon already serves it. containerd still runs the shim binary's `start` action,
 *   which finds the daemon and prints its address.
 */
import type { Comparison } from './results-model.js';
import { interleave, toComparison } from './interleave.js';
import type { Placement, Rig } from './rig.js';

/** The command every latency run runs: busybox's `true`, which exits at once. */
export const trueCommand: readonly string[] = ['/bin/true'];

/**
 * Measures one latency situation, `rounds` samples per shim, interleaved. Before each
 * sample the shim processes settle to `expected` (the keepers' daemons; `nothing`: no shim
 * process at all), so the previous run's exiting shim does not share the CPU with the next.
 */
export async function measureLatency(
  rig: Rig,
  rounds: number,
  placement: Placement,
  expected: ReadonlySet<number> | 'nothing',
  meta: { readonly id: string; readonly title: string; readonly note: string },
): Promise<Comparison> {
  const set = await interleave(rounds, async (shim) => {
    if (expected === 'nothing') {
      await rig.stopTsrunInfrastructure();
      await rig.settle(new Set(), meta.id, { everything: true });
    } else {
      await rig.settle(expected, meta.id);
    }
    const outcome = await rig.runToExit(shim, placement, meta.id.replace('.', '-'), trueCommand);
    return outcome.ok ? { ok: true, value: outcome.ms } : { ok: false, error: outcome.error };
  });
  return toComparison({ ...meta, unit: 'ms', better: 'lower' }, set);
}
