/**
 * Exec latency: `ctr task exec --exec-id ID CONTAINER true` into a running container,
 * timed over ctr's whole run (Exec, Start, wait for the exit, Delete of the exec). The
 * container is each shim's keeper, so no shim starts or stops during the measurement.
 */
import type { Comparison, ShimKey } from './results-model.js';
import { interleave, toComparison } from './interleave.js';
import type { Rig } from './rig.js';

/** Measures `rounds` execs per shim, interleaved, into `keepers[shim]`. */
export async function measureExec(rig: Rig, rounds: number, keepers: Readonly<Record<ShimKey, string>>): Promise<Comparison> {
  const set = await interleave(rounds, async (shim) => {
    const container = keepers[shim.key];
    const result = await rig.containerd.ctr.run(['task', 'exec', '--exec-id', rig.nextId('exec'), container, 'true'], { timeoutMs: 60_000 });
    if (result.code === 0) return { ok: true, value: result.durationMs };
    return { ok: false, error: `ctr task exec exit ${result.code ?? result.signal ?? '?'}: ${result.stderr.trim().split('\n')[0] ?? ''}` };
  });
  return toComparison(
    { id: 'exec', title: 'exec `true` into a running container', unit: 'ms', better: 'lower', note: 'ctr task exec into an idle keeper container of each shim' },
    set,
  );
}
