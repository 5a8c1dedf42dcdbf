/**
 * A client of containerd's gRPC API (@grpc/grpc-js + @grpc/proto-loader) for the checks ctr
 * cannot make: subscribing to the event stream with filters, and calling the Tasks service
 * directly (Update, Metrics, Wait).
 *
 * The .proto files are containerd v1.6.20's own (integration/proto, see its README): they
 * are loaded at run time, independently of protos/ (the code under test), so a wire
 * mistake in protos/ cannot hide itself by being on both ends of a check.
 *
 * containerd reads the namespace of a call from the gRPC metadata key `containerd-namespace`
 * (namespaces/grpc.go); every call here sends it.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import protobuf from 'protobufjs';

/**
 * integration/proto in the repository. This module runs from build/integration/harness/,
 * and the .proto sources are not copied into build/, so the path is resolved from there.
 */
export const PROTO_DIR = fileURLToPath(new URL('../../../integration/proto/', import.meta.url));

/** The vendored containerd 1.6.20 files, relative to {@link PROTO_DIR}. */
export const PROTO_FILES: readonly string[] = [
  'github.com/containerd/containerd/api/services/events/v1/events.proto',
  'github.com/containerd/containerd/api/services/tasks/v1/tasks.proto',
  'github.com/containerd/containerd/api/services/containers/v1/containers.proto',
  'github.com/containerd/containerd/api/services/namespaces/v1/namespace.proto',
  'github.com/containerd/containerd/api/services/version/v1/version.proto',
  'github.com/containerd/containerd/api/events/task.proto',
  'github.com/containerd/containerd/api/events/container.proto',
  'github.com/containerd/cgroups/stats/v1/metrics.proto',
];

/** The gRPC metadata key containerd takes the namespace from. */
export const NAMESPACE_METADATA_KEY = 'containerd-namespace';

export const EVENTS_SERVICE = 'containerd.services.events.v1.Events';
export const TASKS_SERVICE = 'containerd.services.tasks.v1.Tasks';
export const CONTAINERS_SERVICE = 'containerd.services.containers.v1.Containers';
export const NAMESPACES_SERVICE = 'containerd.services.namespaces.v1.Namespaces';
export const VERSION_SERVICE = 'containerd.services.version.v1.Version';

/** google.protobuf.Any as proto-loader decodes it (field names as in the .proto). */
export interface ProtoAny {
  readonly type_url: string;
  readonly value: Buffer;
}

/** google.protobuf.Timestamp as proto-loader decodes it (int64 as a number). */
export interface ProtoTimestamp {
  readonly seconds: number;
  readonly nanos: number;
}

/** containerd.services.events.v1.Envelope. */
export interface Envelope {
  readonly timestamp: ProtoTimestamp | null;
  readonly namespace: string;
  readonly topic: string;
  readonly event: ProtoAny | null;
}

/** containerd.v1.types.Process (1.6: no exit_reason). */
export interface TaskProcess {
  readonly container_id: string;
  readonly id: string;
  readonly pid: number;
  readonly status: 'UNKNOWN' | 'CREATED' | 'RUNNING' | 'STOPPED' | 'PAUSED' | 'PAUSING';
  readonly stdin: string;
  readonly stdout: string;
  readonly stderr: string;
  readonly terminal: boolean;
  readonly exit_status: number;
  readonly exited_at: ProtoTimestamp | null;
}

/** containerd.types.Metric. */
export interface TaskMetric {
  readonly timestamp: ProtoTimestamp | null;
  readonly id: string;
  readonly data: ProtoAny | null;
}

/** containerd.services.tasks.v1.Tasks, for the calls ctr does not expose (or hides details of). */
export interface TasksClient {
  /** Tasks/Get. @throws GrpcError (NotFound for an unknown task). */
  get(containerId: string, execId?: string, options?: GrpcCallOptions): Promise<TaskProcess>;
  /** Tasks/Update: new resources (see {@link linuxResourcesAny}) and annotations. @throws GrpcError */
  update(containerId: string, resources: ProtoAny | null, annotations?: Readonly<Record<string, string>>, options?: GrpcCallOptions): Promise<void>;
  /** Tasks/Metrics for containers matching the filters (e.g. `id==c1`). @throws GrpcError */
  metrics(filters: readonly string[], options?: GrpcCallOptions): Promise<TaskMetric[]>;
  /** Tasks/Wait: resolves when the process exits. @throws GrpcError */
  wait(containerId: string, execId?: string, options?: GrpcCallOptions): Promise<{ exit_status: number; exited_at: ProtoTimestamp | null }>;
}

/**
 * The type URL containerd's client registers for OCI LinuxResources (typeurl.Register with
 * prefix types.containerd.io, runtime-spec major 1); the value is JSON, not protobuf.
 */
export const LINUX_RESOURCES_TYPE_URL = 'types.containerd.io/opencontainers/runtime-spec/1/LinuxResources';

/** Packs OCI LinuxResources (runtime-spec JSON field names) as containerd's client does for Update. */
export function linuxResourcesAny(resources: Readonly<Record<string, unknown>>): ProtoAny {
  return { type_url: LINUX_RESOURCES_TYPE_URL, value: Buffer.from(JSON.stringify(resources)) };
}

/** Settings for one call. */
export interface GrpcCallOptions {
  /** containerd namespace sent as metadata; the client's default when left out. */
  readonly namespace?: string;
  /** Deadline of the call; 10 s when left out. */
  readonly timeoutMs?: number;
}

/** An error answer from containerd, with its gRPC status code (grpc.status). */
export interface GrpcError extends Error {
  readonly code: grpc.status;
  readonly details: string;
}

/** Whether an error is a gRPC status error, optionally with the given code. */
export function isGrpcError(error: unknown, code?: grpc.status): error is GrpcError {
  return (
    error instanceof Error &&
    typeof (error as Partial<GrpcError>).code === 'number' &&
    (code === undefined || (error as GrpcError).code === code)
  );
}

/** An open event stream. Everything received is kept, in order, in {@link received}. */
export interface EventSubscription {
  /** Every envelope received so far (the harness's own readiness probes excluded). */
  readonly received: readonly Envelope[];
  /**
   * The first received envelope that matches and was not returned by an earlier call,
   * waiting for it if needed.
   * @throws Error after `timeoutMs` (5 s), listing what was received; or when the stream failed.
   */
  waitFor(predicate: (envelope: Envelope) => boolean, timeoutMs?: number): Promise<Envelope>;
  /** Ends the stream. */
  close(): void;
}

/** containerd's gRPC API bound to one socket and a default namespace. */
export interface ContainerdGrpcClient {
  readonly namespace: string;
  /**
   * Calls any unary method of the loaded services. The response is what proto-loader decodes
   * (field names as in the .proto, int64 as number, enums as names); `T` is the caller's
   * statement of its shape, not checked.
   * @throws GrpcError with containerd's status code.
   */
  unary<T>(service: string, method: string, request: object, options?: GrpcCallOptions): Promise<T>;
  /**
   * Subscribes to events (containerd filter syntax, e.g. `topic=="/tasks/exit"`; several
   * filters match any). Resolves once containerd is known to deliver to this subscriber:
   * containerd sends nothing when a subscription starts, so the harness publishes probe
   * events on a topic of its own until one comes back.
   * @throws Error when no probe arrives within 5 s.
   */
  subscribe(filters: readonly string[], options?: GrpcCallOptions): Promise<EventSubscription>;
  /** Events/Publish: containerd wraps the event in an envelope with its own timestamp. @throws GrpcError */
  publish(topic: string, event: ProtoAny, options?: GrpcCallOptions): Promise<void>;
  /** Events/Forward: an envelope as a shim would send it, but over gRPC. @throws GrpcError */
  forward(envelope: Envelope, options?: GrpcCallOptions): Promise<void>;
  /** The Tasks service, typed for the calls tests make. */
  readonly tasks: TasksClient;
  /** Closes the channel; open subscriptions end. */
  close(): void;
}

type Methods = Readonly<Record<string, protoLoader.MethodDefinition<object, object>>>;

let packageDefinition: protoLoader.PackageDefinition | undefined;

function definitions(): protoLoader.PackageDefinition {
  if (packageDefinition === undefined) {
    if (!existsSync(PROTO_DIR)) throw new Error(`containerd .proto files not found at ${PROTO_DIR}: run from the built repository`);
    packageDefinition = protoLoader.loadSync([...PROTO_FILES], {
      includeDirs: [PROTO_DIR],
      keepCase: true,
      longs: Number,
      enums: String,
      bytes: Buffer,
      defaults: true,
      oneofs: true,
    });
  }
  return packageDefinition;
}

function methodsOf(service: string): Methods {
  const definition = definitions()[service];
  if (definition === undefined || 'format' in definition) {
    throw new Error(`'${service}' is not a service of the loaded containerd protos (${PROTO_FILES.join(', ')})`);
  }
  return definition;
}

function methodOf(service: string, method: string): protoLoader.MethodDefinition<object, object> {
  const definition = methodsOf(service)[method];
  if (definition === undefined) throw new Error(`${service} has no method '${method}'`);
  return definition;
}

/**
 * Connects to containerd's gRPC socket. The channel connects lazily, on the first call.
 *
 * @param address the socket path (no `unix://`).
 * @param namespace the default containerd namespace of calls.
 */
export function createContainerdGrpcClient(address: string, namespace: string): ContainerdGrpcClient {
  const client = new grpc.Client(`unix://${address}`, grpc.credentials.createInsecure());

  const metadataFor = (options: GrpcCallOptions | undefined): grpc.Metadata => {
    const metadata = new grpc.Metadata();
    metadata.set(NAMESPACE_METADATA_KEY, options?.namespace ?? namespace);
    return metadata;
  };

  const unary = <T>(service: string, method: string, request: object, options?: GrpcCallOptions): Promise<T> => {
    const definition = methodOf(service, method);
    return new Promise<T>((resolve, reject) => {
      client.makeUnaryRequest(
        definition.path,
        definition.requestSerialize,
        definition.responseDeserialize,
        request,
        metadataFor(options),
        { deadline: Date.now() + (options?.timeoutMs ?? 10_000) },
        (error, response) => {
          if (error !== null) reject(error);
          else resolve(response as T);
        },
      );
    });
  };

  const subscribe = async (filters: readonly string[], options?: GrpcCallOptions): Promise<EventSubscription> => {
    const probeTopic = `/tsrun/harness/ready/${randomBytes(6).toString('hex')}`;
    const definition = methodOf(EVENTS_SERVICE, 'Subscribe');
    // Filters are OR-ed: the probe topic is added so the probe reaches a filtered stream too.
    const request = { filters: filters.length === 0 ? [] : [...filters, `topic=="${probeTopic}"`] };
    const call = client.makeServerStreamRequest(definition.path, definition.requestSerialize, definition.responseDeserialize, request, metadataFor(options));
    const subscription = new Subscription(call, probeTopic);
    const deadline = Date.now() + 5_000;
    while (!subscription.ready) {
      if (subscription.failure !== undefined) throw subscription.failure;
      if (Date.now() > deadline) {
        subscription.close();
        throw new Error(`events subscription on ${address} delivered no probe event within 5 s`);
      }
      await unary(EVENTS_SERVICE, 'Publish', { topic: probeTopic, event: { type_url: 'tsrun.harness.Probe', value: Buffer.alloc(0) } }, options);
      await subscription.settle(25);
    }
    return subscription;
  };

  return {
    namespace,
    unary,
    subscribe,
    async publish(topic, event, options) {
      await unary(EVENTS_SERVICE, 'Publish', { topic, event }, options);
    },
    async forward(envelope, options) {
      await unary(EVENTS_SERVICE, 'Forward', { envelope }, options);
    },
    tasks: {
      async get(containerId, execId = '', options) {
        const response = await unary<{ process: TaskProcess | null }>(TASKS_SERVICE, 'Get', { container_id: containerId, exec_id: execId }, options);
        if (response.process === null) throw new Error(`Tasks/Get of ${containerId} answered without a process`);
        return response.process;
      },
      async update(containerId, resources, annotations = {}, options) {
        await unary(TASKS_SERVICE, 'Update', { container_id: containerId, resources, annotations }, options);
      },
      async metrics(filters, options) {
        return (await unary<{ metrics: TaskMetric[] }>(TASKS_SERVICE, 'Metrics', { filters }, options)).metrics;
      },
      wait(containerId, execId = '', options) {
        return unary(TASKS_SERVICE, 'Wait', { container_id: containerId, exec_id: execId }, { timeoutMs: 60_000, ...options });
      },
    },
    close() {
      client.close();
    },
  };
}

class Subscription implements EventSubscription {
  readonly received: Envelope[] = [];
  ready = false;
  failure: Error | undefined;
  readonly #call: grpc.ClientReadableStream<object>;
  readonly #probeTopic: string;
  readonly #taken = new Set<Envelope>();
  #wake: (() => void) | undefined;
  #closed = false;

  constructor(call: grpc.ClientReadableStream<object>, probeTopic: string) {
    this.#call = call;
    this.#probeTopic = probeTopic;
    call.on('data', (message: object) => {
      const envelope = message as Envelope;
      if (envelope.topic === this.#probeTopic) this.ready = true;
      else this.received.push(envelope);
      this.#notify();
    });
    call.on('error', (error: Error) => {
      // Cancelling our own call is how close() ends it; anything else is a failure.
      if (!(this.#closed && isGrpcError(error, grpc.status.CANCELLED))) this.failure = error;
      this.#notify();
    });
    call.on('end', () => {
      if (!this.#closed) this.failure ??= new Error('containerd ended the event stream');
      this.#notify();
    });
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  /** Waits until something arrives or `ms` pass. */
  settle(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#wake = undefined;
        resolve();
      }, ms);
      this.#wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  async waitFor(predicate: (envelope: Envelope) => boolean, timeoutMs = 5_000): Promise<Envelope> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const match = this.received.find((e) => !this.#taken.has(e) && predicate(e));
      if (match !== undefined) {
        this.#taken.add(match);
        return match;
      }
      if (this.failure !== undefined) throw this.failure;
      const left = deadline - Date.now();
      if (left <= 0) {
        const seen = this.received.map((e) => `${e.namespace} ${e.topic} ${e.event?.type_url ?? '(no event)'}`);
        throw new Error(`no matching event within ${timeoutMs} ms; received ${seen.length === 0 ? 'nothing' : seen.join(', ')}`);
      }
      await this.settle(left);
    }
  }

  close(): void {
    this.#closed = true;
    this.#call.cancel();
  }
}

let typeRoot: protobuf.Root | undefined;

/** The vendored protos as a protobufjs Root, for decoding Any payloads (events, metrics). */
function types(): protobuf.Root {
  if (typeRoot === undefined) {
    const root = new protobuf.Root();
    // Imports name paths from the include root (github.com/...); google/protobuf/* files
    // are protobufjs's bundled copies whatever path this returns.
    root.resolvePath = (_origin, target) => (isAbsolute(target) ? target : join(PROTO_DIR, target));
    root.loadSync(PROTO_FILES.map((file) => join(PROTO_DIR, file)), { keepCase: true });
    typeRoot = root;
  }
  return typeRoot;
}

/** The message name of a type URL: `type.googleapis.com/a.B` and bare `a.B` both give `a.B`. */
export function typeNameOf(typeUrl: string): string {
  return typeUrl.slice(typeUrl.lastIndexOf('/') + 1);
}

/**
 * Decodes an Any with containerd's own message definitions (containerd.events.*,
 * io.containerd.cgroups.v1.Metrics, ...). Field names as in the .proto; int64 as number;
 * Timestamps as `{ seconds, nanos }`.
 *
 * @throws Error when the type is not among the vendored protos or the bytes do not decode.
 */
export function decodeAny(any: { readonly type_url: string; readonly value: Uint8Array }): Record<string, unknown> {
  const type = types().lookupType(typeNameOf(any.type_url));
  return type.toObject(type.decode(any.value), { longs: Number, enums: String, defaults: true });
}

/**
 * Encodes a message of the vendored protos as an Any with a bare type URL (the message's
 * full name, as containerd 1.6's typeurl writes it).
 *
 * @throws Error when the type is unknown or the object does not fit it.
 */
export function encodeAny(typeName: string, message: Record<string, unknown>): ProtoAny {
  const type = types().lookupType(typeName);
  const problem = type.verify(message);
  if (problem !== null) throw new Error(`not a valid ${typeName}: ${problem}`);
  return { type_url: typeName, value: Buffer.from(type.encode(type.fromObject(message)).finish()) };
}
