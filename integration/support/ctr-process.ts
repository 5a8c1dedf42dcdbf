/**
 * `ctr` calls that stay running while the test acts on them: `ctr run --rm` waiting for
 * its task while a second ctr kills it, `ctr run` whose stdin the test writes and closes
 * later, and `ctr run -t` / `ctr task exec -t` on a pseudo-terminal.
 *
 * The harness's `ctr.run` closes stdin at once; that is not enough for stdin tests:
 * ctr only sends CloseIO for an EOF it reads after the task was created (ctr's
 * stdinCloser gets its closer once NewTask returned), so an EOF that comes first is
 * never forwarded, with the runc shim as with any other. Tests keep stdin open until
 * the task runs, then close it.
 *
 * The terminal comes from util-linux `script` (no npm dependency): `script -qec CMD
 * /dev/null` runs CMD on a new pty, copies our stdin pipe to the pty master and the
 * master's output to our stdout, and exits with CMD's exit status.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { collectCtr, type CtrResult } from '../harness/index.js';
import { waitUntil } from './poll.js';

/** Where a ctr process talks to. */
export interface CtrTarget {
  readonly address: string;
  readonly namespace: string;
}

/** A running `ctr` (or `script` running ctr). */
export interface CtrProcess {
  readonly pid: number;
  /** Everything written to stdout so far (on a pty: the terminal's whole output). */
  readonly stdout: string;
  readonly stderr: string;
  /** Writes to ctr's stdin (on a pty: types on the terminal). */
  write(data: string | Uint8Array): void;
  /** Closes ctr's stdin (EOF). */
  endInput(): void;
  /** Waits until stdout matches. @throws Error after `timeoutMs` (20 s), quoting the output. */
  waitForOutput(pattern: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
  /** Resolves when ctr exited, whatever the exit code; SIGKILLed and `timedOut` after the call's bound. */
  readonly result: Promise<CtrResult>;
  /** SIGKILL (ctr itself; the task is not touched). */
  kill(): void;
}

/** Options of {@link spawnCtr} and {@link spawnCtrInPty}. */
export interface SpawnCtrOptions {
  /** ctr is SIGKILLed after this long and reported with `timedOut`; 60 s when left out. */
  readonly timeoutMs?: number;
}

/** Options of {@link spawnCtrInPty}. */
export interface PtyOptions extends SpawnCtrOptions {
  /** Size of the terminal ctr runs on (set with stty before ctr starts); 24x80 when left out. */
  readonly rows?: number;
  readonly cols?: number;
}

/** ctr's global flags for a target. */
export function ctrArgs(target: CtrTarget, args: readonly string[]): string[] {
  return ['--address', target.address, '--namespace', target.namespace, ...args];
}

/** Starts `ctr ARGS` with a stdin pipe that stays open until {@link CtrProcess.endInput}. */
export function spawnCtr(target: CtrTarget, args: readonly string[], options: SpawnCtrOptions = {}): CtrProcess {
  return watch(spawn('ctr', ctrArgs(target, args), { stdio: ['pipe', 'pipe', 'pipe'] }), args, options.timeoutMs ?? 60_000);
}

/**
 * Starts `ctr ARGS` on a new pseudo-terminal of the given size. The first line of the
 * output is `outer-tty:/dev/pts/N`, the terminal's slave, so a test can resize it
 * (`stty -F`), which sends ctr SIGWINCH as a terminal emulator's resize would.
 */
export function spawnCtrInPty(target: CtrTarget, args: readonly string[], options: PtyOptions = {}): CtrProcess {
  const ctr = ['ctr', ...ctrArgs(target, args)].map(shellQuote).join(' ');
  const script = `echo "outer-tty:$(tty)"; stty rows ${options.rows ?? 24} cols ${options.cols ?? 80} && exec ${ctr}`;
  const child = spawn('script', ['-qec', script, '/dev/null'], {
    stdio: ['pipe', 'pipe', 'pipe'],
    // script runs the command with $SHELL -c: make that a plain POSIX shell.
    env: { ...process.env, SHELL: '/bin/sh', TERM: 'xterm' },
  });
  return watch(child, args, options.timeoutMs ?? 60_000);
}

/** The outer terminal's slave path announced by {@link spawnCtrInPty}. @throws Error when it never appears. */
export async function outerTty(pty: CtrProcess): Promise<string> {
  const match = await pty.waitForOutput(/outer-tty:(\/dev\/pts\/\d+)/);
  const path = match[1];
  if (path === undefined) throw new Error(`no terminal path in: ${pty.stdout}`);
  return path;
}

function watch(child: ChildProcess, args: readonly string[], timeoutMs: number): CtrProcess {
  const { stdout, stderr, result } = collectCtr(child, args, {
    started: performance.now(),
    timeoutMs,
    spawnFailure: (error) => `cannot run ${child.spawnfile}: ${error.message}`,
  });
  // A test that fails before awaiting the result must not leave an unhandled rejection.
  result.catch(() => undefined);
  const text = (chunks: readonly Buffer[]): string => Buffer.concat(chunks).toString('utf8');
  return {
    pid: child.pid ?? -1,
    get stdout() {
      return text(stdout);
    },
    get stderr() {
      return text(stderr);
    },
    write(data) {
      child.stdin?.write(data);
    },
    endInput() {
      child.stdin?.end();
    },
    async waitForOutput(pattern, waitMs = 20_000) {
      try {
        return await waitUntil(`${pattern.source} in the output of ctr ${args.join(' ')}`, () => pattern.exec(text(stdout)) ?? undefined, {
          timeoutMs: waitMs,
          intervalMs: 20,
        });
      } catch (error) {
        throw new Error(`${error instanceof Error ? error.message : String(error)}\nstdout so far: ${JSON.stringify(text(stdout))}\nstderr: ${JSON.stringify(text(stderr))}`);
      }
    },
    result,
    kill() {
      child.kill('SIGKILL');
    },
  };
}

/** Single-quotes a word for /bin/sh. */
export function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}
