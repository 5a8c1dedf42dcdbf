/**
 * The control channel between the manager and one spare daemon (spare.ts has the
 * protocol): newline-terminated JSON messages over a unix stream socketpair, with fds
 * riding along. Used by both sides; no policy here.
 */
import type { Native } from '../native/facade.js';

/** The largest message either side accepts on the channel (an environment is a few KiB). */
export const MAX_SPARE_MESSAGE_BYTES = 1024 * 1024;

/** A message of the spare channel (spare.ts describes each). */
export type SpareMessage =
  | { readonly kind: 'ready' }
  | { readonly kind: 'adopt'; readonly args: readonly string[]; readonly env: readonly string[]; readonly cwd: string }
  | { readonly kind: 'serving' }
  | { readonly kind: 'failed'; readonly error: string };

/** Validates a parsed JSON value as a {@link SpareMessage}; undefined when it is not one. */
export function asSpareMessage(value: unknown): SpareMessage | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const m = value as Record<string, unknown>;
  switch (m['kind']) {
    case 'ready':
      return { kind: 'ready' };
    case 'serving':
      return { kind: 'serving' };
    case 'failed':
      return typeof m['error'] === 'string' ? { kind: 'failed', error: m['error'] } : undefined;
    case 'adopt': {
      const { args, env, cwd } = m;
      if (!isStrings(args) || !isStrings(env) || typeof cwd !== 'string' || !cwd.startsWith('/')) return undefined;
      return { kind: 'adopt', args, env, cwd };
    }
    default:
      return undefined;
  }
}

function isStrings(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((v) => typeof v === 'string');
}

/** Why a channel ended. */
export type ChannelEnd = 'eof' | 'malformed' | 'error';

/**
 * One end of the spare channel: JSON lines over a unix stream socket, with fds riding
 * along (received fds are handed to the message whose line they arrived with). Reads
 * through the native poller and recvmsg, because a Node socket would drop SCM_RIGHTS.
 */
export class Channel {
  readonly #native: Native;
  readonly #fd: number;
  readonly #onMessage: (message: SpareMessage, fds: number[]) => void;
  readonly #onEnd: (why: ChannelEnd) => void;
  #watcher: { close(): void } | undefined;
  #buffer = Buffer.alloc(0);
  #fds: number[] = [];
  #closed = false;

  constructor(native: Native, fd: number, onMessage: (message: SpareMessage, fds: number[]) => void, onEnd: (why: ChannelEnd) => void) {
    this.#native = native;
    this.#fd = fd;
    this.#onMessage = onMessage;
    this.#onEnd = onEnd;
    this.#watcher = native.watchReadable(fd, () => {
      this.#read();
    });
  }

  /** Sends one message (and fds with its first byte). @throws the native send error (EPIPE when the peer is gone), or an Error once closed. */
  send(message: SpareMessage, fds: readonly number[] = []): void {
    // After close the fd number may belong to something else already.
    if (this.#closed) throw new Error('the spare channel is closed');
    this.#native.sendFds(this.#fd, Buffer.from(`${JSON.stringify(message)}\n`), fds);
  }

  /** Stops reading and closes the fd (and any fd received but not handed out). Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#watcher?.close();
    this.#watcher = undefined;
    for (const fd of this.#fds) this.#native.close(fd);
    this.#fds = [];
    this.#native.close(this.#fd);
  }

  /** A method, not the field: message handlers may close the channel mid-loop. */
  #isOpen(): boolean {
    return !this.#closed;
  }

  #end(why: ChannelEnd): void {
    if (this.#closed) return;
    this.close();
    this.#onEnd(why);
  }

  #read(): void {
    while (!this.#closed) {
      let received;
      try {
        received = this.#native.receiveFds(this.#fd, 64 * 1024, 4);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'EAGAIN') return;
        this.#end('error');
        return;
      }
      if (received.data.length === 0 && received.fds.length === 0) {
        this.#end('eof');
        return;
      }
      this.#fds.push(...received.fds);
      this.#buffer = Buffer.concat([this.#buffer, received.data]);
      for (let newline = this.#buffer.indexOf(10); newline >= 0 && this.#isOpen(); newline = this.#buffer.indexOf(10)) {
        const line = this.#buffer.subarray(0, newline).toString('utf8');
        this.#buffer = this.#buffer.subarray(newline + 1);
        let message: SpareMessage | undefined;
        try {
          message = asSpareMessage(JSON.parse(line));
        } catch {
          message = undefined;
        }
        if (message === undefined) {
          this.#end('malformed');
          return;
        }
        const fds = this.#fds;
        this.#fds = [];
        this.#onMessage(message, fds);
      }
      if (this.#buffer.length > MAX_SPARE_MESSAGE_BYTES) {
        this.#end('malformed');
        return;
      }
    }
  }
}

