/**
 * The RPC envelope (containerd/ttrpc request.proto) and its framing:
 * `Request{service, method, payload, timeout_nano, metadata}` in a Request
 * frame, `Response{google.rpc.Status status, bytes payload}` in a Response
 * frame. Pure functions: bytes in, bytes out.
 *
 * The payload is spliced in by hand rather than re-encoded by protobufjs, so a
 * payload is copied once, straight into the frame buffer. Protobuf allows
 * fields in any order, so the Request's payload goes last.
 */
import { ttrpc } from '../protos/index.js';
import { Code, toCode } from './code.js';
import {
  FRAME_HEADER_LENGTH,
  MAX_FRAME_DATA_LENGTH,
  MessageType,
  oversizedMessage,
  writeFrameHeader,
} from './frame.js';
import type { KeyValue } from './metadata.js';
import { TtrpcError, type StatusDetail } from './ttrpc-error.js';

/** Field tags: (field number << 3) | wire type 2 (length-delimited). */
const REQUEST_PAYLOAD_TAG = (3 << 3) | 2;
const RESPONSE_STATUS_TAG = (1 << 3) | 2;
const RESPONSE_PAYLOAD_TAG = (2 << 3) | 2;

/** The request envelope a client sends (payload excluded). */
export interface RequestHead {
  readonly service: string;
  readonly method: string;
  /** 0 for no deadline. */
  readonly timeoutNano: number;
  readonly metadata: readonly KeyValue[];
}

/** A status to answer a call with: the code, the message and the details. */
export interface StatusFields {
  readonly code: Code;
  readonly message: string;
  readonly details: readonly StatusDetail[];
}

/**
 * Encodes a Request frame.
 *
 * @throws TtrpcError ResourceExhausted when the envelope exceeds 4 MiB.
 */
export function encodeRequestFrame(streamId: number, head: RequestHead, payload: Uint8Array): Buffer {
  const prefix = ttrpc.Request.encode({
    service: head.service,
    method: head.method,
    timeoutNano: head.timeoutNano,
    metadata: head.metadata as KeyValue[],
  }).finish(true);
  const payloadPart = payload.length === 0 ? 0 : 1 + varintLength(payload.length) + payload.length;
  const length = prefix.length + payloadPart;
  if (length > MAX_FRAME_DATA_LENGTH) throw new TtrpcError(Code.ResourceExhausted, oversizedMessage(length));
  const frame = Buffer.allocUnsafe(FRAME_HEADER_LENGTH + length);
  writeFrameHeader(frame, length, streamId, MessageType.Request, 0);
  frame.set(prefix, FRAME_HEADER_LENGTH);
  if (payload.length > 0) {
    let at = FRAME_HEADER_LENGTH + prefix.length;
    frame[at++] = REQUEST_PAYLOAD_TAG;
    at = writeVarint(frame, at, payload.length);
    frame.set(payload, at);
  }
  return frame;
}

/**
 * Encodes the Response frame of a successful call: an OK status (an empty
 * `google.rpc.Status`, which Go always sets) and the payload.
 *
 * @throws TtrpcError ResourceExhausted when the envelope exceeds 4 MiB.
 */
export function encodeOkResponseFrame(streamId: number, payload: Uint8Array): Buffer {
  const payloadPart = payload.length === 0 ? 0 : 1 + varintLength(payload.length) + payload.length;
  const length = 2 + payloadPart;
  if (length > MAX_FRAME_DATA_LENGTH) throw new TtrpcError(Code.ResourceExhausted, oversizedMessage(length));
  const frame = Buffer.allocUnsafe(FRAME_HEADER_LENGTH + length);
  writeFrameHeader(frame, length, streamId, MessageType.Response, 0);
  let at = FRAME_HEADER_LENGTH;
  frame[at++] = RESPONSE_STATUS_TAG;
  frame[at++] = 0; // empty Status: code OK
  if (payload.length > 0) {
    frame[at++] = RESPONSE_PAYLOAD_TAG;
    at = writeVarint(frame, at, payload.length);
    frame.set(payload, at);
  }
  return frame;
}

/**
 * Encodes the Response frame of a failed call: the status, no payload. A
 * message so long that the frame would exceed 4 MiB is cut (the code is what
 * callers act on), so an error answer can always be sent.
 */
export function encodeErrorResponseFrame(streamId: number, status: StatusFields): Buffer {
  const body = ttrpc.Response.encode({
    status: {
      code: status.code,
      message: status.message.length > 64 * 1024 ? `${status.message.slice(0, 64 * 1024)}...` : status.message,
      details: status.details.map((d) => ({ type_url: d.typeUrl, value: d.value })),
    },
  }).finish(true);
  if (body.length > MAX_FRAME_DATA_LENGTH) {
    return encodeErrorResponseFrame(streamId, {
      code: status.code,
      message: status.message.slice(0, 64 * 1024),
      details: [],
    });
  }
  const frame = Buffer.allocUnsafe(FRAME_HEADER_LENGTH + body.length);
  writeFrameHeader(frame, body.length, streamId, MessageType.Response, 0);
  frame.set(body, FRAME_HEADER_LENGTH);
  return frame;
}

/** A decoded request envelope. */
export interface DecodedRequest {
  readonly service: string;
  readonly method: string;
  readonly payload: Uint8Array;
  /** Nanoseconds; 0 means no deadline. Negative means already expired. */
  readonly timeoutNano: number;
  readonly metadata: readonly { key?: string | null; value?: string | null }[];
}

const EMPTY = new Uint8Array(0);

/**
 * Decodes a request envelope.
 *
 * @throws TtrpcError InvalidArgument "unmarshal request error: ..." (Go's
 *   wording, server.go) when the bytes are not a Request.
 */
export function decodeRequest(data: Uint8Array): DecodedRequest {
  try {
    const r = ttrpc.Request.decode(data);
    const t = r.timeoutNano;
    return {
      service: r.service,
      method: r.method,
      payload: r.payload,
      timeoutNano: typeof t === 'number' ? t : t.toNumber(),
      metadata: r.metadata,
    };
  } catch (cause) {
    throw new TtrpcError(Code.InvalidArgument, `unmarshal request error: ${errorText(cause)}`, { cause });
  }
}

/** A decoded response envelope: either an OK payload or a TtrpcError. */
export type DecodedResponse =
  { readonly ok: true; readonly payload: Uint8Array } | { readonly ok: false; readonly error: TtrpcError };

/**
 * Decodes a response envelope. A non-OK status becomes a TtrpcError with the
 * peer's code, message and details. Undecodable bytes become an Internal error.
 * Never throws.
 */
export function decodeResponse(data: Uint8Array): DecodedResponse {
  let r: ttrpc.Response;
  try {
    r = ttrpc.Response.decode(data);
  } catch (cause) {
    return {
      ok: false,
      error: new TtrpcError(Code.Internal, `ttrpc: cannot decode the response envelope: ${errorText(cause)}`, {
        cause,
      }),
    };
  }
  const status = r.status;
  const code = status?.code ?? 0;
  if (status == null || code === 0) return { ok: true, payload: r.payload.length === 0 ? EMPTY : r.payload };
  const details = (status.details ?? []).map((d) => ({ typeUrl: d.type_url ?? '', value: d.value ?? EMPTY }));
  return { ok: false, error: new TtrpcError(toCode(code), status.message ?? '', { details }) };
}

/** The message of anything thrown, for wrapping in a status. */
export function errorText(cause: unknown): string {
  return cause instanceof Error ? cause.message : String(cause);
}

function varintLength(n: number): number {
  let len = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    len++;
  }
  return len;
}

function writeVarint(target: Uint8Array, at: number, n: number): number {
  while (n >= 0x80) {
    target[at++] = (n & 0x7f) | 0x80;
    n = Math.floor(n / 128);
  }
  target[at++] = n;
  return at;
}
