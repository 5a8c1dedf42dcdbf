/**
 * The stand-in for build/shim/main.js in the launcher tests (TSRUN_MAIN points here),
 * so they can tell which path the launcher took:
 *
 * - `-manager -address <a>` (how the launcher starts a manager): appends
 *   `{"pid":…,"argv":[…]}` to the file named by TSRUN_TEST_STARTS, then per
 *   TSRUN_TEST_MANAGER: `serve` (default) listens on the control socket of `<a>`
 *   and answers every request with `{"from":"manager",…}`, exiting after
 *   TSRUN_TEST_IDLE_MS without a connection; `exit` exits with 3 (a manager that
 *   cannot start) after TSRUN_TEST_EXIT_DELAY_MS (default 0); `hang` never listens.
 *   With `-spare-pid <p>` after those (the launcher forked a first spare beside it),
 *   it appends `{"heard":"<text>"}` to TSRUN_TEST_SPARES for what arrives on fd 3.
 * - `-spare -address <a>` (the first spare): appends `{"pid":…,"ppid":…,"argv":[…]}`
 *   to TSRUN_TEST_SPARES, writes `spare <pid>` on fd 3 (its channel) and exits when
 *   the channel reaches end of file (the manager closed or exited), as a real spare does.
 * - every role, first: with TSRUN_TEST_BOOT_ENV set, appends `{"role":…,"pid":…,
 *   "nodeVariables":[…]}` to that file: the names of the NODE_* variables this Node
 *   booted with, to check the launcher drops them before exec.
 * - anything else (the Node CLI: daemon path and fallback): prints
 *   `{"from":"cli",…}` with its pid, argv, cwd and the stdin it read, and exits with
 *   TSRUN_TEST_CLI_EXIT (default 0).
 */
import { createHash } from 'node:crypto';
import { appendFileSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { createServer, Socket } from 'node:net';
import { controlSocketPath, encodeResponse, readRequest } from './testing-protocol.js';

/** What this script prints in either role, as JSON. */
export interface Echo {
  readonly from: 'manager' | 'cli';
  /** The manager's pid, or the CLI's (the launcher's own when it exec'd us). */
  readonly pid: number;
  readonly argv: readonly string[];
  readonly cwd: string;
  readonly parentPid: number;
  /** base64 */
  readonly stdin: string;
  /** hex, of the stdin bytes */
  readonly stdinSha256: string;
}

const args = process.argv.slice(2);

function writeAll(fd: number, data: Uint8Array): void {
  for (let offset = 0; offset < data.length;) offset += writeSync(fd, data, offset);
}

const sparesFile = process.env['TSRUN_TEST_SPARES'] ?? '/dev/null';

const bootEnvFile = process.env['TSRUN_TEST_BOOT_ENV'];
if (bootEnvFile !== undefined) {
  const role = args[0] === '-spare' || args[0] === '-manager' ? args[0].slice(1) : 'cli';
  const nodeVariables = Object.keys(process.env).filter((name) => name.startsWith('NODE_')).sort();
  appendFileSync(bootEnvFile, `${JSON.stringify({ role, pid: process.pid, nodeVariables })}\n`);
}

if (args[0] === '-spare') {
  appendFileSync(sparesFile, `${JSON.stringify({ pid: process.pid, ppid: process.ppid, argv: args })}\n`);
  const channel = new Socket({ fd: 3, readable: true, writable: true });
  channel.write(`spare ${process.pid}`);
  channel.on('data', () => undefined);
  channel.on('end', () => process.exit(0));
  channel.on('error', () => process.exit(0));
} else if (args[0] === '-manager') {
  appendFileSync(
    process.env['TSRUN_TEST_STARTS'] ?? '/dev/null',
    `${JSON.stringify({ pid: process.pid, argv: args })}\n`,
  );
  if (args[3] === '-spare-pid') {
    const channel = new Socket({ fd: 3, readable: true, writable: true });
    channel.on('data', (data) => {
      appendFileSync(sparesFile, `${JSON.stringify({ heard: data.toString() })}\n`);
    });
    channel.on('error', () => undefined);
    // Not kept alive by its spare: the manager exits when idle, as it would without one.
    channel.unref();
  }
  const mode = process.env['TSRUN_TEST_MANAGER'] ?? 'serve';
  const address = args[1] === '-address' ? args[2] : undefined;
  // TSRUN_TEST_EXIT_DELAY_MS: a manager that fails after booting that long.
  if (mode === 'exit' || address === undefined) {
    setTimeout(() => process.exit(3), Number(process.env['TSRUN_TEST_EXIT_DELAY_MS'] ?? '0'));
  } else if (mode === 'hang') {
    setTimeout(() => undefined, 60_000);
  } else {
    const path = controlSocketPath(address);
    try {
      unlinkSync(path); // a stale socket: the launcher found it refusing connections
    } catch {
      // none
    }
    const idleMs = Number(process.env['TSRUN_TEST_IDLE_MS'] ?? '20000');
    let idle = setTimeout(() => server.close(), idleMs);
    const server = createServer((socket) => {
      clearTimeout(idle);
      idle = setTimeout(() => server.close(), idleMs);
      readRequest(socket).then(
        (request) => {
          const echo: Echo = {
            from: 'manager',
            pid: process.pid,
            argv: request.argv,
            cwd: request.cwd,
            parentPid: request.parentPid,
            stdin: request.stdin.toString('base64'),
            stdinSha256: createHash('sha256').update(request.stdin).digest('hex'),
          };
          socket.end(
            encodeResponse({ exitCode: 0, stdout: Buffer.from(JSON.stringify(echo)), stderr: new Uint8Array(0) }),
          );
        },
        () => socket.destroy(),
      );
    });
    server.listen(path);
  }
} else {
  let stdin: Buffer;
  try {
    stdin = readFileSync(0);
  } catch {
    stdin = Buffer.alloc(0);
  }
  const echo: Echo = {
    from: 'cli',
    pid: process.pid,
    argv: args,
    cwd: process.cwd(),
    parentPid: process.ppid,
    stdin: stdin.toString('base64'),
    stdinSha256: createHash('sha256').update(stdin).digest('hex'),
  };
  writeAll(1, Buffer.from(JSON.stringify(echo)));
  process.exit(Number(process.env['TSRUN_TEST_CLI_EXIT'] ?? '0'));
}
