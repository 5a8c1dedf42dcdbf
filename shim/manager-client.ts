/**
 * The launcher's side of the control protocol, in Node: one request, one response over
 * the manager's socket (native/launcher/PROTOCOL.md). The native launcher is the real
 * client; this one serves tests, benchmarks and diagnostics.
 */
import { connect } from 'node:net';
import { createFrameReader, decodeResponse, encodeRequest, MAX_FRAME_BYTES, type LauncherRequest, type LauncherResponse } from './launcher-protocol.js';

/** A manager call that got no valid answer; the message says why. */
export class ManagerCallError extends Error {
  override readonly name = 'ManagerCallError';
}

/**
 * Sends raw bytes (one frame, or anything else) and returns the decoded response.
 * @throws ManagerCallError when the connection fails, closes before a whole frame, the
 *   answer does not decode, or `timeoutMs` (30 s, as the launcher) passes.
 */
export function exchange(socketPath: string, bytes: Uint8Array, timeoutMs = 30_000): Promise<LauncherResponse> {
  return new Promise((resolve, reject) => {
    const socket = connect(socketPath);
    const reader = createFrameReader(MAX_FRAME_BYTES);
    let settled = false;
    const settle = (outcome: LauncherResponse | Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (outcome instanceof Error) reject(outcome);
      else resolve(outcome);
    };
    const timer = setTimeout(() => {
      settle(new ManagerCallError(`no answer from ${socketPath} within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.on('connect', () => {
      socket.write(bytes);
    });
    socket.on('data', (chunk: Buffer) => {
      const state = reader.push(chunk);
      switch (state.kind) {
        case 'partial':
          return;
        case 'oversized':
          settle(new ManagerCallError(`the answer announced ${state.length} bytes, over the limit`));
          return;
        case 'frame': {
          const decoded = decodeResponse(state.payload);
          settle(decoded.ok ? decoded.value : new ManagerCallError(`the answer does not decode: ${decoded.error}`));
          return;
        }
      }
    });
    socket.on('error', (error) => {
      settle(new ManagerCallError(`${socketPath}: ${error.message}`, { cause: error }));
    });
    socket.on('close', () => {
      settle(new ManagerCallError(`${socketPath} closed the connection before a whole answer`));
    });
  });
}

/** One request to the manager at `socketPath`. @throws ManagerCallError as {@link exchange}. */
export function callManager(socketPath: string, request: LauncherRequest, timeoutMs?: number): Promise<LauncherResponse> {
  return exchange(socketPath, encodeRequest(request), timeoutMs);
}
