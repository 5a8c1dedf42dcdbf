/**
 * @internal Helpers shared by the ttrpc tests: temp dirs, an echo service on
 * the envelope's own KeyValue message, a raw frame-level peer, fd counting.
 * Not part of the public API.
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ttrpc } from '../protos/index.js';
import { decodeResponse, type DecodedResponse } from './envelope.js';
import { encodeFrame, MessageType } from './frame.js';
import { createFrameDecoder, type DecodedFrame, type Frame } from './frame-decoder.js';
import { defineService } from './service.js';

/** A fresh temp dir and a socket path inside it; `cleanup()` removes both. */
export function tempSocket(): { dir: string; path: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'ttrpc-test-'));
  return {
    dir,
    path: join(dir, 'ttrpc.sock'),
    cleanup(): void {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The test service: KeyValue in, KeyValue out. */
export const EchoService = defineService({
  Echo: { requestType: ttrpc.KeyValue, responseType: ttrpc.KeyValue },
  Slow: { requestType: ttrpc.KeyValue, responseType: ttrpc.KeyValue },
  Fail: { requestType: ttrpc.KeyValue, responseType: ttrpc.KeyValue },
  Context: { requestType: ttrpc.KeyValue, responseType: ttrpc.KeyValue },
  /** Answers with a value of `Number(request.value)` bytes. */
  Big: { requestType: ttrpc.KeyValue, responseType: ttrpc.KeyValue },
});

/** Encodes a KeyValue. */
export function kv(key: string, value = ''): Uint8Array {
  return ttrpc.KeyValue.encode({ key, value }).finish();
}

/** Decodes a KeyValue. */
export function unkv(bytes: Uint8Array): { key: string; value: string } {
  const m = ttrpc.KeyValue.decode(bytes);
  return { key: m.key, value: m.value };
}

/** Encodes a request envelope. */
export function requestEnvelope(service: string, method: string, payload: Uint8Array, timeoutNano = 0): Uint8Array {
  return ttrpc.Request.encode({ service, method, payload, timeoutNano }).finish();
}

/**
 * A peer that speaks raw frames: send anything, read back decoded frames.
 */
export class RawPeer {
  readonly socket: Socket;
  readonly frames: DecodedFrame[] = [];
  readonly #decoder = createFrameDecoder();
  #waiters: (() => void)[] = [];
  #ended = false;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.frames.push(...this.#decoder.push(chunk));
      this.#wake();
    });
    socket.on('error', () => {
      // close follows
    });
    socket.on('close', () => {
      this.#ended = true;
      this.#wake();
    });
  }

  static async connect(path: string): Promise<RawPeer> {
    const socket = netConnect(path);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return new RawPeer(socket);
  }

  get ended(): boolean {
    return this.#ended;
  }

  send(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  sendFrame(streamId: number, type: number, flags: number, data: Uint8Array): void {
    this.send(encodeFrame(streamId, type, flags, data));
  }

  sendRequest(streamId: number, service: string, method: string, payload: Uint8Array, flags = 0): void {
    this.sendFrame(streamId, MessageType.Request, flags, requestEnvelope(service, method, payload));
  }

  /** Waits for a frame on `streamId` (removing it), or rejects after `ms`. */
  async frame(streamId: number, ms = 5000): Promise<Frame> {
    const deadline = Date.now() + ms;
    for (;;) {
      const index = this.frames.findIndex((f) => f.streamId === streamId);
      if (index >= 0) {
        const [found] = this.frames.splice(index, 1);
        if (found?.kind !== 'frame') throw new Error(`unexpected oversized frame on stream ${streamId}`);
        return found;
      }
      if (this.#ended) throw new Error(`connection ended before a frame on stream ${streamId}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no frame on stream ${streamId} within ${ms} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Waits for the Response on `streamId` and decodes its envelope. */
  async response(streamId: number, ms?: number): Promise<DecodedResponse> {
    const f = await this.frame(streamId, ms);
    if (f.type !== MessageType.Response) throw new Error(`expected a Response frame, got type ${f.type}`);
    return decodeResponse(f.data);
  }

  /** Resolves once the connection is closed, or rejects after `ms`. */
  async closed(ms = 5000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!this.#ended) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`connection still open after ${ms} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  destroy(): void {
    this.socket.destroy();
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }
}

/** Open file descriptors of this process. */
export function countFds(): number {
  return readdirSync('/proc/self/fd').length;
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `predicate` until true, or throws after `ms`. */
export async function waitFor(predicate: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}
