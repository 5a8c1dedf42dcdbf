/**
 * The fast path end to end on a real containerd 1.6 (issue 7; DESIGN.md section 2): the
 * native launcher `bin/containerd-shim-tsrun-v1` forwards `start` and `delete` to a
 * long-lived manager (native/launcher/PROTOCOL.md, shim/manager.ts), which hands each new
 * group's socket to a pre-booted spare daemon (shim/spare.ts).
 *
 * - `ctr run --rm` works through the launcher and leaves one manager;
 * - 20 parallel `ctr run --rm` from no tsrun process at all: all succeed, one manager;
 * - the manager SIGKILLed between two runs: the next run succeeds, a running container
 *   is untouched (still RUNNING, exec works);
 * - the spare is used: a new group's first container is served by a daemon that was
 *   started before that container's start request (process start times, not durations);
 * - with TSRUN_MANAGER=0 in containerd's environment the launcher runs the Node CLI
 *   itself, and the same works with no manager at all.
 * Both containerds carry NODE_* variables that would stop or disturb a Node that boots
 * with them (a --require of a missing file, debug output on stderr, a missing CA bundle):
 * tsrun's Nodes must boot without them (launcher.c exec_node, daemonEnvironment).
 *
 * The whole integration suite runs through the launcher by default; through the direct
 * Node CLI with `TSRUN_MANAGER=0 node --test build/integration/` (containerd inherits the
 * test's environment, and the launcher reads it). TSRUN_FAST_PATH_BIN_DIR points these
 * tests at another directory holding the launcher (a launcher built but not yet installed).
 */
import assert from 'node:assert/strict';
import { closeSync, openSync, readFileSync, readSync, readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, test } from 'node:test';
import { controlSocketPath } from '../shim/manager.js';
import { BUSYBOX_IMAGE, TSRUN_BIN_DIR, isAlive, killAndWait, useContainerd, type ContainerdInstance } from './harness/index.js';
import { eventually } from './support-resilience/poll.js';
import { shimIdentity } from './support-resilience/shim-daemons.js';
import { describeTasks, taskList } from './support-resilience/task-list.js';

const RUNTIME = 'io.containerd.tsrun.v1';
/** A run may boot a Node daemon (no spare ready): seconds on a loaded 2-core box. */
const CTR_TIMEOUT_MS = 120_000;
const BIN_DIR = process.env['TSRUN_FAST_PATH_BIN_DIR'] ?? TSRUN_BIN_DIR;
/**
 * Node's own variables in containerd's environment, each fatal or disturbing to a Node
 * that booted with them: none may reach tsrun's Node processes.
 */
const HOSTILE_NODE_ENV = {
  NODE_OPTIONS: '--require=/nonexistent/tsrun-test-preload.js',
  NODE_DEBUG: 'net,module',
  NODE_EXTRA_CA_CERTS: '/nonexistent/tsrun-test-ca.pem',
};

/** Whether the shim containerd will run is the native launcher (an ELF file), not the Node script. */
function launcherInstalled(): boolean {
  let fd: number | undefined;
  try {
    fd = openSync(join(BIN_DIR, 'containerd-shim-tsrun-v1'), 'r');
    const magic = Buffer.alloc(4);
    readSync(fd, magic, 0, 4, 0);
    return magic.equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]));
  } catch {
    return false;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

const skipLauncher = launcherInstalled()
  ? false
  : `${join(BIN_DIR, 'containerd-shim-tsrun-v1')} is not the native launcher: build it (npm run build, which runs node-gyp for native/launcher and scripts/post-build.mjs)`;

interface TsrunProcess {
  readonly pid: number;
  readonly ppid: number;
  readonly state: string;
  readonly argv: readonly string[];
  readonly role: 'manager' | 'spare' | 'other';
}

/** Live tsrun processes of one containerd: argv holds `-address <its socket>`, and no zombie. */
function tsrunProcesses(c: ContainerdInstance): TsrunProcess[] {
  const found: TsrunProcess[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const argv = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0').filter((a) => a !== '');
      const i = argv.indexOf('-address');
      if (i < 0 || argv[i + 1] !== c.address || fields[0] === 'Z') continue;
      const role = argv.includes('-manager') ? 'manager' : argv.includes('-spare') ? 'spare' : 'other';
      found.push({ pid: Number(name), ppid: Number(fields[1]), state: fields[0] ?? '?', argv, role });
    } catch {
      // Exited while we looked.
    }
  }
  return found;
}

function managers(c: ContainerdInstance): TsrunProcess[] {
  return tsrunProcesses(c).filter((p) => p.role === 'manager');
}

/** Spares still waiting for a group: a spare that adopted one runs in its bundle, an idle one in /. */
function idleSpares(c: ContainerdInstance): TsrunProcess[] {
  return tsrunProcesses(c).filter((p) => p.role === 'spare' && cwdOf(p.pid) === '/');
}

function cwdOf(pid: number): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/cwd`);
  } catch {
    return undefined;
  }
}

/** Field 6 of /proc/<pid>/stat: the session id. */
function sessionOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[3]);
}

/** Field 22 of /proc/<pid>/stat: when the process started, in clock ticks since boot. */
function startTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
}

/** Now in the same clock: /proc/uptime at USER_HZ = 100, Linux's fixed user-visible tick rate. */
function nowTicks(): number {
  return Math.floor(Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]) * 100);
}

/** The manager's log lines (JSON), beside its control socket. */
function managerLog(c: ContainerdInstance): { msg: string; sparePid?: number }[] {
  try {
    return readFileSync(controlSocketPath(c.address).replace(/\.sock$/, '.log'), 'utf8')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as { msg: string; sparePid?: number });
  } catch {
    return [];
  }
}

/** Kills every manager of this containerd (and so its idle spare), and waits until they are gone. */
async function killManagers(c: ContainerdInstance): Promise<void> {
  const pids = managers(c).map((p) => p.pid);
  const alive = await killAndWait(pids);
  assert.deepEqual(alive, [], 'managers survived SIGKILL');
  await eventually('no idle spare left', () => idleSpares(c).length === 0 && managers(c).length === 0);
}

async function runRm(c: ContainerdInstance, id: string, args: readonly string[] = ['echo', `hello from ${id}`]): Promise<string> {
  const result = await c.ctr.run(['run', '--rm', '--runtime', RUNTIME, BUSYBOX_IMAGE, id, ...args], { timeoutMs: CTR_TIMEOUT_MS });
  assert.equal(result.code, 0, `ctr run --rm ${id}: ${result.stderr}`);
  return result.stdout;
}

describe('the fast path: native launcher, manager and spare daemons', { skip: skipLauncher }, () => {
  // Debug: the manager logs each spare it reports ready, which the spare test reads.
  // TSRUN_MANAGER=1: the launcher path even when the suite runs with TSRUN_MANAGER=0.
  const containerd = useContainerd({ extraPath: [BIN_DIR], images: true, env: { ...HOSTILE_NODE_ENV, TSRUN_MANAGER: '1', TSRUN_MANAGER_LOG_LEVEL: 'debug' } });

  test('20 parallel ctr run --rm from no tsrun process at all: every one succeeds, and exactly one manager exists afterwards', async () => {
    const c = containerd();
    await killManagers(c);
    assert.deepEqual(tsrunProcesses(c), [], 'no tsrun process before the burst');
    const ids = Array.from({ length: 20 }, (_, i) => `burst-${i}`);
    const outputs = await Promise.all(ids.map((id) => runRm(c, id)));
    assert.deepEqual(
      outputs.map((o) => o.trim()),
      ids.map((id) => `hello from ${id}`),
    );
    const found = managers(c);
    assert.equal(found.length, 1, `one manager: ${found.map((p) => `${p.pid} ${p.argv.join(' ')}`).join('; ')}`);
    assert.deepEqual(await taskList(c.ctr).then((t) => [...t.keys()]), [], 'no task is left');
  });

  test('ctr run --rm works through the launcher, and a manager serves this containerd', async () => {
    const c = containerd();
    assert.equal((await runRm(c, 'plain')).trim(), 'hello from plain');
    const [manager] = managers(c);
    assert.ok(manager !== undefined, 'the launcher started a manager');
    assert.equal(readlinkSync(`/proc/${manager.pid}/cwd`), '/', 'the manager pins no bundle');
    // It runs in a session of its own, outside containerd's, and is not containerd's child.
    assert.notEqual(sessionOf(manager.pid), sessionOf(c.pid ?? 0));
    assert.notEqual(manager.ppid, c.pid);
  });

  test('the manager SIGKILLed between two ctr run --rm: the next succeeds, and a running container is untouched', async () => {
    const c = containerd();
    const keeper = 'keeper';
    try {
      await c.ctr.ok(['run', '-d', '--runtime', RUNTIME, BUSYBOX_IMAGE, keeper, 'sleep', '3600'], { timeoutMs: CTR_TIMEOUT_MS });
      const daemon = (await shimIdentity(c, c.namespace, keeper)).shimPid;
      await runRm(c, 'before-kill');
      const [manager] = managers(c);
      assert.ok(manager !== undefined, 'a manager serves');
      await killManagers(c);

      assert.equal((await runRm(c, 'after-kill')).trim(), 'hello from after-kill');
      const [next] = managers(c);
      assert.ok(next !== undefined && next.pid !== manager.pid, 'a new manager was started');

      const tasks = await taskList(c.ctr);
      assert.equal(tasks.get(keeper)?.status, 'RUNNING', describeTasks(tasks));
      assert.ok(isAlive(daemon), `the keeper's daemon ${daemon} survived its manager`);
      const exec = await c.ctr.run(['task', 'exec', '--exec-id', 'probe', keeper, 'echo', 'still here'], { timeoutMs: CTR_TIMEOUT_MS });
      assert.equal(exec.code, 0, exec.stderr);
      assert.equal(exec.stdout.trim(), 'still here');
    } finally {
      await c.ctr.removeContainer(keeper, { timeoutMs: CTR_TIMEOUT_MS }).catch(() => undefined);
    }
  });

  test("the spare is used: a new group's first container is served by a daemon started before its start request", async () => {
    const c = containerd();
    const ids = ['first-group', 'second-group'];
    try {
      await c.ctr.ok(['run', '-d', '--runtime', RUNTIME, BUSYBOX_IMAGE, ids[0]!, 'sleep', '3600'], { timeoutMs: CTR_TIMEOUT_MS });
      // A spare the manager reported ready and that still waits (its cwd is /, not a bundle).
      let spare: number | undefined;
      await eventually('a ready spare waits for the next group', () => {
        const ready = managerLog(c)
          .filter((l) => l.msg === 'spare ready')
          .map((l) => l.sparePid ?? 0);
        spare = ready.find((pid) => idleSpares(c).some((p) => p.pid === pid));
        return spare !== undefined;
      });
      const requestedAt = nowTicks();
      await sleep(20); // one tick and more: "before the request" cannot be a rounding artefact
      await c.ctr.ok(['run', '-d', '--runtime', RUNTIME, BUSYBOX_IMAGE, ids[1]!, 'sleep', '3600'], { timeoutMs: CTR_TIMEOUT_MS });
      const served = (await shimIdentity(c, c.namespace, ids[1]!)).shimPid;
      assert.equal(served, spare, 'the waiting spare serves the new group');
      assert.ok(startTicks(served) < requestedAt, `the daemon started at tick ${startTicks(served)}, before the request at tick ${requestedAt}`);
      assert.notEqual(served, (await shimIdentity(c, c.namespace, ids[0]!)).shimPid, 'a group of its own');
    } finally {
      for (const id of ids) await c.ctr.removeContainer(id, { timeoutMs: CTR_TIMEOUT_MS }).catch(() => undefined);
    }
  });
});

describe('the direct path: TSRUN_MANAGER=0 makes the launcher run the Node CLI', { skip: skipLauncher }, () => {
  const containerd = useContainerd({ extraPath: [BIN_DIR], images: true, env: { ...HOSTILE_NODE_ENV, TSRUN_MANAGER: '0' } });

  test('ctr run --rm works with no manager at all', async () => {
    const c = containerd();
    assert.equal((await runRm(c, 'direct')).trim(), 'hello from direct');
    const detached = 'direct-detached';
    try {
      await c.ctr.ok(['run', '-d', '--runtime', RUNTIME, BUSYBOX_IMAGE, detached, 'sleep', '3600'], { timeoutMs: CTR_TIMEOUT_MS });
      const tasks = await taskList(c.ctr);
      assert.equal(tasks.get(detached)?.status, 'RUNNING', describeTasks(tasks));
    } finally {
      await c.ctr.removeContainer(detached, { timeoutMs: CTR_TIMEOUT_MS }).catch(() => undefined);
    }
    assert.deepEqual(
      tsrunProcesses(c).filter((p) => p.role !== 'other'),
      [],
      'neither a manager nor a spare was started',
    );
  });
});
