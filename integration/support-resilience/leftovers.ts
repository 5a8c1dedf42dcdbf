/**
 * What tsrun tasks may leave on the host, checked after they are gone: shim daemons, rootfs
 * mounts under containerd's task state, runc state directories, bundle directories and
 * daemon sockets. A daemon exits shortly after its last task is deleted (containerd's
 * Shutdown), and may take a few seconds more to drain its event queue, so the checks poll.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { RUNC_ROOT, mountsUnder, type ContainerdInstance } from '../harness/index.js';
import { eventually } from './poll.js';
import { bundleDir, describeDaemons, shimDaemons } from './shim-daemons.js';

/** What to look for. */
export interface TaskLeftoverQuery {
  readonly namespace: string;
  /** Task ids whose runc state and bundle must be gone. */
  readonly ids: readonly string[];
  /** Daemon socket paths that must be gone (a daemon that exited cleanly removes its socket). */
  readonly sockets?: readonly string[];
}

/**
 * Waits until nothing of the given tasks is left: no tsrun daemon started for any of the ids
 * (a group daemon carries the `-id` of its group's first container), no mount under their
 * bundles, no runc state or bundle of any id, none of the sockets.
 *
 * @throws AssertionError naming what is still there after `timeoutMs` (20 s).
 */
export async function assertNoTaskLeftovers(instance: ContainerdInstance, query: TaskLeftoverQuery, timeoutMs = 20_000): Promise<void> {
  const { namespace, ids, sockets = [] } = query;
  const leftovers = async (): Promise<string[]> => {
    const found: string[] = [];
    const daemons = (await shimDaemons(instance)).filter((d) => d.namespace === namespace && ids.includes(d.id));
    if (daemons.length > 0) found.push(`daemons ${describeDaemons(daemons)}`);
    for (const id of ids) {
      const mounts = await mountsUnder(bundleDir(instance, namespace, id));
      if (mounts.length > 0) found.push(`mounts ${mounts.map((m) => m.mountPoint).join(', ')}`);
      if (existsSync(join(RUNC_ROOT, namespace, id))) found.push(`runc state ${join(RUNC_ROOT, namespace, id)}`);
      if (existsSync(bundleDir(instance, namespace, id))) found.push(`bundle ${bundleDir(instance, namespace, id)}`);
    }
    for (const socket of sockets) if (existsSync(socket)) found.push(`socket ${socket}`);
    return found;
  };
  let last: string[] = [];
  await eventually(
    'every daemon, mount, runc state dir, bundle and socket of the deleted tasks is gone',
    async () => {
      last = await leftovers();
      return last.length === 0;
    },
    { timeoutMs, intervalMs: 100, detail: () => last.join('; ') },
  );
}
