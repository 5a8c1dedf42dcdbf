/**
 * Grouping end to end on a real containerd 1.6 (DESIGN.md section 2; facts 2.4 and 2.11):
 * which tsrun daemon serves which container.
 *
 * - Containers whose OCI spec carries the annotation `io.containerd.tsrun.v1.group=<key>`
 *   (`ctr run --annotation`) share one daemon, listening on containerd's socket address for
 *   that key; each of them works on its own, and the daemon lives until the last is deleted.
 * - The `namespace` policy, set through runtime options as CRI sends them for a non-runc
 *   runtime (`ctr run --runtime-config-path <toml>` sends `runtimeoptions.v1.Options`
 *   with `config_path`), puts every container of a containerd namespace in one daemon, and
 *   another namespace in another.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, test } from 'node:test';
import { BUSYBOX_IMAGE, TSRUN_BIN_DIR, importTestImages, isAlive, useContainerd, type ContainerdInstance } from './harness/index.js';
import { assertNoTaskLeftovers } from './support-resilience/leftovers.js';
import { eventually } from './support-resilience/poll.js';
import { describeDaemons, shimDaemons, shimIdentity, shimSocketOf, type ShimIdentity } from './support-resilience/shim-daemons.js';
import { describeTasks, taskList } from './support-resilience/task-list.js';

const RUNTIME = 'io.containerd.tsrun.v1';
const GROUP_ANNOTATION = 'io.containerd.tsrun.v1.group';
/** Starting a task may boot a Node daemon: seconds on a loaded 2-core box. */
const CTR_TIMEOUT_MS = 60_000;

async function runDetached(c: ContainerdInstance, id: string, flags: readonly string[], namespace = c.namespace): Promise<void> {
  await c.ctr.ok(['run', '-d', '--runtime', RUNTIME, ...flags, BUSYBOX_IMAGE, id, 'sleep', '3600'], { namespace, timeoutMs: CTR_TIMEOUT_MS });
}

/** Runs `echo <marker>` as an exec in a task and returns what it printed. */
async function execEcho(c: ContainerdInstance, id: string, marker: string, namespace = c.namespace): Promise<string> {
  const result = await c.ctr.run(['task', 'exec', '--exec-id', `echo-${marker}`, id, 'echo', marker], { namespace, timeoutMs: CTR_TIMEOUT_MS });
  assert.equal(result.code, 0, `exec in ${id}: ${result.stderr}`);
  return result.stdout.trim();
}

async function removeAll(c: ContainerdInstance, ids: readonly string[], namespace = c.namespace): Promise<void> {
  for (const id of ids) await c.ctr.removeContainer(id, { namespace, timeoutMs: CTR_TIMEOUT_MS }).catch(() => undefined);
}

describe('grouping: which daemon serves which container', () => {
  const containerd = useContainerd({ extraPath: [TSRUN_BIN_DIR], images: true });

  test('two containers with the same group annotation share one daemon; each works alone, and the daemon exits after the last is deleted', async () => {
    const c = containerd();
    const ns = c.namespace;
    const [first, second] = ['grouped-a', 'grouped-b'] as const;
    try {
      await runDetached(c, first, ['--annotation', `${GROUP_ANNOTATION}=g1`]);
      await runDetached(c, second, ['--annotation', `${GROUP_ANNOTATION}=g1`]);

      // One socket, containerd's SocketAddress for the group key, in both bundles' address files.
      const groupSocket = c.tsrunSocketPath(ns, 'g1');
      assert.equal(shimSocketOf(c, ns, first), groupSocket);
      assert.equal(shimSocketOf(c, ns, second), groupSocket);
      // One process: Connect answers the same daemon pid for both, each with its own init.
      const a = await shimIdentity(c, ns, first);
      const b = await shimIdentity(c, ns, second);
      assert.equal(a.shimPid, b.shimPid, 'one daemon serves both');
      assert.notEqual(a.taskPid, b.taskPid);
      assert.ok(a.taskPid > 0 && b.taskPid > 0);
      const daemons = (await shimDaemons(c)).filter((d) => d.namespace === ns && (d.id === first || d.id === second));
      assert.deepEqual(
        daemons.map((d) => d.pid),
        [a.shimPid],
        `one daemon process, started for the first container: ${describeDaemons(daemons)}`,
      );

      assert.equal(await execEcho(c, first, 'in-a'), 'in-a');
      assert.equal(await execEcho(c, second, 'in-b'), 'in-b');

      // Killing one leaves the other running in the same daemon.
      await c.ctr.ok(['task', 'kill', '--signal', 'SIGKILL', first]);
      await eventually(`${first} turns STOPPED`, async () => (await taskList(c.ctr)).get(first)?.status === 'STOPPED');
      assert.equal((await taskList(c.ctr)).get(second)?.status, 'RUNNING');
      assert.equal(await execEcho(c, second, 'after-kill'), 'after-kill');

      // Deleting the first container (the daemon's own bundle and log fifo, and a Shutdown
      // from containerd) does not end the daemon while the second remains.
      await c.ctr.ok(['task', 'delete', first]);
      await c.ctr.ok(['container', 'delete', first]);
      await sleep(1_000);
      assert.ok(isAlive(a.shimPid), 'the daemon outlives the deletion of one of its containers');
      assert.equal(await execEcho(c, second, 'after-delete'), 'after-delete');
      assert.equal((await shimIdentity(c, ns, second)).shimPid, a.shimPid);

      // The last one deleted: the daemon exits and removes its socket.
      await c.ctr.removeContainer(second, { timeoutMs: CTR_TIMEOUT_MS });
      await eventually(`the group daemon (pid ${a.shimPid}) exits after its last container is deleted`, () => !isAlive(a.shimPid));
      await assertNoTaskLeftovers(c, { namespace: ns, ids: [first, second], sockets: [groupSocket] });
    } finally {
      await removeAll(c, [first, second]);
    }
  });

  test('the namespace policy from runtime options: three containers of a namespace share one daemon, another namespace gets its own', async () => {
    const c = containerd();
    const ns = c.namespace;
    const other = `${ns}-other`;
    const config = join(c.baseDir, 'tsrun-namespace-policy.toml');
    writeFileSync(config, 'GroupPolicy = "namespace"\n');
    const flags = ['--runtime-config-path', config];
    const here = ['ns-1', 'ns-2', 'ns-3'];
    const there = ['ns-4', 'ns-5'];
    try {
      await importTestImages(c.ctr, { namespace: other });
      for (const id of here) await runDetached(c, id, flags);
      for (const id of there) await runDetached(c, id, flags, other);

      const identities = async (namespace: string, ids: readonly string[]): Promise<ShimIdentity[]> =>
        Promise.all(ids.map((id) => shimIdentity(c, namespace, id)));
      const inHere = await identities(ns, here);
      const inThere = await identities(other, there);
      // The group key of the namespace policy is `namespace:<namespace>` (shim/group.ts).
      for (const identity of inHere) {
        assert.equal(identity.socket, c.tsrunSocketPath(ns, `namespace:${ns}`));
        assert.equal(identity.shimPid, inHere[0]?.shimPid, `one daemon for namespace ${ns}`);
      }
      for (const identity of inThere) {
        assert.equal(identity.socket, c.tsrunSocketPath(other, `namespace:${other}`));
        assert.equal(identity.shimPid, inThere[0]?.shimPid, `one daemon for namespace ${other}`);
      }
      assert.notEqual(inHere[0]?.shimPid, inThere[0]?.shimPid, 'each namespace has its own daemon');
      const daemons = await shimDaemons(c);
      assert.equal(daemons.filter((d) => d.namespace === ns).length, 1, describeDaemons(daemons));
      assert.equal(daemons.filter((d) => d.namespace === other).length, 1, describeDaemons(daemons));

      // Every container works, in either namespace.
      for (const id of here) assert.equal(await execEcho(c, id, `hello-${id}`), `hello-${id}`);
      for (const id of there) assert.equal(await execEcho(c, id, `hello-${id}`, other), `hello-${id}`);
      const tasks = await taskList(c.ctr);
      for (const id of here) assert.equal(tasks.get(id)?.status, 'RUNNING', describeTasks(tasks));

      for (const id of here) await c.ctr.removeContainer(id, { timeoutMs: CTR_TIMEOUT_MS });
      await eventually(`the daemon of namespace ${ns} exits`, () => !isAlive(inHere[0]?.shimPid ?? 0));
      assert.ok(isAlive(inThere[0]?.shimPid ?? 0), `the daemon of namespace ${other} is not affected`);
      for (const id of there) await c.ctr.removeContainer(id, { namespace: other, timeoutMs: CTR_TIMEOUT_MS });
      await assertNoTaskLeftovers(c, { namespace: ns, ids: here, sockets: [c.tsrunSocketPath(ns, `namespace:${ns}`)] });
      await assertNoTaskLeftovers(c, { namespace: other, ids: there, sockets: [c.tsrunSocketPath(other, `namespace:${other}`)] });
    } finally {
      await removeAll(c, here);
      await removeAll(c, there, other);
    }
  });
});
