/**
 * One process of a container: its init (execId '') or an exec. Holds the state
 * machine, the stdio, the monitored child and the waiters; the container
 * (container.ts) drives the lifecycle and the order of exit events.
 *
 * An exit goes through three stages, and the fields below say which one a process is
 * in:
 *   1. `reaped`: the monitor collected the status (the kernel's view). From here on
 *      the pidfd is closed, so kill answers NotFound without touching it.
 *   2. delivery: held while `gateOpen` is false (an early exit: the start event is
 *      not out yet), then waiting for IO to drain and, for the init, for every exec
 *      exit of the container.
 *   3. `stopped` state: the exit event was emitted and waiters resolved.
 */
import type { ExitInfo, ProcessState, Stdio } from './api.js';
import { failedPrecondition, hasErrno, notFound } from './errors.js';
import type { ProcessIO } from './io/index.js';
import type { MonitoredChild } from './process-monitor.js';
import type { Native } from '../native/facade.js';
import type { State, Subject } from './state.js';
import { CREATED, exitOf } from './state.js';

interface Waiter {
  readonly resolve: (exit: ExitInfo) => void;
  readonly reject: (err: Error) => void;
}

/** A container's init or exec process. */
export class Process {
  readonly containerId: string;
  /** '' for the init process. */
  readonly execId: string;
  readonly subject: Subject;
  readonly bundle: string;
  readonly stdio: Stdio;
  /** The exec's OCI Process spec (undefined for the init). */
  readonly spec: Record<string, unknown> | undefined;

  /** Known once the OCI runtime reported it (pid file); 0 before. */
  pid = 0;
  /** Set once the process's stdio exists; closed on delete (or when create/start fails). */
  io: ProcessIO | undefined;
  /** Set once the pid was adopted; its pidfd is valid until `reaped` is set. */
  child: MonitoredChild | undefined;
  /** Stage 1: the exit as the monitor reaped it. */
  reaped: ExitInfo | undefined;
  /** Stage 2: a reaped exit is delivered only while the gate is open (see container.ts). */
  gateOpen = false;
  /** Stage 2 has begun: guards exactly-once delivery. */
  delivering = false;
  /** The bounded drain of stdout/stderr, started when the process is reaped. */
  drained: Promise<boolean> | undefined;
  /** A verb in flight that excludes others (start, resume, delete, checkpoint). */
  busy: string | undefined;

  #state: State = CREATED;
  #waiters: Waiter[] = [];

  constructor(options: { containerId: string; execId: string; bundle: string; stdio: Stdio; spec?: Record<string, unknown> }) {
    this.containerId = options.containerId;
    this.execId = options.execId;
    this.subject = options.execId === '' ? 'task' : 'exec';
    this.bundle = options.bundle;
    this.stdio = options.stdio;
    this.spec = options.spec;
  }

  get state(): State {
    return this.#state;
  }

  /** Applies a transition of state.ts (which throws on an invalid one). */
  transition(next: (state: State) => State): void {
    this.#state = next(this.#state);
  }

  /** The process's id in events: the exec id, or the container id for the init. */
  get eventId(): string {
    return this.execId === '' ? this.containerId : this.execId;
  }

  /**
   * Claims the right to run a verb that must not overlap another one. Throws
   * FailedPrecondition when another verb is in flight; call the returned release.
   */
  claim(verb: string): () => void {
    if (this.busy !== undefined) {
      throw failedPrecondition(`cannot ${verb} ${this.subject} while a ${this.busy} is in progress`);
    }
    this.busy = verb;
    return () => {
      this.busy = undefined;
    };
  }

  /** Resolves with the exit once it was emitted; rejects if the process is deleted without one. */
  wait(): Promise<ExitInfo> {
    const exit = exitOf(this.#state);
    if (exit !== undefined) return Promise.resolve(exit);
    if (this.#state.status === 'deleted') return Promise.reject(notFound(`${this.subject} was deleted before it exited`));
    return new Promise((resolve, reject) => {
      this.#waiters.push({ resolve, reject });
    });
  }

  /** Resolves every waiter with the exit (call right after the exit event). */
  settleWaiters(exit: ExitInfo): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w.resolve(exit);
  }

  /** Rejects every waiter (the process was deleted without an exit). */
  rejectWaiters(err: Error): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w.reject(err);
  }

  /**
   * Sends a signal through the pidfd: a recycled pid can never receive it. NotFound
   * once the process was reaped (its pidfd is closed then) or the kernel says ESRCH.
   */
  signal(native: Native, signal: number): void {
    if (this.reaped !== undefined || this.child === undefined || this.child.pidfd < 0) {
      throw notFound(`cannot kill ${this.subject}: process already finished`);
    }
    try {
      native.pidfdSendSignal(this.child.pidfd, signal);
    } catch (err) {
      if (hasErrno(err, 'ESRCH')) throw notFound(`cannot kill ${this.subject}: process already finished`, err);
      throw err;
    }
  }

  /** The state as the Task API's State call reports it. */
  snapshot(): ProcessState {
    return {
      containerId: this.containerId,
      execId: this.execId,
      bundle: this.bundle,
      pid: this.pid,
      status: this.#state.status,
      stdio: this.stdio,
      exit: exitOf(this.#state),
    };
  }
}
