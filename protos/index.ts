/**
 * The protobuf wire contract: the ttrpc envelope and every message containerd
 * exchanges with a shim, as static protobufjs modules generated from
 * protos/proto (see the header of each .proto for its containerd source and
 * the versions it was checked against), plus the few helpers that belong to
 * that contract: Any packing with containerd's bare type URLs, Timestamp <->
 * Date, and 64-bit integer conversion.
 *
 * Namespaces follow the proto packages:
 * - `containerd.task.v2` / `containerd.task.v3`: the Task service and its messages (identical but for the package);
 * - `containerd.types`: Mount, Envelope, RuntimeInfo; `containerd.v1.types`: Status, Process, ProcessInfo;
 * - `containerd.events`: TaskCreate, TaskExit, ...; `containerd.services.events.ttrpc.v1`: Events.Forward;
 * - `containerd.runc.v1`: Options, CheckpointOptions, ProcessDetails; `runtimeoptions.v1`: Options;
 * - `containerd.runtime.bootstrap.v1`: BootstrapParams, BootstrapResult (containerd 2.3);
 * - `io.containerd.cgroups.v1` / `io.containerd.cgroups.v2`: Metrics;
 * - `google.protobuf`: Any, Timestamp, Empty.
 */
export { ttrpc, google as envelopeGoogle } from './gen/ttrpc.js';
export { containerd, google, io, runtimeoptions } from './gen/containerd.js';
export {
  AnyUnpackError,
  isKnownTypeUrl,
  packAny,
  typeNameOf,
  unpackAny,
  unpackAnyAs,
  type AnyUnpackErrorCode,
  type MessageOf,
  type MessageTypeOf,
  type PropertiesOf,
  type TypeUrl,
  type UnpackedAny,
} from './any.js';
export { dateFromTimestamp, timestampFromDate } from './timestamp.js';
export { int64FromBigInt, int64ToBigInt, int64ToNumber, type Int64, type LongBits } from './int64.js';
