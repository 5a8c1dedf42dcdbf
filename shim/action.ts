/**
 * The shim's one-shot actions (`start`, `delete`, `-info`, `-v`) as pure-ish
 * functions of (argv, env, cwd, stdin) returning (stdout bytes, exit code), so a
 * long-lived process can serve them without booting Node per container
 * (DESIGN.md section 2, point 2). Nothing here writes to the real stdout or exits.
 */
import type { Native } from '../native/facade.js';
import type { DaemonLauncher } from './daemon-launcher.js';

export type { DaemonCommand } from './daemon-launcher.js';

/** What containerd gave the shim binary. */
export interface ActionRequest {
  /** argv without the executable. */
  readonly argv: readonly string[];
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly cwd: string;
  readonly stdin: Uint8Array;
  /** Pid of the process that ran the shim binary: containerd (for the OOM score). */
  readonly parentPid: number;
}

/** What the shim binary answers. */
export interface ActionResult {
  readonly stdout: Uint8Array;
  /** Text for the shim binary's stderr: containerd logs it. */
  readonly stderr: string;
  readonly exitCode: number;
}

/** What the actions need from their host process. */
export interface ActionContext {
  readonly native: Native;
  /**
   * How `start` launches a new group daemon: a fresh spawn in the one-shot CLI, a
   * pre-booted spare in the manager (daemon-launcher.ts, spare.ts).
   */
  readonly launcher: DaemonLauncher;
}

/** A successful answer. */
export function answer(stdout: Uint8Array | string, stderr = ''): ActionResult {
  return { stdout: typeof stdout === 'string' ? Buffer.from(stdout) : stdout, stderr, exitCode: 0 };
}

/** A failed answer: containerd shows `message` in its error. */
export function failure(message: string, exitCode = 1): ActionResult {
  return { stdout: new Uint8Array(0), stderr: `${message}\n`, exitCode };
}
