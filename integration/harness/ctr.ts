/**
 * Runs containerd's own CLI, `ctr`, against one containerd address. Integration tests drive
 * real containers through it exactly as a user would, so what they prove is what a user sees.
 */
import { spawn, type ChildProcess } from 'node:child_process';

/** What one `ctr` invocation did. `code` is null when it was killed (see `signal`, `timedOut`). */
export interface CtrResult {
  readonly args: readonly string[];
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly timedOut: boolean;
  readonly durationMs: number;
}

/** Per-call settings; anything left out takes the defaults given to {@link createCtr}. */
export interface CtrCallOptions {
  /** The containerd namespace (`ctr --namespace`). */
  readonly namespace?: string;
  /** The call is killed (SIGKILL) after this long and reported with `timedOut: true`. */
  readonly timeoutMs?: number;
  /** Bytes written to ctr's stdin (which is then closed); without it stdin is /dev/null. */
  readonly input?: string | Uint8Array;
  /** Extra environment variables for ctr. */
  readonly env?: Readonly<Record<string, string>>;
}

/** A `ctr` call that failed: a non-zero exit, a signal or a timeout. Carries the whole result. */
export class CtrError extends Error {
  override readonly name = 'CtrError';
  readonly result: CtrResult;

  constructor(result: CtrResult, context: string) {
    const how = result.timedOut
      ? `timed out after ${Math.round(result.durationMs)} ms`
      : result.code === null
        ? `was killed by ${result.signal ?? 'a signal'}`
        : `exited with code ${result.code}`;
    const stderr = result.stderr.trim();
    super(`ctr ${result.args.join(' ')} ${how}${stderr === '' ? '' : `: ${stderr}`}${context === '' ? '' : `\n${context}`}`);
    this.result = result;
  }
}

/** Defaults for every call of one {@link Ctr}. */
export interface CtrDefaults {
  /** containerd's gRPC socket path. */
  readonly address: string;
  /** Namespace used when a call names none. */
  readonly namespace: string;
  /** Default per-call timeout; 30 s if left out. */
  readonly timeoutMs?: number;
  /**
   * Called when {@link Ctr.ok} is about to throw; its return value (for example the tail of
   * containerd's log) is appended to the error message.
   */
  readonly onFailure?: (result: CtrResult) => string;
}

/** `ctr` bound to one containerd, with helpers for the calls tests make most. */
export interface Ctr {
  readonly address: string;
  readonly namespace: string;
  /** Runs `ctr --address A --namespace N ...args`; resolves with the result whatever the exit code. */
  run(args: readonly string[], options?: CtrCallOptions): Promise<CtrResult>;
  /**
   * Like {@link run}, for calls that must succeed.
   * @returns ctr's stdout.
   * @throws CtrError on a non-zero exit, a signal or a timeout.
   */
  ok(args: readonly string[], options?: CtrCallOptions): Promise<string>;
  /** The server version `ctr version` reports. @throws CtrError when containerd does not answer. */
  serverVersion(options?: CtrCallOptions): Promise<string>;
  /** Namespace names. @throws CtrError */
  namespaces(options?: CtrCallOptions): Promise<string[]>;
  /** Task (container) ids with a task in the namespace. @throws CtrError */
  tasks(options?: CtrCallOptions): Promise<string[]>;
  /** Container ids in the namespace. @throws CtrError */
  containers(options?: CtrCallOptions): Promise<string[]>;
  /** Image names in the namespace. @throws CtrError */
  images(options?: CtrCallOptions): Promise<string[]>;
  /**
   * Removes a container and its task whatever state it is in: SIGKILL to every process,
   * task delete, container delete. Missing pieces are not an error.
   * @throws CtrError when a piece that exists cannot be removed.
   */
  removeContainer(id: string, options?: CtrCallOptions): Promise<void>;
}

const DEFAULT_TIMEOUT_MS = 30_000;

/** Creates a {@link Ctr} bound to one containerd address. */
export function createCtr(defaults: CtrDefaults): Ctr {
  const run = (args: readonly string[], options: CtrCallOptions = {}): Promise<CtrResult> =>
    runCtr(defaults.address, options.namespace ?? defaults.namespace, args, {
      timeoutMs: options.timeoutMs ?? defaults.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      ...(options.input === undefined ? {} : { input: options.input }),
      ...(options.env === undefined ? {} : { env: options.env }),
    });
  const ok = async (args: readonly string[], options?: CtrCallOptions): Promise<string> => {
    const result = await run(args, options);
    if (result.code !== 0) throw new CtrError(result, defaults.onFailure?.(result) ?? '');
    return result.stdout;
  };
  const lines = (text: string): string[] =>
    text
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line !== '');

  return {
    address: defaults.address,
    namespace: defaults.namespace,
    run,
    ok,
    async serverVersion(options) {
      const out = await ok(['version'], options);
      // The server block comes second: "Server:\n  Version:  1.6.20~ds1".
      const match = /Server:[\s\S]*?Version:\s*(\S+)/.exec(out);
      if (match?.[1] === undefined) throw new Error(`ctr version printed no server version:\n${out}`);
      return match[1];
    },
    async namespaces(options) {
      return lines(await ok(['namespaces', 'list', '--quiet'], options));
    },
    async tasks(options) {
      return lines(await ok(['tasks', 'list', '--quiet'], options));
    },
    async containers(options) {
      return lines(await ok(['containers', 'list', '--quiet'], options));
    },
    async images(options) {
      return lines(await ok(['images', 'list', '--quiet'], options));
    },
    async removeContainer(id, options) {
      // `tasks delete --force` kills with SIGKILL and waits for the exit before deleting.
      const deleted = await run(['tasks', 'delete', '--force', id], options);
      if (deleted.code !== 0 && !isNotFound(deleted)) throw new CtrError(deleted, defaults.onFailure?.(deleted) ?? '');
      const removed = await run(['containers', 'delete', id], options);
      if (removed.code !== 0 && !isNotFound(removed)) throw new CtrError(removed, defaults.onFailure?.(removed) ?? '');
    },
  };
}

function isNotFound(result: CtrResult): boolean {
  return /not found|no such/i.test(result.stderr);
}

/**
 * Runs one `ctr` process. Never rejects for a failing ctr (see the result); rejects only if
 * ctr cannot be spawned at all (for example it is not installed).
 */
export function runCtr(
  address: string,
  namespace: string,
  args: readonly string[],
  options: { readonly timeoutMs: number; readonly input?: string | Uint8Array; readonly env?: Readonly<Record<string, string>> },
): Promise<CtrResult> {
  const fullArgs = ['--address', address, '--namespace', namespace, ...args];
  const started = performance.now();
  const child = spawn('ctr', fullArgs, {
    stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    env: { ...process.env, ...options.env },
  });
  const { result } = collectCtr(child, args, {
    started,
    timeoutMs: options.timeoutMs,
    spawnFailure: (error) => `cannot run ctr (is containerd's ctr installed and on PATH?): ${error.message}`,
  });
  if (options.input !== undefined && child.stdin !== null) child.stdin.end(options.input);
  return result;
}

/** A ctr child being collected by {@link collectCtr}: its output so far, and its result. */
export interface CollectedCtr {
  readonly stdout: readonly Buffer[];
  readonly stderr: readonly Buffer[];
  /** Resolves when ctr closed (a failing ctr too); rejects only when it could not be spawned. */
  readonly result: Promise<CtrResult>;
}

/**
 * Gathers a spawned ctr's stdout and stderr and resolves its {@link CtrResult} when it
 * closes; SIGKILL after `timeoutMs` (the result says `timedOut`). An EPIPE on its stdin
 * (ctr may exit before reading its input) is ignored.
 */
export function collectCtr(
  child: ChildProcess,
  args: readonly string[],
  options: { readonly started: number; readonly timeoutMs: number; readonly spawnFailure: (error: Error) => string },
): CollectedCtr {
  const stdout: Buffer[] = [];
  const stderr: Buffer[] = [];
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, options.timeoutMs);
  child.stdout?.on('data', (chunk: Buffer) => stdout.push(chunk));
  child.stderr?.on('data', (chunk: Buffer) => stderr.push(chunk));
  child.stdin?.on('error', () => undefined);
  const result = new Promise<CtrResult>((resolve, reject) => {
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(new Error(options.spawnFailure(error), { cause: error }));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({
        args,
        code,
        signal,
        stdout: Buffer.concat(stdout).toString('utf8'),
        stderr: Buffer.concat(stderr).toString('utf8'),
        timedOut,
        durationMs: performance.now() - options.started,
      });
    });
  });
  return { stdout, stderr, result };
}
