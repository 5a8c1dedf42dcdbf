/**
 * tsrun under crashes, end to end on a real containerd 1.6 (issue 5; facts 2.6 and 3.7):
 *
 * - containerd killed with SIGKILL and restarted while tasks run: it reconnects to each
 *   daemon through `<bundle>/address` (two of the tasks share one daemon), the tasks are
 *   still RUNNING, killable, their exits are delivered, and they delete without leaving
 *   anything behind; a daemon that logged while nobody read its `log` fifo logs again;
 * - a container that exits while containerd is down (containerd#6771): within the event
 *   publisher's retry budget the exit is forwarded once containerd is back; past it the
 *   event is lost but the state is not: State says STOPPED with the exit status and
 *   delete works;
 * - a shim daemon killed with SIGKILL: containerd runs `containerd-shim-tsrun-v1 delete`,
 *   which kills the container and unmounts its rootfs; another group's daemon and
 *   container are untouched, and the same container can be started again.
 *
 * containerd runs at debug level: it then logs each event a shim forwards, which proves
 * a delivery without racing an event subscription against the daemon's retries.
 */
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, test } from 'node:test';
import {
  BUSYBOX_IMAGE,
  RUNC_ROOT,
  TSRUN_BIN_DIR,
  createContainerdGrpcClient,
  decodeAny,
  isAlive,
  mountsUnder,
  useContainerd,
  type ContainerdInstance,
  type Envelope,
} from './harness/index.js';
import { forwardedEvents, logOffset, logSince, shimLogLines } from './support-resilience/containerd-log.js';
import { assertNoTaskLeftovers } from './support-resilience/leftovers.js';
import { eventually } from './support-resilience/poll.js';
import { bundleDir, shimDaemons, shimIdentity, shimSocketOf } from './support-resilience/shim-daemons.js';
import { describeTasks, taskList } from './support-resilience/task-list.js';

const RUNTIME = 'io.containerd.tsrun.v1';
/** Starting a task boots a Node daemon: seconds on a loaded 2-core box. */
const CTR_TIMEOUT_MS = 60_000;
/**
 * The daemon's publisher retries an event 1, 2, 3, 4 and 5 s after failures (shim/publisher.ts),
 * so it gives up about 15 s after the first attempt; staying down longer than this loses the event.
 */
const PAST_RETRY_BUDGET_MS = 18_000;

/** A task that exits with `status` on SIGTERM (sh as pid 1 ignores TERM unless trapped). */
function trapping(status: number): string[] {
  return ['sh', '-c', `trap "exit ${status}" TERM; while :; do sleep 1; done`];
}

/** A task that exits with `status` once the host creates /tmp/exit-now in its rootfs. */
function exitingOnSignalFile(status: number): string[] {
  return ['sh', '-c', `while [ ! -e /tmp/exit-now ]; do sleep 0.1; done; exit ${status}`];
}

async function runDetached(c: ContainerdInstance, id: string, args: readonly string[], flags: readonly string[] = []): Promise<void> {
  await c.ctr.ok(['run', '-d', '--runtime', RUNTIME, ...flags, BUSYBOX_IMAGE, id, ...args], { timeoutMs: CTR_TIMEOUT_MS });
}

/** Makes an {@link exitingOnSignalFile} task exit, through its rootfs as the host sees it. */
function signalExit(c: ContainerdInstance, id: string): void {
  writeFileSync(join(bundleDir(c, c.namespace, id), 'rootfs', 'tmp', 'exit-now'), '');
}

function exitOf(id: string): (envelope: Envelope) => boolean {
  return (envelope) => envelope.topic === '/tasks/exit' && envelope.event !== null && decodeAny(envelope.event)['container_id'] === id;
}

/**
 * Removes the tasks and containers a test made, whatever state they are in (for `finally`);
 * starts containerd again first if the test failed while it was down, so the next test has one.
 */
async function removeAll(c: ContainerdInstance, ids: readonly string[]): Promise<void> {
  if (!c.running) await c.start().catch(() => undefined);
  for (const id of ids) await c.ctr.removeContainer(id, { timeoutMs: CTR_TIMEOUT_MS }).catch(() => undefined);
}

describe('tsrun survives containerd and shim crashes', () => {
  const containerd = useContainerd({ extraPath: [TSRUN_BIN_DIR], images: true, logLevel: 'debug' });

  test('containerd SIGKILLed and restarted while five tasks run: they stay RUNNING, are killable, their exits are delivered, an exit during the outage is forwarded, and nothing is left', async () => {
    const c = containerd();
    const ns = c.namespace;
    const live = [1, 2, 3, 4, 5].map((i) => `live-${i}`);
    // The last two share a daemon (started at the same time): after the restart containerd
    // reconnects to it once per task, through two address files naming one socket.
    const paired = new Set(['live-4', 'live-5']);
    const offline = 'exits-offline';
    const ids = [...live, offline];
    try {
      await Promise.all(live.map((id, i) => runDetached(c, id, trapping(11 + i), paired.has(id) ? ['--annotation', 'io.containerd.tsrun.v1.group=pair'] : [])));
      await runDetached(c, offline, exitingOnSignalFile(7));
      const before = await taskList(c.ctr);
      for (const id of ids) assert.equal(before.get(id)?.status, 'RUNNING', `before the crash: ${describeTasks(before)}`);
      const daemonPids = new Map<string, number>();
      for (const id of ids) daemonPids.set(id, (await shimIdentity(c, ns, id)).shimPid);
      assert.equal(daemonPids.get('live-4'), daemonPids.get('live-5'), 'the paired tasks share a daemon');
      assert.equal(new Set(daemonPids.values()).size, ids.length - 1, 'every other task has a daemon of its own');
      const offlinePid = before.get(offline)?.pid ?? 0;

      await c.kill();
      signalExit(c, offline);
      await eventually(`the init of ${offline} (pid ${offlinePid}) exits while containerd is down`, () => !isAlive(offlinePid));
      // The daemon's first forward fails now and is retried 1, 3, 6, 10 and 15 s later:
      // a few seconds down is the short outage the retries are for.
      await sleep(4_000);
      const restartedAt = logOffset(c);
      await c.start();

      // The daemons did not notice: same processes, same tasks.
      for (const [id, pid] of daemonPids) assert.ok(isAlive(pid), `the daemon of ${id} (pid ${pid}) survived containerd's crash`);
      const after = await taskList(c.ctr);
      for (const id of live) {
        assert.equal((await shimIdentity(c, ns, id)).shimPid, daemonPids.get(id), `${id} is served by the same daemon`);
        assert.equal(after.get(id)?.status, 'RUNNING', `after the restart: ${describeTasks(after)}`);
        assert.equal(after.get(id)?.pid, before.get(id)?.pid, `${id} kept its init pid`);
      }
      assert.equal(after.get(offline)?.status, 'STOPPED', `the exit during the outage is visible: ${describeTasks(after)}`);

      // The exit the daemon could not send while containerd was down goes out on a retry.
      await eventually(
        `containerd logs the /tasks/exit of ${offline} forwarded by its daemon after the restart`,
        () => forwardedEvents(logSince(c, restartedAt), ns, '/tasks/exit').length === 1,
        { timeoutMs: 20_000, detail: () => forwardedEvents(logSince(c, restartedAt), ns, '/tasks/exit').join('\n') || '(none)' },
      );

      const grpc = createContainerdGrpcClient(c.address, ns);
      const exits = await grpc.subscribe(['topic=="/tasks/exit"']);
      try {
        const offlineState = await grpc.tasks.get(offline);
        assert.equal(offlineState.status, 'STOPPED');
        assert.equal(offlineState.exit_status, 7, 'the exit status of the task that exited during the outage');

        // Every live task is killable through the reconnected daemons, and its exit arrives
        // through Wait and as an event, with the status its trap chose.
        const waits = live.map((id) => grpc.tasks.wait(id, '', { timeoutMs: 60_000 }));
        for (const id of live) await c.ctr.ok(['task', 'kill', id]);
        const statuses = await Promise.all(waits);
        assert.deepEqual(
          statuses.map((s) => s.exit_status),
          live.map((_, i) => 11 + i),
        );
        for (const [i, id] of live.entries()) {
          const event = await exits.waitFor(exitOf(id), 20_000);
          assert.ok(event.event !== null);
          assert.equal(decodeAny(event.event)['exit_status'], 11 + i, `the /tasks/exit event of ${id}`);
        }
        const stopped = await taskList(c.ctr);
        for (const id of ids) assert.equal(stopped.get(id)?.status, 'STOPPED', describeTasks(stopped));
      } finally {
        exits.close();
        grpc.close();
      }

      // `ctr task delete` reports each exit status (as a warning when it is not zero).
      for (const [i, id] of live.entries()) {
        const deleted = await c.ctr.run(['task', 'delete', id], { timeoutMs: CTR_TIMEOUT_MS });
        assert.equal(deleted.code, 0, deleted.stderr);
        assert.match(deleted.stderr, new RegExp(`task ${id} exit with non-zero exit code ${11 + i}`));
      }
      const deleted = await c.ctr.run(['task', 'delete', offline], { timeoutMs: CTR_TIMEOUT_MS });
      assert.equal(deleted.code, 0, deleted.stderr);
      assert.match(deleted.stderr, new RegExp(`task ${offline} exit with non-zero exit code 7`));
      for (const id of ids) await c.ctr.ok(['container', 'delete', id]);

      const sockets = [...ids.filter((id) => !paired.has(id)), 'pair'].map((group) => c.tsrunSocketPath(ns, group));
      await assertNoTaskLeftovers(c, { namespace: ns, ids, sockets });

      // The daemon of the exited task logged while nobody read its `log` fifo (EPIPE); once
      // containerd reopened the fifo its lines arrive again, down to its last one.
      const offlineDaemon = daemonPids.get(offline);
      const offlineLines = shimLogLines(logSince(c, restartedAt)).filter((line) => line['pid'] === offlineDaemon);
      assert.ok(
        offlineLines.some((line) => line['msg'] === 'daemon exiting'),
        `the daemon of ${offline} (pid ${offlineDaemon}) logs again after the restart; its lines since: ${JSON.stringify(offlineLines.map((l) => l['msg']))}`,
      );
    } finally {
      await removeAll(c, ids);
    }
  });

  test('a container that exits while containerd is down longer than the retry budget: State still reports STOPPED with its status, and delete works', async () => {
    const c = containerd();
    const ns = c.namespace;
    const id = 'exits-long-outage';
    try {
      await runDetached(c, id, exitingOnSignalFile(9));
      const pid = (await taskList(c.ctr)).get(id)?.pid ?? 0;
      const { shimPid } = await shimIdentity(c, ns, id);

      await c.kill();
      signalExit(c, id);
      await eventually(`the init of ${id} (pid ${pid}) exits while containerd is down`, () => !isAlive(pid));
      await sleep(PAST_RETRY_BUDGET_MS);
      const restartedAt = logOffset(c);
      await c.start();

      assert.ok(isAlive(shimPid), 'the daemon waits for containerd, whatever became of the event');
      const tasks = await taskList(c.ctr);
      assert.equal(tasks.get(id)?.status, 'STOPPED', describeTasks(tasks));
      const grpc = createContainerdGrpcClient(c.address, ns);
      try {
        const state = await grpc.tasks.get(id);
        assert.equal(state.exit_status, 9);
        // Wait answers at once for a process that already exited.
        assert.equal((await grpc.tasks.wait(id, '', { timeoutMs: 10_000 })).exit_status, 9);
      } finally {
        grpc.close();
      }
      const deleted = await c.ctr.run(['task', 'delete', id], { timeoutMs: CTR_TIMEOUT_MS });
      assert.equal(deleted.code, 0, deleted.stderr);
      assert.match(deleted.stderr, new RegExp(`task ${id} exit with non-zero exit code 9`));
      await c.ctr.ok(['container', 'delete', id]);
      // The given-up exit event was never forwarded; the delete event was.
      await eventually('containerd logs the /tasks/delete forwarded after the restart', () => forwardedEvents(logSince(c, restartedAt), ns, '/tasks/delete').length === 1);
      assert.deepEqual(forwardedEvents(logSince(c, restartedAt), ns, '/tasks/exit'), [], 'no exit event arrives after the retry budget');

      await assertNoTaskLeftovers(c, { namespace: ns, ids: [id], sockets: [c.tsrunSocketPath(ns, id)] });
    } finally {
      await removeAll(c, [id]);
    }
  });

  test('a shim daemon SIGKILLed: containerd cleans up through `delete`, the container and its mount are gone, another group is unaffected, and the container starts again', async () => {
    const c = containerd();
    const ns = c.namespace;
    const victim = 'shim-victim';
    const bystander = 'shim-bystander';
    try {
      await runDetached(c, victim, ['sleep', '3600']);
      await runDetached(c, bystander, ['sleep', '3600']);
      const victimShim = await shimIdentity(c, ns, victim);
      const bystanderShim = await shimIdentity(c, ns, bystander);
      assert.notEqual(victimShim.shimPid, bystanderShim.shimPid, 'two groups, two daemons');
      const daemon = (await shimDaemons(c)).find((d) => d.pid === victimShim.shimPid);
      assert.ok(daemon !== undefined && daemon.id === victim, `Connect's shim pid ${victimShim.shimPid} is the daemon started for ${victim}`);
      const rootfs = join(bundleDir(c, ns, victim), 'rootfs');
      assert.equal((await mountsUnder(rootfs)).length, 1, 'the victim rootfs is mounted');

      const grpc = createContainerdGrpcClient(c.address, ns);
      const exits = await grpc.subscribe(['topic=="/tasks/exit"']);
      const killedAt = logOffset(c);
      try {
        process.kill(victimShim.shimPid, 'SIGKILL');
        // containerd sees the connection close, runs `containerd-shim-tsrun-v1 delete` and
        // publishes the exit itself with the status that delete answered: 128 + SIGKILL.
        const event = await exits.waitFor(exitOf(victim), 20_000);
        assert.ok(event.event !== null);
        assert.equal(decodeAny(event.event)['exit_status'], 137);
      } finally {
        exits.close();
        grpc.close();
      }

      await eventually(`the victim's init (pid ${victimShim.taskPid}) is gone`, () => !isAlive(victimShim.taskPid));
      await eventually(`nothing is mounted at ${rootfs}`, async () => (await mountsUnder(rootfs)).length === 0);
      await eventually('the victim has no runc state left', () => !existsSync(join(RUNC_ROOT, ns, victim)));
      const tasks = await taskList(c.ctr);
      const left = tasks.get(victim);
      assert.ok(left === undefined || left.status === 'STOPPED', `the victim's task is gone or STOPPED: ${describeTasks(tasks)}`);
      assert.match(logSince(c, killedAt), new RegExp(`cleaning up after shim disconnected" id=${victim} `));

      // The other group's daemon never noticed.
      assert.ok(isAlive(bystanderShim.shimPid), 'the other daemon still runs');
      assert.equal(tasks.get(bystander)?.status, 'RUNNING', describeTasks(tasks));
      const exec = await c.ctr.run(['task', 'exec', '--exec-id', 'probe', bystander, 'sh', '-c', 'echo still-serving; exit 5'], { timeoutMs: CTR_TIMEOUT_MS });
      assert.equal(exec.stdout.trim(), 'still-serving');
      assert.equal(exec.code, 5, `ctr task exec reports the exec's exit status: ${exec.stderr}`);

      // The dead daemon's socket is still there; a new start of the same group replaces it.
      assert.equal(shimSocketOf(c, ns, bystander), bystanderShim.socket);
      if (left !== undefined) await c.ctr.ok(['task', 'delete', victim]);
      await c.ctr.ok(['task', 'start', '-d', victim], { timeoutMs: CTR_TIMEOUT_MS });
      const again = await shimIdentity(c, ns, victim);
      assert.equal(again.socket, victimShim.socket, 'the same group socket');
      assert.notEqual(again.shimPid, victimShim.shimPid, 'served by a new daemon');
      assert.equal((await taskList(c.ctr)).get(victim)?.status, 'RUNNING');

      for (const id of [victim, bystander]) await c.ctr.removeContainer(id, { timeoutMs: CTR_TIMEOUT_MS });
      await assertNoTaskLeftovers(c, { namespace: ns, ids: [victim, bystander], sockets: [victimShim.socket, bystanderShim.socket] });
    } finally {
      await removeAll(c, [victim, bystander]);
    }
  });
});
