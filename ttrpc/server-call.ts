/**
 * One in-flight unary call on a server connection, and the HandlerContext its
 * handler sees. The AbortController and the deadline timer are created only
 * when the handler reads `signal`: most handlers never do, and then a call
 * allocates neither.
 */
import type { Socket } from 'node:net';
import { Code } from './code.js';
import { setDeadlineTimer, type DeadlineTimer } from './deadline-timer.js';
import type { HandlerContext, Metadata } from './service.js';
import { TtrpcError } from './ttrpc-error.js';

/** @internal */
export class ServerCall implements HandlerContext {
  readonly service: string;
  readonly method: string;
  readonly streamId: number;
  readonly deadline: number | undefined;
  readonly metadata: Metadata;
  readonly peer: Socket;
  /** performance.now() when the request frame arrived, for diagnostics. */
  readonly startedAt: number;

  #controller: AbortController | undefined;
  #timer: DeadlineTimer | undefined;
  /** Why the call was cancelled before anyone read `signal`; applied on first read. */
  #cancelled: TtrpcError | undefined;
  #finished = false;

  constructor(fields: {
    service: string;
    method: string;
    streamId: number;
    deadline: number | undefined;
    metadata: Metadata;
    peer: Socket;
    startedAt: number;
  }) {
    this.service = fields.service;
    this.method = fields.method;
    this.streamId = fields.streamId;
    this.deadline = fields.deadline;
    this.metadata = fields.metadata;
    this.peer = fields.peer;
    this.startedAt = fields.startedAt;
  }

  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      const controller = new AbortController();
      this.#controller = controller;
      if (this.#cancelled !== undefined) {
        controller.abort(this.#cancelled);
      } else if (this.deadline !== undefined && !this.#finished) {
        // Fires at once (synchronously) when the deadline already passed.
        this.#timer = setDeadlineTimer(this.deadline, () => {
          this.#timer = undefined;
          controller.abort(new TtrpcError(Code.DeadlineExceeded, 'ttrpc: the call deadline (timeout_nano) passed'));
        });
      }
    }
    return this.#controller.signal;
  }

  /** Aborts the handler's signal (connection gone, server closed). No-op once finished. */
  cancel(reason: TtrpcError): void {
    if (this.#finished) return;
    this.#timer?.clear();
    this.#timer = undefined;
    this.#cancelled ??= reason;
    this.#controller?.abort(reason);
  }

  /** The handler returned: stop the deadline timer. */
  finish(): void {
    this.#finished = true;
    this.#timer?.clear();
    this.#timer = undefined;
  }
}
