/**
 * Typed service definitions and implementations, after connect-es
 * `implementation.ts`: a definition lists each method's request and response
 * message types; an implementation is an object with one handler per method,
 * typed from the definition. Handlers receive decoded messages and a
 * {@link HandlerContext}, and never see bytes.
 *
 * Message types are anything with a static `decode(bytes)` and
 * `encode(message).finish()`, which is what protobufjs static code generates.
 */
import type { Socket } from 'node:net';

/**
 * What ttrpc-ts needs of a message class: protobufjs static classes fit as
 * they are (`encode(message, writer?)` and `decode(reader | bytes, length?)`).
 */
export interface MessageClass {
  encode(message: never): { finish(): Uint8Array };
  decode(bytes: Uint8Array): unknown;
}

/** The type `T.encode` accepts: what a handler returns, and what a client sends. */
export type MessageInput<T extends MessageClass> = T extends { encode(message: infer M): unknown } ? M : never;

/** The type `T.decode` returns: what a handler receives, and what a client gets back. */
export type MessageOutput<T extends MessageClass> = ReturnType<T['decode']>;

/** One unary method of a service definition. */
export interface MethodDefinition<Req extends MessageClass = MessageClass, Res extends MessageClass = MessageClass> {
  /** Decodes the request on the server, encodes it on the client. */
  readonly requestType: Req;
  /** Encodes the response on the server, decodes it on the client. */
  readonly responseType: Res;
}

/** A service: method name (as on the wire, e.g. `Create`) to method definition. */
export type ServiceDefinition = Readonly<Record<string, MethodDefinition>>;

/**
 * Metadata of a call: lower-cased keys, each with the values in the order they
 * arrived (a key may repeat on the wire; ttrpc metadata.go appends).
 */
export type Metadata = ReadonlyMap<string, readonly string[]>;

/** What a handler knows about the call it serves, besides the request. */
export interface HandlerContext {
  /** The service name as requested, e.g. `containerd.task.v2.Task`. */
  readonly service: string;
  /** The method name, e.g. `Create`. */
  readonly method: string;
  /** The stream id of the call on its connection. */
  readonly streamId: number;
  /**
   * Aborts when the call's deadline (the request's `timeout_nano`) passes,
   * with a {@link Code.DeadlineExceeded} TtrpcError as reason, and when the
   * connection goes away or the server is closed, with {@link Code.Canceled}.
   * As in Go, nothing else stops the handler: its answer is still sent if the
   * connection is up when it returns.
   */
  readonly signal: AbortSignal;
  /** The deadline in milliseconds since the epoch, or undefined when the caller set none. */
  readonly deadline: number | undefined;
  /** The request metadata. */
  readonly metadata: Metadata;
  /** The connection the call arrived on (e.g. for peer credentials). */
  readonly peer: Socket;
}

/** A unary handler: returns (or resolves to) the response message, or throws. */
export type UnaryHandler<I, O> = (request: I, context: HandlerContext) => Promise<O> | O;

/** The handler type of one method definition. */
export type HandlerOf<M extends MethodDefinition> = UnaryHandler<
  MessageOutput<M['requestType']>,
  MessageInput<M['responseType']>
>;

/**
 * An implementation of a whole service definition: one handler per method.
 * A method you do not support should throw `new TtrpcError(Code.Unimplemented, ...)`.
 */
export type ServiceImplementation<S extends ServiceDefinition> = {
  readonly [K in keyof S]: HandlerOf<S[K]>;
};

/**
 * A method ready to register: its message types and its handler. Build it with
 * {@link unary} or {@link implement}, which check the handler against the types.
 */
export interface UnaryMethod<
  Req extends MessageClass = MessageClass,
  Res extends MessageClass = MessageClass,
> extends MethodDefinition<Req, Res> {
  readonly handler: UnaryHandler<MessageOutput<Req>, MessageInput<Res>>;
}

/**
 * A registered method with its types erased: what {@link ServiceMethods}
 * holds. The handler takes `never` so any typed handler fits.
 */
export interface AnyUnaryMethod {
  readonly requestType: MessageClass;
  readonly responseType: MessageClass;
  handler(request: never, context: HandlerContext): unknown;
}

/** A service's methods as the server registers them: method name to method. */
export type ServiceMethods = Readonly<Record<string, AnyUnaryMethod>>;

/**
 * Declares a service definition. The identity function, there for type
 * inference: the result keeps each method's message types.
 *
 * @example
 * ```ts
 * const Echo = defineService({ Say: { requestType: SayRequest, responseType: SayResponse } });
 * ```
 */
export function defineService<const S extends ServiceDefinition>(definition: S): S {
  return definition;
}

/**
 * Builds one typed method: the handler's request and response types follow
 * from the message types.
 */
export function unary<Req extends MessageClass, Res extends MessageClass>(method: {
  readonly requestType: Req;
  readonly responseType: Res;
  readonly handler: UnaryHandler<MessageOutput<Req>, MessageInput<Res>>;
}): UnaryMethod<Req, Res> {
  return method;
}

/**
 * Joins a definition and an implementation into methods to register. Handlers
 * are called with the implementation as `this`, so a class instance works.
 * Register the result under as many service names as you like (containerd's
 * `containerd.task.v2.Task` and `containerd.task.v3.Task` share one).
 *
 * @throws TypeError when the implementation lacks a handler for a defined method.
 */
export function implement<S extends ServiceDefinition>(
  definition: S,
  implementation: ServiceImplementation<S>,
): ServiceMethods {
  const methods: Record<string, AnyUnaryMethod> = {};
  for (const [name, method] of Object.entries(definition)) {
    const handler: unknown = (implementation as Readonly<Record<string, unknown>>)[name];
    if (typeof handler !== 'function')
      throw new TypeError(`ttrpc: the implementation has no handler for method '${name}'`);
    methods[name] = {
      requestType: method.requestType,
      responseType: method.responseType,
      handler: (request: never, context: HandlerContext): unknown =>
        Reflect.apply(handler, implementation, [request, context]),
    };
  }
  return Object.freeze(methods);
}
