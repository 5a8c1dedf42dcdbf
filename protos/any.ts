/**
 * google.protobuf.Any as containerd uses it: options, events, stats and process
 * details travel as Anys whose type URL is the message's BARE full name, e.g.
 * `containerd.events.TaskExit` (containerd's typeurl registers protobuf types
 * by full name; containerd-shim-facts.md section 2.9). Unpacking also accepts a
 * prefixed URL (`type.googleapis.com/containerd.events.TaskExit`): like Go's
 * protoregistry.FindMessageByURL, everything up to the last '/' is ignored.
 */
import { containerd, google, io, runtimeoptions } from './gen/containerd.js';

/**
 * Every message tsrun packs into or unpacks from an Any, by type URL: the task
 * events a shim publishes, the runtime options containerd sends (runc's and
 * CRI's generic ones), checkpoint options, Pids' ProcessDetails, the cgroup
 * metrics Stats returns, and the 2.3 bootstrap messages.
 */
const messageTypes = {
  'containerd.events.TaskCreate': containerd.events.TaskCreate,
  'containerd.events.TaskStart': containerd.events.TaskStart,
  'containerd.events.TaskDelete': containerd.events.TaskDelete,
  'containerd.events.TaskExit': containerd.events.TaskExit,
  'containerd.events.TaskOOM': containerd.events.TaskOOM,
  'containerd.events.TaskExecAdded': containerd.events.TaskExecAdded,
  'containerd.events.TaskExecStarted': containerd.events.TaskExecStarted,
  'containerd.events.TaskPaused': containerd.events.TaskPaused,
  'containerd.events.TaskResumed': containerd.events.TaskResumed,
  'containerd.events.TaskCheckpointed': containerd.events.TaskCheckpointed,
  'containerd.runc.v1.Options': containerd.runc.v1.Options,
  'containerd.runc.v1.CheckpointOptions': containerd.runc.v1.CheckpointOptions,
  'containerd.runc.v1.ProcessDetails': containerd.runc.v1.ProcessDetails,
  'runtimeoptions.v1.Options': runtimeoptions.v1.Options,
  'io.containerd.cgroups.v1.Metrics': io.containerd.cgroups.v1.Metrics,
  'io.containerd.cgroups.v2.Metrics': io.containerd.cgroups.v2.Metrics,
  'containerd.runtime.bootstrap.v1.BootstrapParams': containerd.runtime.bootstrap.v1.BootstrapParams,
  'containerd.runtime.bootstrap.v1.BootstrapResult': containerd.runtime.bootstrap.v1.BootstrapResult,
};

/** A type URL tsrun knows, e.g. `'containerd.events.TaskExit'`. */
export type TypeUrl = keyof typeof messageTypes;

/** The message class (encode, decode) registered for a type URL. */
export type MessageTypeOf<U extends TypeUrl> = (typeof messageTypes)[U];

/** What decoding an Any of type `U` yields. */
export type MessageOf<U extends TypeUrl> = ReturnType<MessageTypeOf<U>['decode']>;

/** What packing an Any of type `U` accepts: the message's properties. */
export type PropertiesOf<U extends TypeUrl> = Parameters<MessageTypeOf<U>['encode']>[0];

interface Codec<P, M> {
  encode(message: P): { finish(): Uint8Array };
  decode(bytes: Uint8Array): M;
}

// The same table seen as one codec per type URL; indexing it with a generic
// type URL keeps the link between the URL and its message type.
const codecs: { readonly [U in TypeUrl]: Codec<PropertiesOf<U>, MessageOf<U>> } = messageTypes;

// Written over a generic key so that, for a generic U, Unpacked<U> is just
// { typeUrl: U; message: MessageOf<U> } (TypeScript's correlated-union pattern).
type Unpacked<K extends TypeUrl> = { [U in K]: { readonly typeUrl: U; readonly message: MessageOf<U> } }[K];

/** An unpacked Any: switch on `typeUrl` to narrow `message`. */
export type UnpackedAny = Unpacked<TypeUrl>;

/** Why an Any could not be unpacked. */
export type AnyUnpackErrorCode = 'unknown-type' | 'unexpected-type' | 'malformed';

/**
 * Thrown when an Any cannot be unpacked: its type URL names no message tsrun
 * knows (`unknown-type`), names another message than the caller expects
 * (`unexpected-type`), or its bytes are not a valid message of that type
 * (`malformed`, with the decoder's error as `cause`).
 */
export class AnyUnpackError extends Error {
  override readonly name = 'AnyUnpackError';
  /** Stable machine-readable reason. */
  readonly code: AnyUnpackErrorCode;
  /** The Any's type URL as received. */
  readonly typeUrl: string;

  constructor(code: AnyUnpackErrorCode, typeUrl: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.typeUrl = typeUrl;
  }
}

/**
 * The message name in a type URL: everything after the last '/', so
 * `type.googleapis.com/containerd.events.TaskExit` and
 * `containerd.events.TaskExit` both give `containerd.events.TaskExit`.
 */
export function typeNameOf(typeUrl: string): string {
  return typeUrl.slice(typeUrl.lastIndexOf('/') + 1);
}

/** Whether `typeUrl` (bare or prefixed) names a message tsrun knows. */
export function isKnownTypeUrl(typeUrl: string): boolean {
  return registeredTypeUrl(typeUrl) !== undefined;
}

/**
 * Packs a message into an Any with a bare type URL, the form containerd emits
 * and every version from 1.6 on resolves.
 */
export function packAny<U extends TypeUrl>(typeUrl: U, message: PropertiesOf<U>): google.protobuf.Any {
  const codec: Codec<PropertiesOf<U>, MessageOf<U>> = codecs[typeUrl];
  return google.protobuf.Any.create({ type_url: typeUrl, value: codec.encode(message).finish() });
}

/**
 * Unpacks an Any of any type tsrun knows.
 *
 * @throws AnyUnpackError `unknown-type` if the type URL names no known
 * message, `malformed` if the bytes do not decode.
 */
export function unpackAny(any: google.protobuf.Any.$Properties): UnpackedAny {
  const received = any.type_url ?? '';
  const typeUrl = registeredTypeUrl(received);
  if (typeUrl === undefined) {
    throw new AnyUnpackError(
      'unknown-type',
      received,
      `cannot unpack an Any of type '${received}': tsrun knows no protobuf message of that type`,
    );
  }
  return unpackKnown(typeUrl, received, any.value);
}

/**
 * Unpacks an Any that must hold a message of type `expected`.
 *
 * @throws AnyUnpackError `unexpected-type` if it holds another type (known or
 * not), `malformed` if the bytes do not decode.
 */
export function unpackAnyAs<U extends TypeUrl>(any: google.protobuf.Any.$Properties, expected: U): MessageOf<U> {
  const received = any.type_url ?? '';
  if (typeNameOf(received) !== expected) {
    throw new AnyUnpackError(
      'unexpected-type',
      received,
      `expected an Any of type '${expected}' but got '${received}'`,
    );
  }
  return unpackKnown(expected, received, any.value).message;
}

function registeredTypeUrl(typeUrl: string): TypeUrl | undefined {
  const name = typeNameOf(typeUrl);
  return isTypeUrl(name) ? name : undefined;
}

function isTypeUrl(name: string): name is TypeUrl {
  return Object.hasOwn(messageTypes, name);
}

function unpackKnown<U extends TypeUrl>(
  typeUrl: U,
  received: string,
  value: Uint8Array | null | undefined,
): Unpacked<U> {
  const codec: Codec<PropertiesOf<U>, MessageOf<U>> = codecs[typeUrl];
  try {
    return { typeUrl, message: codec.decode(value ?? new Uint8Array(0)) };
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new AnyUnpackError(
      'malformed',
      received,
      `Any of type '${received}' does not hold a valid ${typeUrl}: ${reason}`,
      { cause: error },
    );
  }
}
