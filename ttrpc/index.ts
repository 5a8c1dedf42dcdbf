/**
 * ttrpc-ts: containerd's ttrpc protocol (containerd/ttrpc) for Node.js.
 *
 * - Frames: {@link createFrameDecoder}, {@link encodeFrame} (pure, no I/O).
 * - Server: {@link createServer}, services declared with {@link defineService}
 *   and {@link implement} (or {@link unary}); handlers get decoded messages and
 *   a {@link HandlerContext}.
 * - Client: {@link connect}, {@link createClient}, {@link createServiceClient}.
 * - Errors: {@link TtrpcError} with a gRPC {@link Code}; {@link ConnectionClosedError}.
 * - Observability: node:diagnostics_channel channels named in {@link DiagnosticsChannel}.
 *
 * The wire format and what is not supported are in PROTOCOL.md beside this file.
 *
 * @packageDocumentation
 */
export { Code, codeName } from './code.js';
export {
  TtrpcError,
  ConnectionClosedError,
  isConnectionClosed,
  type StatusDetail,
  type TtrpcErrorOptions,
} from './ttrpc-error.js';
export {
  FRAME_HEADER_LENGTH,
  MAX_FRAME_DATA_LENGTH,
  MessageType,
  Flag,
  encodeFrame,
  writeFrameHeader,
} from './frame.js';
export {
  createFrameDecoder,
  type FrameDecoder,
  type DecodedFrame,
  type Frame,
  type OversizedFrame,
} from './frame-decoder.js';
export {
  defineService,
  implement,
  unary,
  type MessageClass,
  type MessageInput,
  type MessageOutput,
  type MethodDefinition,
  type ServiceDefinition,
  type ServiceImplementation,
  type ServiceMethods,
  type UnaryMethod,
  type AnyUnaryMethod,
  type UnaryHandler,
  type HandlerOf,
  type HandlerContext,
  type Metadata,
} from './service.js';
export type { MetadataInit } from './metadata.js';
export {
  createServer,
  type TtrpcServer,
  type ServerOptions,
  type CheckPeer,
  type ListenTarget,
  type ShutdownOptions,
} from './server.js';
export {
  createClient,
  connect,
  createServiceClient,
  type TtrpcClient,
  type CallOptions,
  type ServiceClient,
} from './client.js';
export {
  DiagnosticsChannel,
  type ServerRequestMessage,
  type ServerConnectionMessage,
  type ServerErrorMessage,
  type ProtocolErrorMessage,
  type ClientRequestMessage,
} from './diagnostics.js';
