/**
 * The launcher control protocol (native/launcher/PROTOCOL.md): the frames the native
 * `containerd-shim-tsrun-v1` launcher and the tsrun manager exchange over the control
 * socket. Pure: bytes in, values out, and the reverse; no I/O here.
 *
 * Every frame is a 4-byte big-endian length `n` (at most {@link MAX_FRAME_BYTES}), then
 * `n` bytes. Integers are big-endian u32; strings are `u32 length, bytes` (UTF-8, no NUL).
 *
 *   request:  u32 magic, u32 argc, argc x string, u32 envc, envc x string, string cwd,
 *             u32 parent_pid, string stdin
 *   response: u32 magic, u32 exit_code, string stdout, string stderr
 *
 * Decoding never throws: a malformed payload is a {@link Decoded} error with a sentence,
 * and a length above the cap is refused from the 4-byte header, before any buffering.
 */

/** "TSR1": the first word of every request and response. */
export const LAUNCHER_MAGIC = 0x54535231;
/** The largest frame payload either side accepts (16 MiB). */
export const MAX_FRAME_BYTES = 16 * 1024 * 1024;
/** Bounds on the counts of a request, far above what containerd sends (about 10 and 20). */
export const MAX_ARGC = 4096;
export const MAX_ENVC = 65_536;

/** What the launcher forwards: what containerd gave it. */
export interface LauncherRequest {
  /** argv without the executable. */
  readonly argv: readonly string[];
  /** The launcher's whole environment, `KEY=value` each. */
  readonly env: readonly string[];
  readonly cwd: string;
  /** getppid() of the launcher: containerd. */
  readonly parentPid: number;
  /** Everything the launcher read from stdin (start and -info only; else empty). */
  readonly stdin: Uint8Array;
}

/** What the launcher writes back and exits with. */
export interface LauncherResponse {
  readonly exitCode: number;
  readonly stdout: Uint8Array;
  readonly stderr: Uint8Array;
}

/** The result of decoding a payload: the value, or a sentence saying what is wrong. */
export type Decoded<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: string };

/** Where an incremental frame read stands (see {@link createFrameReader}). */
export type FrameState =
  /** More bytes are needed. */
  | { readonly kind: 'partial' }
  /** A whole frame: its payload, without the length prefix. Bytes after it are not consumed. */
  | { readonly kind: 'frame'; readonly payload: Uint8Array }
  /** The header announced more than the cap: nothing was buffered; answer and close. */
  | { readonly kind: 'oversized'; readonly length: number };

/** Reads one frame from a byte stream delivered in chunks of any size. */
export interface FrameReader {
  /** Feeds a chunk. Once a frame or an oversized header was seen, further chunks are ignored and the same state returned. */
  push(chunk: Uint8Array): FrameState;
}

/** Creates a reader of one frame whose payload may be at most `maxBytes` long. */
export function createFrameReader(maxBytes: number = MAX_FRAME_BYTES): FrameReader {
  const header = new Uint8Array(4);
  let headerFilled = 0;
  let payload: Uint8Array | undefined;
  let payloadFilled = 0;
  let done: FrameState | undefined;
  return {
    push(chunk) {
      if (done !== undefined) return done;
      let offset = 0;
      if (payload === undefined) {
        const take = Math.min(4 - headerFilled, chunk.length);
        header.set(chunk.subarray(0, take), headerFilled);
        headerFilled += take;
        offset = take;
        if (headerFilled < 4) return { kind: 'partial' };
        const length = new DataView(header.buffer).getUint32(0);
        if (length > maxBytes) {
          done = { kind: 'oversized', length };
          return done;
        }
        payload = new Uint8Array(length);
      }
      const take = Math.min(payload.length - payloadFilled, chunk.length - offset);
      payload.set(chunk.subarray(offset, offset + take), payloadFilled);
      payloadFilled += take;
      if (payloadFilled < payload.length) return { kind: 'partial' };
      done = { kind: 'frame', payload };
      return done;
    },
  };
}

/** A request as one frame, length prefix included (what the launcher sends; used by tests and Node clients). */
export function encodeRequest(request: LauncherRequest): Uint8Array {
  const writer = new Writer();
  writer.u32(LAUNCHER_MAGIC);
  writer.u32(request.argv.length);
  for (const arg of request.argv) writer.string(arg);
  writer.u32(request.env.length);
  for (const entry of request.env) writer.string(entry);
  writer.string(request.cwd);
  writer.u32(request.parentPid);
  writer.bytes(request.stdin);
  return writer.frame();
}

/** A response as one frame, length prefix included (what the manager sends). */
export function encodeResponse(response: LauncherResponse): Uint8Array {
  const writer = new Writer();
  writer.u32(LAUNCHER_MAGIC);
  writer.u32(response.exitCode >>> 0);
  writer.bytes(response.stdout);
  writer.bytes(response.stderr);
  return writer.frame();
}

/** Decodes a request payload (the frame without its length prefix). Never throws. */
export function decodeRequest(payload: Uint8Array): Decoded<LauncherRequest> {
  const reader = new Reader(payload);
  try {
    reader.magic();
    const argv = reader.strings('argc', MAX_ARGC);
    const env = reader.strings('envc', MAX_ENVC);
    const cwd = reader.string('cwd');
    const parentPid = reader.u32('parent_pid');
    const stdin = reader.bytes('stdin');
    reader.end();
    return { ok: true, value: { argv, env, cwd, parentPid, stdin } };
  } catch (error) {
    return { ok: false, error: messageOf(error) };
  }
}

/** Decodes a response payload (the frame without its length prefix). Never throws. */
export function decodeResponse(payload: Uint8Array): Decoded<LauncherResponse> {
  const reader = new Reader(payload);
  try {
    reader.magic();
    const exitCode = reader.u32('exit_code');
    const stdout = reader.bytes('stdout');
    const stderr = reader.bytes('stderr');
    reader.end();
    return { ok: true, value: { exitCode, stdout, stderr } };
  } catch (error) {
    return { ok: false, error: messageOf(error) };
  }
}

/** `KEY=value` entries as a record; an entry without `=` is skipped, a later duplicate wins (as getenv's last setenv would). */
export function environmentOf(entries: readonly string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const entry of entries) {
    const eq = entry.indexOf('=');
    if (eq <= 0) continue;
    env[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return env;
}

/** A record of variables as `KEY=value` entries (unset values left out). */
export function environmentEntries(env: Readonly<Record<string, string | undefined>>): string[] {
  return Object.entries(env).flatMap(([key, value]) => (value === undefined ? [] : [`${key}=${value}`]));
}

/** Thrown inside the decoder only; decode* turn it into a Decoded error. */
class MalformedFrame extends Error {
  override readonly name = 'MalformedFrame';
}

const utf8 = new TextDecoder('utf-8');
const encoder = new TextEncoder();

class Reader {
  readonly #view: DataView;
  readonly #bytes: Uint8Array;
  #offset = 0;

  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  magic(): void {
    const magic = this.u32('magic');
    if (magic !== LAUNCHER_MAGIC) throw new MalformedFrame(`bad magic 0x${magic.toString(16).padStart(8, '0')} (want 0x54535231, "TSR1"): the peer does not speak the launcher protocol`);
  }

  u32(what: string): number {
    if (this.#bytes.length - this.#offset < 4) throw new MalformedFrame(`truncated frame: ${what} needs 4 bytes at offset ${this.#offset}, ${this.#bytes.length - this.#offset} left`);
    const value = this.#view.getUint32(this.#offset);
    this.#offset += 4;
    return value;
  }

  bytes(what: string): Uint8Array {
    const length = this.u32(`the length of ${what}`);
    if (length > this.#bytes.length - this.#offset) {
      throw new MalformedFrame(`truncated frame: ${what} claims ${length} bytes at offset ${this.#offset}, ${this.#bytes.length - this.#offset} left`);
    }
    // A copy, as a plain Uint8Array (Buffer#slice would share memory with the frame).
    const value = new Uint8Array(this.#bytes.subarray(this.#offset, this.#offset + length));
    this.#offset += length;
    return value;
  }

  string(what: string): string {
    return utf8.decode(this.bytes(what));
  }

  strings(what: string, max: number): string[] {
    const count = this.u32(what);
    // Each string needs at least its 4-byte length: a count the rest cannot hold is a lie.
    if (count > max || count > (this.#bytes.length - this.#offset) / 4) {
      throw new MalformedFrame(`${what} ${count} is more than the frame can hold (at most ${Math.min(max, Math.floor((this.#bytes.length - this.#offset) / 4))})`);
    }
    const values: string[] = [];
    for (let i = 0; i < count; i++) values.push(this.string(`${what} entry ${i}`));
    return values;
  }

  end(): void {
    const left = this.#bytes.length - this.#offset;
    if (left !== 0) throw new MalformedFrame(`${left} stray bytes after the last field`);
  }
}

class Writer {
  readonly #chunks: Uint8Array[] = [];
  #length = 0;

  u32(value: number): void {
    const chunk = new Uint8Array(4);
    new DataView(chunk.buffer).setUint32(0, value);
    this.#push(chunk);
  }

  bytes(value: Uint8Array): void {
    this.u32(value.length);
    this.#push(value);
  }

  string(value: string): void {
    this.bytes(encoder.encode(value));
  }

  frame(): Uint8Array {
    const out = new Uint8Array(4 + this.#length);
    new DataView(out.buffer).setUint32(0, this.#length);
    let offset = 4;
    for (const chunk of this.#chunks) {
      out.set(chunk, offset);
      offset += chunk.length;
    }
    return out;
  }

  #push(chunk: Uint8Array): void {
    this.#chunks.push(chunk);
    this.#length += chunk.length;
  }
}

function messageOf(error: unknown): string {
  if (error instanceof MalformedFrame) return error.message;
  // Only MalformedFrame is thrown on purpose; anything else is a decoder bug, still an answer.
  return `undecodable frame: ${error instanceof Error ? error.message : String(error)}`;
}
