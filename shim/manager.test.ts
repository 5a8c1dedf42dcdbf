/**
 * The manager as the launcher meets it: a real `node main.js -manager` process on its
 * real control socket, driven by a Node client speaking PROTOCOL.md, with real spares
 * and real group daemons (no containerd: the daemons serve bundles made here).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createProcessMonitor, type MonitoredChild } from '../core/index.js';
import { loadNative } from '../native/index.js';
import { connect, createServiceClient } from '../ttrpc/index.js';
import { createLogger, createLogSink } from './log.js';
import { encodeRequest, environmentEntries, MAX_FRAME_BYTES, type LauncherRequest, type LauncherResponse } from './launcher-protocol.js';
import { callManager, exchange } from './manager-client.js';
import { controlSocketPath } from './manager.js';
import { TaskService } from './task-service.js';

const native = loadNative();
const quiet = createLogger('fatal', createLogSink(2, { attached: true }));
/** The test's own reaper for the managers it starts. */
const monitor = createProcessMonitor(native, quiet);
const mainJs = fileURLToPath(new URL('./main.js', import.meta.url));
const text = (bytes: Uint8Array): string => Buffer.from(bytes).toString();

interface Fixture {
  readonly root: string;
  /** The containerd address the manager serves (nothing listens there: no containerd is needed). */
  readonly address: string;
  readonly socket: string;
  readonly log: string;
}

function fixture(t: { after(fn: () => Promise<void> | void): void }): Fixture {
  const root = mkdtempSync(join(tmpdir(), 'tsrun-mgr-'));
  const address = join(root, 'containerd.sock');
  const socket = controlSocketPath(address);
  const log = socket.replace(/\.sock$/, '.log');
  const daemons: number[] = [];
  t.after(async () => {
    // Whatever this test's manager started (spares, daemons) and the manager itself.
    for (const p of processesFor(address)) daemons.push(p.pid);
    for (const pid of daemons) kill(pid, 'SIGKILL');
    await waitFor(() => processesFor(address).length === 0, 'every process of the test gone', 5000).catch(() => undefined);
    for (const name of readdirSync('/run/containerd/s')) {
      // Group sockets of this test's address: a SIGKILLed daemon leaves its socket.
      if (groupSockets.has(name)) rmSync(join('/run/containerd/s', name), { force: true });
    }
    rmSync(socket, { force: true });
    rmSync(log, { force: true });
    rmSync(root, { recursive: true, force: true });
  });
  return { root, address, socket, log };
}

/** Group socket names seen by the tests (removed at cleanup). */
const groupSockets = new Set<string>();

interface RunningManager {
  readonly child: MonitoredChild;
}

function spawnManager(f: Fixture, env: Record<string, string> = {}, extraArgs: readonly string[] = []): RunningManager {
  const child = monitor.spawn({
    file: process.execPath,
    args: [process.execPath, mainJs, '-manager', '-address', f.address, ...extraArgs],
    env: environmentEntries({ ...process.env, TSRUN_MANAGER_LOG_LEVEL: 'debug', ...env }),
    fds: [-1, -1, -1],
    setsid: true,
  });
  return { child };
}

async function waitFor(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await condition()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function request(argv: string[], cwd = '/', stdin: Uint8Array = new Uint8Array(0)): LauncherRequest {
  return { argv, env: environmentEntries({ PATH: process.env['PATH'] ?? '/usr/bin:/bin', TSRUN_TEST: '1' }), cwd, parentPid: process.pid, stdin };
}

async function answersVersion(f: Fixture): Promise<boolean> {
  try {
    return (await callManager(f.socket, request(['-v']), 2000)).exitCode === 0;
  } catch {
    return false;
  }
}

interface LogLine {
  readonly msg: string;
  readonly sparePid?: number;
  readonly [key: string]: unknown;
}

function logLines(f: Fixture): LogLine[] {
  try {
    return readFileSync(f.log, 'utf8')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as LogLine);
  } catch {
    return [];
  }
}

/** Pids of spares the manager reported ready, in order. */
function readySpares(f: Fixture): number[] {
  return logLines(f)
    .filter((l) => l.msg === 'spare ready')
    .map((l) => l.sparePid ?? 0);
}

interface ProcessInfo {
  readonly pid: number;
  readonly ppid: number;
  readonly state: string;
  readonly argv: string[];
}

function processInfo(pid: number): ProcessInfo | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const after = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((a) => a !== '');
    return { pid, state: after[0] ?? '?', ppid: Number(after[1]), argv };
  } catch {
    return undefined;
  }
}

/** Live (non-zombie) processes whose argv carries `-address <address>`: the manager, spares, daemons. */
function processesFor(address: string): ProcessInfo[] {
  const found: ProcessInfo[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const info = processInfo(Number(name));
    if (info === undefined || info.state === 'Z') continue;
    const i = info.argv.indexOf('-address');
    if (i >= 0 && info.argv[i + 1] === address) found.push(info);
  }
  return found;
}

/** Field 19 of /proc/<pid>/task/<tid>/stat: the nice value of one thread. */
function niceOf(pid: number, tid: number | string): number {
  const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
}

/** The nice value of every thread of `pid`. */
function niceValues(pid: number): number[] {
  return readdirSync(`/proc/${pid}/task`).map((tid) => niceOf(pid, tid));
}

/** Field 22 of /proc/<pid>/stat: when the process started, in clock ticks since boot. */
function startTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
}

/** Now, in the same clock: /proc/uptime at USER_HZ = 100 (Linux's fixed user-visible tick). */
function nowTicks(): number {
  return Math.floor(Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]) * 100);
}

function kill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // Gone.
  }
}

function makeBundle(f: Fixture, id: string): string {
  const bundle = join(f.root, id);
  mkdirSync(bundle, { recursive: true });
  writeFileSync(join(bundle, 'config.json'), JSON.stringify({ ociVersion: '1.0.2', annotations: {} }));
  return bundle;
}

async function startGroup(f: Fixture, id: string): Promise<{ response: LauncherResponse; socket: string; bundle: string }> {
  const bundle = makeBundle(f, id);
  const response = await callManager(f.socket, request(['-namespace', 'ns', '-address', f.address, '-id', id, 'start'], bundle));
  assert.equal(response.exitCode, 0, text(response.stderr));
  const address = text(response.stdout);
  assert.match(address, /^unix:\/\/\/run\/containerd\/s\/[0-9a-f]{64}$/);
  const socket = address.slice('unix://'.length);
  groupSockets.add(socket.slice('/run/containerd/s/'.length));
  return { response, socket, bundle };
}

/** Task/Connect on a group socket: the pid of the daemon serving it. Then Shutdown, so it exits (it has no container). */
async function connectThenShutdown(socket: string, id: string): Promise<number> {
  const client = await connect(socket);
  try {
    const task = createServiceClient(client, 'containerd.task.v2.Task', TaskService);
    const { shimPid } = await task.Connect({ id }, { timeoutMs: 10_000 });
    await task.Shutdown({ id, now: false }, { timeoutMs: 10_000 });
    return shimPid;
  } finally {
    await client.close();
  }
}

test('start through the manager: the booted spare adopts the group socket, a new spare boots, the daemon is reaped', async (t) => {
  const f = fixture(t);
  const manager = spawnManager(f);
  await waitFor(() => readySpares(f).length === 1, 'the first spare ready');
  const spare = readySpares(f)[0]!;
  assert.equal(processInfo(spare)?.ppid, manager.child.pid, 'the manager is the spare parent');
  // Root here has CAP_SYS_NICE: the spare boots niced, out of the way of running containers.
  // (Its main thread: a helper thread Node made before the renice keeps nice 0.)
  assert.equal(niceOf(spare, spare), 10, `a waiting spare runs at nice 10: ${niceValues(spare).join(',')}`);

  const requestedAt = nowTicks();
  const { socket, bundle } = await startGroup(f, 'c1');
  assert.equal(readFileSync(join(bundle, 'address'), 'utf8'), `unix://${socket}`);

  const info = processInfo(spare);
  assert.ok(info !== undefined && info.state !== 'Z', 'the spare runs on as the daemon');
  assert.ok(startTicks(spare) < requestedAt, `the daemon started (tick ${startTicks(spare)}) before the request (tick ${requestedAt})`);
  assert.equal(readlinkSync(`/proc/${spare}/cwd`), bundle, 'the daemon runs in the first bundle');
  assert.equal(readFileSync(`/proc/${spare}/stat`, 'utf8').split(') ')[1]?.split(' ')[3], String(spare), 'it leads its own session');
  assert.deepEqual(new Set(niceValues(spare)), new Set([0]), 'every thread of the daemon is back at nice 0');

  await waitFor(() => readySpares(f).length === 2, 'a new spare ready');
  assert.notEqual(readySpares(f)[1], spare);

  assert.equal(await connectThenShutdown(socket, 'c1'), spare, 'the former spare serves the Task API');
  // It exits after Shutdown; the manager, its parent, must reap it: no zombie is left.
  await waitFor(() => processInfo(spare) === undefined, `daemon ${spare} reaped (state now ${processInfo(spare)?.state ?? 'gone'})`);
  assert.equal(existsSync(socket), false, 'the daemon removed its socket');

  kill(manager.child.pid, 'SIGTERM');
  await manager.child.exited;
  assert.equal(existsSync(f.socket), false, 'the manager removed its socket');
  await waitFor(() => processesFor(f.address).length === 0, 'the idle spare left with its manager');
});

test('with no spare ready the manager spawns the daemon itself, and reaps it', async (t) => {
  const f = fixture(t);
  const manager = spawnManager(f, { TSRUN_MANAGER_SPARE: '0' });
  await waitFor(() => answersVersion(f), 'the manager answers');
  const requestedAt = nowTicks();
  const { socket } = await startGroup(f, 'c2');
  const pid = await connectThenShutdown(socket, 'c2');
  assert.equal(processInfo(pid)?.ppid, manager.child.pid);
  assert.ok(startTicks(pid) >= requestedAt, 'a fresh daemon, started for this request');
  await waitFor(() => processInfo(pid) === undefined, `daemon ${pid} reaped`);
  assert.deepEqual(readySpares(f), [], 'no spare with TSRUN_MANAGER_SPARE=0');
  kill(manager.child.pid, 'SIGTERM');
  await manager.child.exited;
});

test('malformed, oversized and truncated requests get exit code 2 and a sentence; the manager keeps serving', async (t) => {
  const f = fixture(t);
  const manager = spawnManager(f, { TSRUN_MANAGER_SPARE: '0' });
  await waitFor(() => answersVersion(f), 'the manager answers');

  const garbage = await exchange(f.socket, Buffer.concat([Buffer.from([0, 0, 0, 5]), Buffer.from('hello')]));
  assert.equal(garbage.exitCode, 2);
  assert.match(text(garbage.stderr), /malformed request: bad magic 0x68656c6c/);

  const oversized = Buffer.alloc(4);
  oversized.writeUInt32BE(MAX_FRAME_BYTES + 1);
  const refused = await exchange(f.socket, oversized);
  assert.equal(refused.exitCode, 2);
  assert.match(text(refused.stderr), /request frame of 16777217 bytes is over the 16777216-byte limit/);

  const frame = encodeRequest(request(['-v']));
  const truncated = await new Promise<Buffer>((resolve, reject) => {
    const socket = netConnect(f.socket, () => {
      socket.end(frame.subarray(0, frame.length - 3));
    });
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('end', () => {
      resolve(Buffer.concat(chunks));
    });
    socket.on('error', reject);
  });
  assert.match(truncated.toString('latin1'), /the request ended before its frame was complete/);

  // An unknown action is the CLI's own answer, through the same runAction.
  const unknown = await callManager(f.socket, request(['-namespace', 'ns', '-id', 'x', 'frobnicate']));
  assert.equal(unknown.exitCode, 2);
  assert.match(text(unknown.stderr), /unknown action 'frobnicate'/);

  for (let i = 0; i < 20; i++) {
    const bytes = Buffer.from(Array.from({ length: 1 + ((i * 37) % 200) }, (_, j) => (i * 131 + j * 7) % 256));
    await exchange(f.socket, Buffer.concat([Buffer.from([0, 0, 0, bytes.length]), bytes])).then(
      (answer) => {
        assert.equal(answer.exitCode, 2);
      },
      () => undefined,
    );
  }
  const version = await callManager(f.socket, request(['-v']));
  assert.equal(version.exitCode, 0);
  assert.match(text(version.stdout), /io\.containerd\.tsrun\.v1/);
  assert.equal(processInfo(manager.child.pid)?.state !== 'Z', true, 'still running');
  kill(manager.child.pid, 'SIGTERM');
  await manager.child.exited;
});

test('idle exit: the manager leaves after the idle time; the daemon it launched runs on', async (t) => {
  const f = fixture(t);
  const manager = spawnManager(f, { TSRUN_MANAGER_IDLE_MS: '1500' });
  await waitFor(() => readySpares(f).length === 1, 'the first spare ready');
  const { socket } = await startGroup(f, 'c3');
  const daemon = readySpares(f)[0]!;

  const status = await manager.child.exited;
  assert.deepEqual(status, { kind: 'exited', code: 0 });
  assert.equal(existsSync(f.socket), false, 'the control socket is removed');
  assert.equal(existsSync(f.log), false, 'a clean exit with nothing worse than info logged removes the log');
  await waitFor(() => processesFor(f.address).every((p) => p.pid === daemon), 'the idle spare gone');
  assert.equal(await connectThenShutdown(socket, 'c3'), daemon, 'the daemon outlived its manager and still serves');
});

test('a second manager for a live socket exits 0 at once; a dead socket is replaced', async (t) => {
  const f = fixture(t);
  const first = spawnManager(f, { TSRUN_MANAGER_SPARE: '0' });
  await waitFor(() => answersVersion(f), 'the first manager answers');
  const second = spawnManager(f, { TSRUN_MANAGER_SPARE: '0' });
  assert.deepEqual(await second.child.exited, { kind: 'exited', code: 0 });
  assert.ok(await answersVersion(f), 'the first still serves');

  kill(first.child.pid, 'SIGKILL');
  await first.child.exited;
  assert.ok(existsSync(f.socket), 'a killed manager leaves its socket file');
  assert.equal(await answersVersion(f), false);
  const third = spawnManager(f, { TSRUN_MANAGER_SPARE: '0' });
  await waitFor(() => answersVersion(f), 'the replacement answers');
  kill(third.child.pid, 'SIGTERM');
  await third.child.exited;
});

test('a SIGTERM the moment the socket file appears (still booting) stops the manager cleanly: no socket left', async (t) => {
  const f = fixture(t);
  const manager = spawnManager(f, { TSRUN_MANAGER_SPARE: '0' });
  while (!existsSync(f.socket)) await new Promise((resolve) => setImmediate(resolve));
  kill(manager.child.pid, 'SIGTERM');
  assert.deepEqual(await manager.child.exited, { kind: 'exited', code: 0 });
  assert.equal(existsSync(f.socket), false, 'the socket was removed');
});

test('-spare-pid naming a process that is not its child is refused: that process is left alone, a spare is booted', async (t) => {
  const f = fixture(t);
  // This test process: alive, and certainly not the manager's child.
  const manager = spawnManager(f, {}, ['-spare-pid', String(process.pid)]);
  await waitFor(() => readySpares(f).length === 1, 'a spare of its own ready');
  assert.notEqual(readySpares(f)[0], process.pid);
  assert.ok(logLines(f).some((l) => l.msg === 'ignoring -spare-pid: not a child of this manager; booting a spare'));
  kill(manager.child.pid, 'SIGTERM');
  assert.deepEqual(await manager.child.exited, { kind: 'exited', code: 0 });
});

test('a manager killed with SIGKILL takes its idle spare along (end of file on the channel)', async (t) => {
  const f = fixture(t);
  const manager = spawnManager(f);
  await waitFor(() => readySpares(f).length === 1, 'the first spare ready');
  const spare = readySpares(f)[0]!;
  kill(manager.child.pid, 'SIGKILL');
  await manager.child.exited;
  await waitFor(() => processInfo(spare) === undefined || processInfo(spare)?.state === 'Z', `spare ${spare} exited`);
});

test('the manager exits soon after the containerd it serves (the parent of its launchers)', async (t) => {
  const f = fixture(t);
  // An idle time far beyond the test's own timeout: only containerd's exit can end it.
  const manager = spawnManager(f, { TSRUN_MANAGER_SPARE: '0', TSRUN_MANAGER_IDLE_MS: '600000' });
  await waitFor(() => answersVersion(f), 'the manager answers');
  // A stand-in containerd: a process that exits when told.
  const fakeContainerd = monitor.spawn({ file: '/bin/sleep', args: ['/bin/sleep', '30'], env: [], fds: [-1, -1, -1] });
  const bundle = makeBundle(f, 'd1');
  const deleted = await callManager(f.socket, { ...request(['-namespace', 'ns', '-address', f.address, '-id', 'd1', '-bundle', bundle, 'delete'], bundle), parentPid: fakeContainerd.pid });
  assert.equal(deleted.exitCode, 0, text(deleted.stderr));
  kill(fakeContainerd.pid, 'SIGKILL');
  await fakeContainerd.exited;
  assert.deepEqual(await manager.child.exited, { kind: 'exited', code: 0 });
  assert.equal(existsSync(f.socket), false, 'the control socket is removed');
});

test('a manager that logged a warning keeps its log when it exits', async (t) => {
  const f = fixture(t);
  const manager = spawnManager(f, { TSRUN_MANAGER_SPARE: '0', TSRUN_MANAGER_LOG_LEVEL: 'info' });
  await waitFor(() => answersVersion(f), 'the manager answers');
  const answer = await exchange(f.socket, Buffer.from([0, 0, 0, 1, 0]));
  assert.equal(answer.exitCode, 2);
  kill(manager.child.pid, 'SIGTERM');
  await manager.child.exited;
  assert.ok(
    logLines(f).some((l) => l.msg === 'malformed launcher request'),
    'the warning is in the kept log',
  );
  assert.ok(logLines(f).some((l) => l.msg === 'manager stopping' && l['reason'] === 'closed'));
});

/** A one-shot client of the control socket run as another user (nobody) through setpriv (util-linux). */
async function foreignCall(socket: string, keepDacOverride: boolean): Promise<string> {
  const frame = Buffer.from(encodeRequest(request(['-v']))).toString('hex');
  const source = `
import { connect } from 'node:net';
const s = connect(${JSON.stringify(socket)});
let got = 0;
let connected = false;
const done = () => { console.log(got > 0 ? 'answered' : 'refused'); process.exit(0); };
s.on('connect', () => { connected = true; s.write(Buffer.from('${frame}', 'hex')); });
s.on('data', (c) => { got += c.length; });
// After connect, a reset or a broken pipe is the manager closing on us: refused unless it answered.
s.on('error', (e) => { if (connected) done(); console.log('error ' + e.code); process.exit(0); });
s.on('close', done);
`;
  const caps = keepDacOverride ? ['--inh-caps=+dac_override,+dac_read_search', '--ambient-caps=+dac_override,+dac_read_search'] : [];
  const [readEnd, writeEnd] = native.pipe();
  const child = monitor.spawn({
    file: '/usr/bin/setpriv',
    args: ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', ...caps, process.execPath, '--input-type=module', '-e', source],
    env: [],
    cwd: '/',
    fds: [-1, writeEnd, -1],
  });
  native.close(writeEnd);
  await child.exited;
  const chunks: Buffer[] = [];
  const buffer = Buffer.alloc(4096);
  for (;;) {
    const n = readSync(readEnd, buffer);
    if (n === 0) break;
    chunks.push(Buffer.from(buffer.subarray(0, n)));
  }
  native.close(readEnd);
  return Buffer.concat(chunks).toString().trim();
}

test('a launcher of another uid is refused: the socket is root-only, and one past the file mode is closed unanswered', async (t) => {
  if (!existsSync('/usr/bin/setpriv')) {
    t.skip('setpriv (util-linux) is not installed');
    return;
  }
  const f = fixture(t);
  const manager = spawnManager(f, { TSRUN_MANAGER_SPARE: '0', TSRUN_MANAGER_LOG_LEVEL: 'info' });
  await waitFor(() => answersVersion(f), 'the manager answers');
  assert.equal(await foreignCall(f.socket, false), 'error EACCES', 'the file mode keeps other users out');
  assert.equal(await foreignCall(f.socket, true), 'refused', 'past the file mode, the peer check closes the connection unanswered');
  assert.ok(await answersVersion(f), 'root is still served');
  kill(manager.child.pid, 'SIGTERM');
  await manager.child.exited;
  assert.ok(logLines(f).some((l) => l.msg === 'refused a launcher of another user' && l['peerUid'] === 65534));
});
