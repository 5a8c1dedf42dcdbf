/**
 * The native launcher (launcher.c, PROTOCOL.md) for real: the built
 * native/build/Release/containerd-shim-tsrun-v1 runs as a process against a fake
 * manager on the real control socket (/run/tsrun: root), with testing-main.js as the
 * Node entry point (TSRUN_MAIN), so every answer says which path produced it.
 *
 * This process is a child subreaper for the whole file: a manager the launcher starts
 * is reparented here, and so would be anything else the launcher left behind (a zombie
 * included), which the checks count. The launcher runs use child_process; orphans are
 * reaped only in `after`, when no launcher runs (the addon's reapOrphans would take
 * libuv's children too).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
} from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadNative } from '../index.js';
import { procStat, until, zombieChildren } from '../testing-support.js';
import type { Echo } from './testing-main.js';
import {
  controlSocketPath,
  encodeResponse,
  FRAME_MAX,
  MAGIC,
  readRequest,
  type LauncherRequest,
  type LauncherResponse,
} from './testing-protocol.js';

const here = dirname(fileURLToPath(import.meta.url));
const TESTING_MAIN = join(here, 'testing-main.js');
const LAUNCHER = findLauncher();
const native = loadNative();
const scratch = mkdtempSync(join(tmpdir(), 'tsrun-launcher-'));
const addresses: string[] = [];
const startsFiles: string[] = [];

/** native/build/Release/containerd-shim-tsrun-v1, found by walking up to the repository root. */
function findLauncher(): string {
  for (let dir = here; dirname(dir) !== dir; dir = dirname(dir)) {
    const candidate = join(dir, 'native', 'build', 'Release', 'containerd-shim-tsrun-v1');
    if (existsSync(candidate)) return candidate;
  }
  throw new Error(
    `the launcher was not built (no native/build/Release/containerd-shim-tsrun-v1 above ${here}): run \`npm install\``,
  );
}

/** A fresh containerd address (it need not exist: only its hash names the control socket). */
function newAddress(): string {
  const address = join(scratch, `containerd-${addresses.length}.sock`);
  addresses.push(address);
  return address;
}

/** A fresh file for testing-main.js to record each manager start in. */
function newStartsFile(): string {
  const file = join(scratch, `starts-${startsFiles.length}`);
  startsFiles.push(file);
  return file;
}

function managerStarts(file: string): { pid: number; argv: string[] }[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as { pid: number; argv: string[] });
}

/** What testing-main wrote to a TSRUN_TEST_SPARES file: spares' starts and what managers heard. */
interface SpareRecord {
  readonly pid?: number;
  readonly ppid?: number;
  readonly argv?: string[];
  readonly heard?: string;
}

function spareRecords(file: string): SpareRecord[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as SpareRecord);
}

/** Managers, and the first spares forked beside them (this subreaper may reap both). */
function allManagerPids(): number[] {
  return [
    ...startsFiles.flatMap((file) => managerStarts(file).map((start) => start.pid)),
    ...startsFiles.flatMap((file) => spareRecords(`${file}.spares`).flatMap((r) => (r.pid === undefined ? [] : [r.pid]))),
  ];
}

/** Pids whose parent is this process, from /proc. */
function children(): number[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .map(Number)
    .filter((pid) => procStat(pid)?.ppid === process.pid);
}

/** Children of this process that no test started on purpose: what a launcher left behind. */
function strays(): number[] {
  const managers = new Set(allManagerPids());
  return children().filter((pid) => !managers.has(pid));
}

/** The environment the launcher runs with, unless a test adds to it. */
function launcherEnv(starts: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    PATH: '/usr/bin:/bin',
    TSRUN_NODE: process.execPath,
    TSRUN_MAIN: TESTING_MAIN,
    TSRUN_TEST_STARTS: starts,
    TSRUN_TEST_SPARES: `${starts}.spares`,
    // No first spare beside the manager (its own test below turns it on): the other
    // tests look at the manager alone.
    TSRUN_MANAGER_SPARE: '0',
    ...extra,
  };
}

interface Run {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: Buffer;
  readonly stderr: Buffer;
  readonly pid: number;
  /** From spawn() to the exit event. */
  readonly elapsedMs: number;
}

interface RunOptions {
  readonly env: Record<string, string>;
  readonly cwd?: string;
  readonly stdin?: Uint8Array;
  /** An fd the launcher inherits as its fd 3. */
  readonly fd3?: number;
  readonly timeoutMs?: number;
}

/** Runs the launcher to the end: exit, and every holder of its stdout/stderr gone. */
function runLauncher(argv: readonly string[], options: RunOptions): Promise<Run> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    let exited = started;
    const child = spawn(LAUNCHER, argv, {
      env: options.env,
      cwd: options.cwd ?? scratch,
      stdio: options.fd3 === undefined ? ['pipe', 'pipe', 'pipe'] : ['pipe', 'pipe', 'pipe', options.fd3],
    });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout?.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr?.on('data', (chunk: Buffer) => stderr.push(chunk));
    child.stdin?.on('error', () => undefined); // EPIPE when the launcher does not read stdin
    child.stdin?.end(options.stdin ?? new Uint8Array(0));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(
        new Error(
          `launcher ${argv.join(' ')} did not finish (or its stdout stayed open) within ${options.timeoutMs ?? 15000} ms`,
        ),
      );
    }, options.timeoutMs ?? 15000);
    child.on('error', reject);
    child.on('exit', () => {
      exited = process.hrtime.bigint();
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const elapsedMs = Number(exited - started) / 1e6;
      resolve({
        code,
        signal,
        stdout: Buffer.concat(stdout),
        stderr: Buffer.concat(stderr),
        pid: child.pid ?? -1,
        elapsedMs,
      });
    });
  });
}

function echoOf(run: Run): Echo {
  try {
    return JSON.parse(run.stdout.toString('utf8')) as Echo;
  } catch {
    throw new Error(
      `not an echo from testing-main.js: stdout ${JSON.stringify(run.stdout.toString())}, stderr ${JSON.stringify(run.stderr.toString())}, code ${run.code}`,
    );
  }
}

type Behaviour =
  | { readonly kind: 'answer'; readonly answer: (request: LauncherRequest) => LauncherResponse }
  | { readonly kind: 'raw'; readonly bytes: Buffer }
  | { readonly kind: 'hangup' };

interface FakeManager {
  readonly requests: LauncherRequest[];
  readonly connections: () => number;
  close(): Promise<void>;
}

/** A manager in this process, on the control socket of `address`. */
async function startFakeManager(address: string, behaviour: Behaviour): Promise<FakeManager> {
  const path = controlSocketPath(address);
  rmSync(path, { force: true });
  const requests: LauncherRequest[] = [];
  const sockets = new Set<Socket>();
  let connections = 0;
  const server = createServer((socket) => {
    connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    if (behaviour.kind === 'hangup') {
      socket.destroy();
      return;
    }
    readRequest(socket).then(
      (request) => {
        requests.push(request);
        socket.end(behaviour.kind === 'answer' ? encodeResponse(behaviour.answer(request)) : behaviour.bytes);
      },
      () => socket.destroy(),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, resolve);
  });
  return {
    requests,
    connections: () => connections,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => {
          resolve();
        });
      }),
  };
}

function answer(stdout: Uint8Array | string, exitCode = 0, stderr = ''): Behaviour {
  return { kind: 'answer', answer: () => ({ exitCode, stdout: Buffer.from(stdout), stderr: Buffer.from(stderr) }) };
}

/** Bytes with every value, NULs among them, and `size` long. */
function binary(size: number): Buffer {
  const bytes = randomBytes(size);
  for (let i = 0; i < Math.min(256, size); i++) bytes[i] = i;
  bytes.fill(0, size / 2, size / 2 + 1000);
  return bytes;
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

before(() => {
  native.setChildSubreaper();
  mkdirSync('/run/tsrun', { recursive: true, mode: 0o700 });
});

after(async () => {
  const managers = allManagerPids();
  for (const pid of managers) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  // Reaped, not just 'Z': a killed node's leader thread shows 'Z' while its other
  // threads still exit, and cannot be waited for until they have.
  const reaped: number[] = [];
  await until(() => {
    reaped.push(...native.reapOrphans().map((exit) => exit.pid));
    return managers.every((pid) => procStat(pid) === undefined);
  }, 'the managers to die and be reaped');
  for (const address of addresses) {
    rmSync(controlSocketPath(address), { force: true });
    rmSync(`${controlSocketPath(address)}.lock`, { force: true });
  }
  rmSync(scratch, { recursive: true, force: true });
  assert.deepEqual(
    reaped.filter((pid) => !managers.includes(pid)),
    [],
    'only managers were left for this subreaper to reap',
  );
  const zombies = zombieChildren().map(
    (pid) => `${pid} ${readFileSync(`/proc/${pid}/stat`, 'latin1').split(' ')[1] ?? ''}`,
  );
  assert.deepEqual(zombies, [], `zombies left; managers were ${managers.join(' ')}, reaped ${reaped.join(' ')}`);
});

describe('a running manager gets the request and its answer comes back exactly', () => {
  test('start: argv, environment, cwd, stdin and parent pid arrive; binary stdout, stderr and the exit code return', async () => {
    const address = newAddress();
    const stdout = binary(300 * 1024); // several pipe buffers: partial writes
    const fake = await startFakeManager(address, answer(stdout, 0, 'a warning for containerd\n'));
    try {
      const cwd = mkdtempSync(join(scratch, 'bundle '));
      const stdin = binary(100 * 1024);
      const env = launcherEnv(newStartsFile(), { WEIRD: 'a=b c\tñ', EMPTY: '' });
      const argv = [
        '-namespace',
        'name space',
        '-address',
        address,
        '-publish-binary',
        '/usr/bin/containerd',
        '-id',
        'ñandú-1',
        '-debug',
        'start',
      ];
      const run = await runLauncher(argv, { env, cwd, stdin });
      assert.equal(run.code, 0, run.stderr.toString());
      assert.ok(run.stdout.equals(stdout), 'stdout bytes are exactly the manager’s');
      assert.equal(run.stderr.toString(), 'a warning for containerd\n');
      assert.equal(fake.requests.length, 1);
      const request = fake.requests[0]!;
      assert.deepEqual(request.argv, argv);
      assert.deepEqual(
        request.env,
        Object.entries(env).map(([key, value]) => `${key}=${value}`),
      );
      assert.equal(request.cwd, cwd);
      assert.equal(request.parentPid, process.pid);
      assert.ok(request.stdin.equals(stdin), 'stdin bytes are exactly what containerd wrote');
    } finally {
      await fake.close();
    }
  });

  test('delete and -v leave stdin alone, -info reads it; exit codes 3 and 255 return', async () => {
    const address = newAddress();
    const env = launcherEnv(newStartsFile());
    const codes = [3, 0, 0, 255];
    let next = 0;
    const fake = await startFakeManager(address, {
      kind: 'answer',
      answer: () => ({ exitCode: codes[next++] ?? 0, stdout: Buffer.from([0, 1, 0]), stderr: new Uint8Array(0) }),
    });
    try {
      const deleted = await runLauncher(
        ['-namespace', 'ns', '-address', address, '-id', 'c', '-bundle', '/b', 'delete'],
        { env, stdin: Buffer.from('not for delete') },
      );
      assert.equal(deleted.code, 3);
      assert.ok(deleted.stdout.equals(Buffer.from([0, 1, 0])));
      const version = await runLauncher(['-address', address, '-v'], { env, stdin: Buffer.from('not for -v') });
      assert.equal(version.code, 0);
      const info = await runLauncher(['-address', address, '-info'], { env, stdin: Buffer.from('options') });
      assert.equal(info.code, 0);
      const last = await runLauncher(['-address', address, 'delete'], { env });
      assert.equal(last.code, 255);
      assert.deepEqual(
        fake.requests.map((request) => request.stdin.toString()),
        ['', '', 'options', ''],
      );
    } finally {
      await fake.close();
    }
  });

  test('Go flag forms: --address=, -address=, -debug=true, -v=false still find the socket', async () => {
    const address = newAddress();
    const env = launcherEnv(newStartsFile());
    const fake = await startFakeManager(address, answer('ok'));
    try {
      for (const argv of [
        [`--address=${address}`, '-debug=true', 'delete'],
        [`-address=${address}`, '-v=false', '-info=0', '--id', 'x', 'delete'],
        ['-address', 'elsewhere', '-address', address, 'start', '-not-a-flag-after-the-action'],
      ]) {
        const run = await runLauncher(argv, { env });
        assert.equal(run.stdout.toString(), 'ok', `${argv.join(' ')}: ${run.stderr.toString()}`);
      }
      assert.equal(fake.requests.length, 3);
    } finally {
      await fake.close();
    }
  });
});

describe('no manager running: the launcher starts one', () => {
  test('it starts detached (own session, cwd /, stdio on /dev/null, no inherited fd) and answers', async () => {
    const address = newAddress();
    const starts = newStartsFile();
    const env = launcherEnv(starts);
    const marker = join(scratch, 'inherited-marker');
    const fd3 = openSync(marker, 'w');
    let run: Run;
    try {
      run = await runLauncher(['-namespace', 'ns', '-address', address, '-id', 'c1', 'start'], {
        env,
        stdin: Buffer.from('opts'),
        fd3,
      });
    } finally {
      closeSync(fd3);
    }
    const echo = echoOf(run);
    assert.equal(run.code, 0);
    assert.equal(echo.from, 'manager');
    assert.deepEqual(echo.argv, ['-namespace', 'ns', '-address', address, '-id', 'c1', 'start']);
    assert.equal(Buffer.from(echo.stdin, 'base64').toString(), 'opts');
    assert.equal(echo.parentPid, process.pid);
    assert.deepEqual(managerStarts(starts), [{ pid: echo.pid, argv: ['-manager', '-address', address] }]);

    const manager = procStat(echo.pid);
    const self = procStat(process.pid);
    assert.ok(manager !== undefined && self !== undefined);
    assert.equal(manager.ppid, process.pid, 'reparented to this subreaper: not a child the launcher kept');
    assert.notEqual(manager.session, self.session, 'a session of its own');
    assert.notEqual(
      manager.session,
      echo.pid,
      'not a session leader (double fork): it can never get a controlling terminal',
    );
    assert.equal(readlinkSync(`/proc/${echo.pid}/cwd`), '/');
    for (const fd of [0, 1, 2]) assert.equal(readlinkSync(`/proc/${echo.pid}/fd/${fd}`), '/dev/null');
    const links = readdirSync(`/proc/${echo.pid}/fd`).map((fd) => {
      try {
        return readlinkSync(`/proc/${echo.pid}/fd/${fd}`);
      } catch {
        return '';
      }
    });
    assert.ok(!links.includes(marker), 'the manager did not inherit the launcher’s fd 3');
    assert.deepEqual(strays(), [], 'the launcher left no process behind (the middle of the double fork was reaped)');

    const again = await runLauncher(['-address', address, 'delete'], { env });
    assert.equal(echoOf(again).pid, echo.pid, 'the second launcher uses the running manager');
    assert.equal(managerStarts(starts).length, 1);
  });

  test('a first spare boots beside the manager: its child, on a channel to it, told by -spare-pid', async () => {
    const address = newAddress();
    const starts = newStartsFile();
    const env = launcherEnv(starts, { TSRUN_MANAGER_SPARE: '1' });
    const run = await runLauncher(['-namespace', 'ns', '-address', address, '-id', 'c1', 'start'], { env, stdin: Buffer.from('opts') });
    assert.equal(run.code, 0);
    const echo = echoOf(run);
    assert.equal(echo.from, 'manager');
    await until(() => spareRecords(`${starts}.spares`).some((r) => r.heard !== undefined), 'the manager to hear from its first spare');
    const records = spareRecords(`${starts}.spares`);
    const [spare] = records.filter((r) => r.pid !== undefined);
    assert.ok(spare?.pid !== undefined, `a spare started: ${JSON.stringify(records)}`);
    assert.deepEqual(spare.argv, ['-spare', '-address', address]);
    assert.equal(spare.ppid, echo.pid, "the spare is the manager's child (it reaps it)");
    assert.deepEqual(managerStarts(starts), [{ pid: echo.pid, argv: ['-manager', '-address', address, '-spare-pid', String(spare.pid)] }]);
    assert.deepEqual(
      records.filter((r) => r.heard !== undefined),
      [{ heard: `spare ${spare.pid}` }],
      "what the spare wrote on its fd 3 reached the manager's fd 3",
    );
    const stat = procStat(spare.pid);
    assert.ok(stat !== undefined);
    assert.equal(stat.session, spare.pid, 'the spare has a session of its own, as spares the manager spawns do');
    assert.deepEqual(strays(), [], 'the launcher left no process behind');
  });

  test('a stale socket (nobody listening: ECONNREFUSED) gets a new manager', async () => {
    const address = newAddress();
    const starts = newStartsFile();
    native.close(native.listenUnix(controlSocketPath(address), 1)); // the file stays, refusing connections
    const run = await runLauncher(['-address', address, 'delete'], { env: launcherEnv(starts) });
    assert.equal(echoOf(run).from, 'manager');
    assert.equal(managerStarts(starts).length, 1);
  });

  test('20 launchers at once start exactly one manager, and all 20 are answered by it', async () => {
    const address = newAddress();
    const starts = newStartsFile();
    const env = launcherEnv(starts);
    const runs = await Promise.all(
      Array.from({ length: 20 }, (_, i) => runLauncher(['-address', address, '-id', `c${i}`, 'delete'], { env })),
    );
    const echoes = runs.map(echoOf);
    assert.deepEqual(
      echoes.map((echo) => echo.from),
      Array<string>(20).fill('manager'),
    );
    assert.equal(managerStarts(starts).length, 1, 'exactly one manager started');
    assert.equal(new Set(echoes.map((echo) => echo.pid)).size, 1);
    assert.deepEqual(
      echoes.map((echo) => echo.argv[3]),
      Array.from({ length: 20 }, (_, i) => `c${i}`),
    );
    assert.deepEqual(strays(), []);
  });

  test('20 launchers and a manager that cannot start: one attempt, not one per launcher, and all 20 fall back', async () => {
    const address = newAddress();
    const starts = newStartsFile();
    // The manager fails only after 1.5 s: every launcher is started by then, so each one
    // either holds the lock or waits for it. (One started after a quick failure finds no
    // lock held and no manager, and rightly tries once more.)
    const env = launcherEnv(starts, { TSRUN_TEST_MANAGER: 'exit', TSRUN_TEST_EXIT_DELAY_MS: '1500' });
    const runs = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        runLauncher(['-address', address, '-id', `c${i}`, 'delete'], { env, timeoutMs: 30000 }),
      ),
    );
    assert.deepEqual(
      runs.map((run) => `${echoOf(run).from} ${echoOf(run).argv[3] ?? ''} ${echoOf(run).pid === run.pid}`),
      Array.from({ length: 20 }, (_, i) => `cli c${i} true`),
    );
    assert.equal(
      managerStarts(starts).length,
      1,
      'launchers that waited for the lock did not start managers of their own',
    );
    assert.deepEqual(strays(), []);
  });
});

describe('the Nodes the launcher starts', () => {
  test('boot without containerd’s NODE_* variables (they configure Node, not tsrun); the manager still gets them in the request', async () => {
    // Each would cost or break something: a bundle parsed at every boot, a --require that
    // stops Node, debug lines on the stderr containerd reads with start's address.
    const extra = {
      NODE_EXTRA_CA_CERTS: join(scratch, 'no-such-bundle.pem'),
      NODE_OPTIONS: `--require=${join(scratch, 'no-such-module.js')}`,
      NODE_DEBUG: 'module',
    };
    const bootEnv = join(scratch, 'boot-env');
    type Boot = { role: string; pid: number; nodeVariables: string[] };
    const readBoots = (): Boot[] =>
      existsSync(bootEnv) ? readFileSync(bootEnv, 'utf8').trim().split('\n').map((line) => JSON.parse(line) as Boot) : [];

    // A manager and its first spare, started by the launcher.
    const address = newAddress();
    const env = launcherEnv(newStartsFile(), { ...extra, TSRUN_MANAGER_SPARE: '1', TSRUN_TEST_BOOT_ENV: bootEnv });
    const started = await runLauncher(['-namespace', 'ns', '-address', address, '-id', 'c1', 'start'], { env, stdin: Buffer.from('opts') });
    assert.equal(echoOf(started).from, 'manager');
    assert.equal(started.stderr.toString(), '');
    await until(() => readBoots().some((boot) => boot.role === 'spare'), 'the first spare to boot');
    // The group daemon's exec, and the fallback's.
    const daemon = await runLauncher(['-namespace', 'ns', '-address', address, '-id', 'c1'], { env });
    assert.equal(echoOf(daemon).from, 'cli');
    const fallback = await runLauncher(['-address', address, 'start'], { env: { ...env, TSRUN_MANAGER: '0' } });
    assert.equal(echoOf(fallback).from, 'cli');
    assert.equal(fallback.stderr.toString(), '', 'nothing on the stderr containerd reads with the address');
    assert.deepEqual(
      readBoots().map((boot) => [boot.role, boot.nodeVariables.join(' ')]).sort(),
      [['cli', ''], ['cli', ''], ['manager', ''], ['spare', '']],
    );

    const other = newAddress();
    const fake = await startFakeManager(other, answer('ok'));
    try {
      await runLauncher(['-address', other, 'delete'], { env: launcherEnv(newStartsFile(), extra) });
      const forwarded = fake.requests[0]?.env ?? [];
      for (const [name, value] of Object.entries(extra)) assert.ok(forwarded.includes(`${name}=${value}`), `containerd’s ${name} is forwarded`);
    } finally {
      await fake.close();
    }
  });
});

describe('any failure before an answer falls back to the Node CLI, and the result is still right', () => {
  const cliArgv = (address: string): string[] => ['-namespace', 'ns', '-address', address, '-id', 'c', 'start'];

  /** The launcher ran the Node CLI in its own process (exec) with argv and the whole stdin. */
  function assertFellBack(run: Run, argv: readonly string[], stdin: Buffer): void {
    const echo = echoOf(run);
    assert.equal(echo.from, 'cli');
    assert.equal(run.code, 0);
    assert.equal(echo.pid, run.pid, 'the launcher exec’d the Node CLI (same pid)');
    assert.deepEqual(echo.argv, argv);
    assert.ok(
      Buffer.from(echo.stdin, 'base64').equals(stdin),
      'the Node CLI got the stdin bytes the launcher had read',
    );
  }

  test('a manager that accepts and hangs up', async () => {
    const address = newAddress();
    const fake = await startFakeManager(address, { kind: 'hangup' });
    try {
      const stdin = binary(200 * 1024); // more than a pipe holds
      const run = await runLauncher(cliArgv(address), { env: launcherEnv(newStartsFile()), stdin });
      assertFellBack(run, cliArgv(address), stdin);
      assert.equal(fake.connections(), 1);
    } finally {
      await fake.close();
    }
  });

  test('a manager that answers garbage: every malformed response', async (t) => {
    const withLength = (payload: Buffer, length = payload.length): Buffer => {
      const head = Buffer.alloc(4);
      head.writeUInt32BE(length, 0);
      return Buffer.concat([head, payload]);
    };
    const good = encodeResponse({ exitCode: 0, stdout: Buffer.from('x'), stderr: Buffer.from('y') }).subarray(4);
    const patched = (offset: number, value: number): Buffer => {
      const copy = Buffer.from(good);
      copy.writeUInt32BE(value, offset);
      return withLength(copy);
    };
    const variants: Record<string, Buffer> = {
      'wrong magic': patched(0, 0xdeadbeef),
      'exit code over 255': patched(4, 256),
      'stdout length past the frame': patched(8, 0xffffffff),
      'stderr length short of the frame': patched(13, 0),
      'bytes after the stderr': withLength(Buffer.concat([good, Buffer.from('extra')])),
      'frame shorter than a response can be': withLength(Buffer.from(good.subarray(0, 12))),
      'frame over 16 MiB': withLength(good, FRAME_MAX + 1),
      'truncated frame': withLength(good, good.length + 100),
      'plain text': Buffer.from('this is not a frame'),
    };
    assert.equal(good.readUInt32BE(0), MAGIC);
    for (const [name, bytes] of Object.entries(variants)) {
      await t.test(name, async () => {
        const address = newAddress();
        const fake = await startFakeManager(address, { kind: 'raw', bytes });
        try {
          const stdin = Buffer.from(`options for ${name}`);
          const run = await runLauncher(cliArgv(address), { env: launcherEnv(newStartsFile()), stdin });
          assertFellBack(run, cliArgv(address), stdin);
          assert.equal(fake.requests.length, 1);
        } finally {
          await fake.close();
        }
      });
    }
  });

  test('stdin over what a frame holds: the Node CLI gets all of it, the manager is not asked', async () => {
    const address = newAddress();
    const fake = await startFakeManager(address, answer('from the manager'));
    try {
      const stdin = randomBytes(FRAME_MAX + 1024 * 1024);
      const run = await runLauncher(cliArgv(address), { env: launcherEnv(newStartsFile()), stdin, timeoutMs: 30000 });
      const echo = echoOf(run);
      assert.equal(echo.from, 'cli');
      assert.equal(echo.pid, run.pid);
      assert.equal(echo.stdinSha256, createHash('sha256').update(stdin).digest('hex'));
      assert.equal(fake.connections(), 0);
    } finally {
      await fake.close();
    }
  });

  test('a manager that exits while booting is noticed at once, not after the 3 s bound', async () => {
    const address = newAddress();
    const starts = newStartsFile();
    const stdin = Buffer.from('opts');
    const run = await runLauncher(cliArgv(address), {
      env: launcherEnv(starts, { TSRUN_TEST_MANAGER: 'exit' }),
      stdin,
    });
    assertFellBack(run, cliArgv(address), stdin);
    assert.equal(managerStarts(starts).length, 1);
    assert.ok(run.elapsedMs < 3000, `fell back after ${run.elapsedMs} ms`);
  });

  test('a manager that never listens: the launcher waits 3 s, no more, then falls back', async () => {
    const address = newAddress();
    const starts = newStartsFile();
    const stdin = Buffer.from('opts');
    const run = await runLauncher(cliArgv(address), {
      env: launcherEnv(starts, { TSRUN_TEST_MANAGER: 'hang' }),
      stdin,
    });
    assertFellBack(run, cliArgv(address), stdin);
    assert.equal(managerStarts(starts).length, 1);
    assert.ok(run.elapsedMs >= 3000, `fell back after ${run.elapsedMs} ms`);
    for (const { pid } of managerStarts(starts)) process.kill(pid, 'SIGKILL');
  });
});

describe('straight to the Node CLI', () => {
  test('TSRUN_MANAGER=0 never touches the manager', async () => {
    const address = newAddress();
    const fake = await startFakeManager(address, answer('from the manager'));
    try {
      const stdin = Buffer.from('opts');
      const run = await runLauncher(['-address', address, 'start'], {
        env: launcherEnv(newStartsFile(), { TSRUN_MANAGER: '0' }),
        stdin,
      });
      const echo = echoOf(run);
      assert.equal(echo.from, 'cli');
      assert.equal(echo.pid, run.pid);
      assert.ok(Buffer.from(echo.stdin, 'base64').equals(stdin));
      assert.equal(fake.connections(), 0);
    } finally {
      await fake.close();
    }
  });

  test('no -address (a hand-typed -v): the Node CLI answers and no manager is started', async () => {
    const starts = newStartsFile();
    const run = await runLauncher(['-v'], { env: launcherEnv(starts) });
    const echo = echoOf(run);
    assert.equal(echo.from, 'cli');
    assert.equal(echo.pid, run.pid);
    assert.deepEqual(echo.argv, ['-v']);
    assert.deepEqual(managerStarts(starts), [], 'no manager for a containerd that was not named');
  });

  test('no action (the group daemon) is an exec of the Node CLI with the same argv, cwd and stdin', async () => {
    const address = newAddress();
    const fake = await startFakeManager(address, answer('from the manager'));
    try {
      const argv = ['-namespace', 'ns', '-address', address, '-id', 'c', '-socket', 'unix:///x', '-debug'];
      const cwd = mkdtempSync(join(scratch, 'daemon-'));
      const run = await runLauncher(argv, {
        env: launcherEnv(newStartsFile(), { TSRUN_TEST_CLI_EXIT: '7' }),
        cwd,
        stdin: Buffer.from('raw'),
      });
      const echo = echoOf(run);
      assert.equal(echo.from, 'cli');
      assert.equal(run.code, 7);
      assert.equal(echo.pid, run.pid);
      assert.equal(echo.parentPid, process.pid);
      assert.deepEqual(echo.argv, argv);
      assert.equal(echo.cwd, cwd);
      assert.equal(Buffer.from(echo.stdin, 'base64').toString(), 'raw');
      assert.equal(fake.connections(), 0);
    } finally {
      await fake.close();
    }
  });

  test('a flag the launcher does not know goes to the Node CLI; a malformed command line is exit 2 and a sentence', async () => {
    const address = newAddress();
    const fake = await startFakeManager(address, answer('from the manager'));
    try {
      const env = launcherEnv(newStartsFile());
      const future = ['-flag-added-later', 'its value', '-address', address, 'delete'];
      const unknown = await runLauncher(future, { env });
      assert.equal(echoOf(unknown).from, 'cli');
      assert.equal(echoOf(unknown).pid, unknown.pid);
      assert.deepEqual(echoOf(unknown).argv, future);
      const usage: [string[], string][] = [
        [['-address'], 'flag needs an argument: -address'],
        [['-v=maybe'], 'invalid boolean value "maybe" for -v: use true or false'],
        [['---address', address, 'start'], 'bad flag syntax: ---address'],
      ];
      for (const [argv, sentence] of usage) {
        const run = await runLauncher(argv, { env });
        assert.equal(run.code, 2, argv.join(' '));
        assert.equal(run.stderr.toString(), `containerd-shim-tsrun-v1: ${sentence}\n`);
        assert.equal(run.stdout.length, 0);
      }
      assert.equal(fake.connections(), 0);
    } finally {
      await fake.close();
    }
  });
});

describe('round trip', () => {
  test('start and delete against a running manager: p50 and p99 over 200 runs each', async (t) => {
    const address = newAddress();
    const env = launcherEnv(newStartsFile());
    const fake = await startFakeManager(address, answer(`unix:///run/containerd/s/${'f'.repeat(64)}\n`));
    const options = Buffer.from(
      JSON.stringify({ binary_name: 'runc', root: '/run/containerd/runc', systemd_cgroup: false }).repeat(4),
    );
    const base = [
      '-namespace',
      'default',
      '-address',
      address,
      '-publish-binary',
      '/usr/bin/containerd',
      '-id',
      'c'.repeat(64),
    ];
    const measure = async (argv: readonly string[], stdin: Buffer | undefined, file = LAUNCHER): Promise<number[]> => {
      const times: number[] = [];
      for (let i = 0; i < 200; i++) {
        const run =
          file === LAUNCHER ? await runLauncher(argv, stdin === undefined ? { env } : { env, stdin }) : await runTrue();
        if (file === LAUNCHER)
          assert.ok(run.stdout.toString().startsWith('unix:///run/containerd/s/'), run.stderr.toString());
        times.push(run.elapsedMs);
      }
      return times.sort((a, b) => a - b);
    };
    const runTrue = (): Promise<Run> =>
      new Promise((resolve, reject) => {
        const started = process.hrtime.bigint();
        const child = spawn('/bin/true', [], { stdio: 'ignore' });
        child.on('error', reject);
        child.on('exit', (code, signal) => {
          resolve({
            code,
            signal,
            stdout: Buffer.alloc(0),
            stderr: Buffer.alloc(0),
            pid: child.pid ?? -1,
            elapsedMs: Number(process.hrtime.bigint() - started) / 1e6,
          });
        });
      });
    try {
      const start = await measure([...base, 'start'], options);
      const del = await measure(
        [...base, '-bundle', '/run/containerd/io.containerd.runtime.v2.task/default/c', 'delete'],
        undefined,
      );
      const baseline = await measure([], undefined, '/bin/true');
      const line = (name: string, times: number[]): string =>
        `${name}: p50 ${percentile(times, 50).toFixed(2)} ms, p99 ${percentile(times, 99).toFixed(2)} ms`;
      t.diagnostic(line('launcher start round trip (spawn to exit)', start));
      t.diagnostic(line('launcher delete round trip (spawn to exit)', del));
      t.diagnostic(line('baseline: spawn /bin/true to exit', baseline));
      t.diagnostic(
        `launcher's own p50 over the baseline: start ${(percentile(start, 50) - percentile(baseline, 50)).toFixed(2)} ms, delete ${(percentile(del, 50) - percentile(baseline, 50)).toFixed(2)} ms`,
      );
      assert.equal(fake.requests.length, 400);
      // Every answer above came from the manager (no fallback). Loose, and relative to
      // the baseline measured under the same load: a Node boot costs over 100 ms on its
      // own; the goal (issue 7) is p50 <= 3 ms on a quiet machine.
      const limit = percentile(baseline, 50) + 50;
      assert.ok(
        percentile(start, 50) < limit && percentile(del, 50) < limit,
        `${line('start', start)}; ${line('delete', del)}`,
      );
    } finally {
      await fake.close();
    }
  });
});
