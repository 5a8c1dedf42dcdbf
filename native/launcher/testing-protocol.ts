/**
 * The launcher control protocol (PROTOCOL.md) as the launcher tests speak it: the
 * control socket's path, the request decoder and the response encoder. Written from
 * PROTOCOL.md, apart from launcher.c, so the tests check the C against the text.
 * Test-only: the manager has its own codec in shim/.
 */
import { createHash } from 'node:crypto';
import type { Socket } from 'node:net';

/** "TSR1", first in every request and response. */
export const MAGIC = 0x54535231;
/** The most a frame's length field may say. */
export const FRAME_MAX = 16 * 1024 * 1024;

/** `/run/tsrun/<first 16 hex digits of sha256(address)>.sock` for a containerd `-address`. */
export function controlSocketPath(address: string): string {
  return `/run/tsrun/${createHash('sha256').update(address).digest('hex').slice(0, 16)}.sock`;
}

/** A request as the launcher sent it. Strings are decoded as UTF-8 (the tests only send UTF-8). */
export interface LauncherRequest {
  readonly argv: readonly string[];
  /** "KEY=value", in the launcher's environ order. */
  readonly env: readonly string[];
  readonly cwd: string;
  readonly parentPid: number;
  readonly stdin: Buffer;
}

/** What the manager answers. */
export interface LauncherResponse {
  readonly exitCode: number;
  readonly stdout: Uint8Array;
  readonly stderr: Uint8Array;
}

/** Decodes a request frame's payload (without the length). Throws on anything malformed. */
export function decodeRequest(payload: Buffer): LauncherRequest {
  let offset = 0;
  const u32 = (): number => {
    if (offset + 4 > payload.length) throw new Error(`request truncated at byte ${offset}`);
    const value = payload.readUInt32BE(offset);
    offset += 4;
    return value;
  };
  const bytes = (): Buffer => {
    const length = u32();
    if (offset + length > payload.length)
      throw new Error(`request string of ${length} bytes overruns the frame at ${offset}`);
    const value = payload.subarray(offset, offset + length);
    offset += length;
    return value;
  };
  const strings = (): string[] => Array.from({ length: u32() }, () => bytes().toString('utf8'));
  if (u32() !== MAGIC) throw new Error('request magic is not TSR1');
  const argv = strings();
  const env = strings();
  const cwd = bytes().toString('utf8');
  const parentPid = u32();
  const stdin = Buffer.from(bytes());
  if (offset !== payload.length) throw new Error(`${payload.length - offset} bytes after the request`);
  return { argv, env, cwd, parentPid, stdin };
}

/** A response frame, length first. */
export function encodeResponse(response: LauncherResponse): Buffer {
  const head = Buffer.alloc(16);
  head.writeUInt32BE(12 + response.stdout.length + 4 + response.stderr.length, 0);
  head.writeUInt32BE(MAGIC, 4);
  head.writeUInt32BE(response.exitCode, 8);
  head.writeUInt32BE(response.stdout.length, 12);
  const errLength = Buffer.alloc(4);
  errLength.writeUInt32BE(response.stderr.length, 0);
  return Buffer.concat([head, response.stdout, errLength, response.stderr]);
}

/**
 * Reads one request frame from `socket`. Rejects when the connection ends first, when
 * the frame is larger than FRAME_MAX (before buffering it) or when it does not decode.
 */
export function readRequest(socket: Socket): Promise<LauncherRequest> {
  return new Promise((resolve, reject) => {
    let buffered = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      buffered = Buffer.concat([buffered, chunk]);
      if (buffered.length < 4) return;
      const length = buffered.readUInt32BE(0);
      if (length > FRAME_MAX) {
        finish(new Error(`request frame of ${length} bytes is over the limit`));
        return;
      }
      if (buffered.length < 4 + length) return;
      try {
        finish(undefined, decodeRequest(buffered.subarray(4, 4 + length)));
      } catch (error) {
        finish(error instanceof Error ? error : new Error(String(error)));
      }
    };
    const onEnd = (): void => {
      finish(new Error(`connection ended after ${buffered.length} bytes of a request`));
    };
    const finish = (error: Error | undefined, request?: LauncherRequest): void => {
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('error', onEnd);
      if (request !== undefined) resolve(request);
      else reject(error ?? new Error('no request'));
    };
    socket.on('data', onData);
    socket.on('end', onEnd);
    socket.on('error', onEnd);
  });
}
