/**
 * The process state machine (DESIGN.md section 3, "State is a typed machine"):
 * created, running, pausing, paused, stopped, deleted, as a discriminated union with
 * one transition function per verb. Functions are pure: they return the next state or
 * throw FailedPrecondition (or NotFound) with a sentence, in the spirit of containerd's
 * process/init_state.go ("cannot pause task in created state").
 *
 * `subject` names the process in messages: 'task' for a container's init process,
 * 'exec' for an exec process.
 *
 * A transition that cannot happen by construction (an exit recorded twice) throws a
 * plain Error: that is a bug in core/, not a user's mistake.
 */
import type { ExitInfo } from './api.js';
import { failedPrecondition, notFound } from './errors.js';

/** The state of one process. */
export type State =
  | { readonly status: 'created' }
  | { readonly status: 'running' }
  | { readonly status: 'pausing' }
  | { readonly status: 'paused' }
  | { readonly status: 'stopped'; readonly exit: ExitInfo }
  | { readonly status: 'deleted'; readonly exit: ExitInfo | undefined };

/** How a process is named in messages. */
export type Subject = 'task' | 'exec';

/** The state of a process that was created and not yet started. */
export const CREATED: State = Object.freeze({ status: 'created' });

/** The exit of a stopped or deleted process, undefined otherwise. */
export function exitOf(state: State): ExitInfo | undefined {
  switch (state.status) {
    case 'created':
    case 'running':
    case 'pausing':
    case 'paused':
      return undefined;
    case 'stopped':
    case 'deleted':
      return state.exit;
  }
}

/** What to do instead, for each state a verb is refused in: errors say what failed and what to do. */
const startHint = {
  running: 'it was already started',
  pausing: 'it was already started',
  paused: 'it was already started (resume it instead)',
  stopped: 'it has already exited; start a new one',
  deleted: 'it was deleted; create it again',
} as const;
const pauseHint = {
  created: 'start it first',
  pausing: 'it is being paused already',
  paused: 'it is paused already',
  stopped: 'it has exited',
  deleted: 'it was deleted',
} as const;
const checkpointHint = {
  created: 'start it first',
  pausing: 'wait for the pause to finish',
  stopped: 'it has exited',
  deleted: 'it was deleted',
} as const;

/** start: created -> running. */
export function start(state: State, subject: Subject): State {
  switch (state.status) {
    case 'created':
      return { status: 'running' };
    case 'running':
    case 'pausing':
    case 'paused':
    case 'stopped':
    case 'deleted':
      throw failedPrecondition(`cannot start ${subject} in ${state.status} state: ${startHint[state.status]}`);
  }
}

/** pause, first half: running -> pausing (the OCI runtime is freezing the container). */
export function beginPause(state: State, subject: Subject): State {
  switch (state.status) {
    case 'running':
      return { status: 'pausing' };
    case 'created':
    case 'pausing':
    case 'paused':
    case 'stopped':
    case 'deleted':
      throw failedPrecondition(`cannot pause ${subject} in ${state.status} state: ${pauseHint[state.status]}`);
  }
}

/**
 * pause, second half: pausing -> paused when the runtime succeeded, back to running
 * when it failed. A process that exited while pausing stays stopped.
 */
export function endPause(state: State, succeeded: boolean): State {
  switch (state.status) {
    case 'pausing':
      return succeeded ? { status: 'paused' } : { status: 'running' };
    case 'stopped':
    case 'deleted':
      return state;
    case 'created':
    case 'running':
    case 'paused':
      throw new Error(`pause ended in ${state.status} state, expected pausing`);
  }
}

/** resume: paused -> running. */
export function resume(state: State, subject: Subject): State {
  switch (state.status) {
    case 'paused':
      return { status: 'running' };
    case 'created':
    case 'running':
    case 'pausing':
    case 'stopped':
    case 'deleted':
      throw failedPrecondition(`cannot resume ${subject} in ${state.status} state: only a paused ${subject} can be resumed`);
  }
}

/** exit: any live state -> stopped, with the exit. Recording an exit twice is a bug. */
export function exit(state: State, info: ExitInfo): State {
  switch (state.status) {
    case 'created':
    case 'running':
    case 'pausing':
    case 'paused':
      return { status: 'stopped', exit: info };
    case 'stopped':
    case 'deleted':
      throw new Error(`an exit was recorded for a process already ${state.status}`);
  }
}

/** delete: created or stopped -> deleted; a live process cannot be deleted. */
export function remove(state: State, subject: Subject): State {
  switch (state.status) {
    case 'created':
      return { status: 'deleted', exit: undefined };
    case 'stopped':
      return { status: 'deleted', exit: state.exit };
    case 'running':
    case 'pausing':
    case 'paused':
      throw failedPrecondition('cannot delete a running process: kill it and wait for it to exit first');
    case 'deleted':
      throw notFound(`${subject} was already deleted`);
  }
}

/** kill: allowed while the process lives; NotFound once it finished (as containerd maps ESRCH). */
export function assertKillable(state: State, subject: Subject): void {
  switch (state.status) {
    case 'created':
    case 'running':
    case 'pausing':
    case 'paused':
      return;
    case 'stopped':
      throw notFound(`cannot kill ${subject}: process already finished`);
    case 'deleted':
      throw notFound(`cannot kill ${subject}: it was deleted`);
  }
}

/** exec (adding a process to the container): the init must not have stopped. */
export function assertCanExec(state: State): void {
  switch (state.status) {
    case 'created':
    case 'running':
    case 'pausing':
    case 'paused':
      return;
    case 'stopped':
    case 'deleted':
      throw failedPrecondition(`cannot exec in a ${state.status} container: its init process has exited; start a new container`);
  }
}

/** update (resources): only a live container. */
export function assertCanUpdate(state: State): void {
  switch (state.status) {
    case 'created':
    case 'running':
    case 'pausing':
    case 'paused':
      return;
    case 'stopped':
    case 'deleted':
      throw failedPrecondition(`cannot update task in ${state.status} state: its init process has exited`);
  }
}

/** checkpoint: a running or paused container. */
export function assertCanCheckpoint(state: State): void {
  switch (state.status) {
    case 'running':
    case 'paused':
      return;
    case 'created':
    case 'pausing':
    case 'stopped':
    case 'deleted':
      throw failedPrecondition(`cannot checkpoint task in ${state.status} state: ${checkpointHint[state.status]}`);
  }
}

/** Stdio calls (resize, close stdin): any state but deleted. */
export function assertHasIO(state: State, subject: Subject): void {
  switch (state.status) {
    case 'created':
    case 'running':
    case 'pausing':
    case 'paused':
    case 'stopped':
      return;
    case 'deleted':
      throw notFound(`${subject} was deleted`);
  }
}
