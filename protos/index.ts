/**
 * The protobuf wire contract: the ttrpc envelope and every message containerd
 * exchanges with a shim, as static protobufjs modules generated from protos/proto.
 */
export { ttrpc, google as envelopeGoogle } from './gen/ttrpc.js';
