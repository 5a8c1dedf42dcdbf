/**
 * The dispatcher: services by name, methods by name, and the typed call of one
 * method (decode the payload, run the handler, encode the answer), after
 * `serviceSet` in containerd/ttrpc services.go. It knows messages, not frames
 * or sockets; every failure leaves it as a TtrpcError for the connection to
 * answer with.
 */
import { Code } from './code.js';
import { errorText } from './envelope.js';
import type { AnyUnaryMethod, HandlerContext, MessageClass, ServiceMethods } from './service.js';
import { TtrpcError } from './ttrpc-error.js';

/** @internal The service registry of one server. */
export class Dispatcher {
  readonly #services = new Map<string, ReadonlyMap<string, AnyUnaryMethod>>();

  /**
   * Adds a service.
   *
   * @throws Error when `name` is already registered (Go panics: "duplicate
   *   service %v registered"), TypeError when a method is malformed.
   */
  register(name: string, methods: ServiceMethods): void {
    if (this.#services.has(name)) throw new Error(`ttrpc: duplicate service ${name} registered`);
    const table = new Map<string, AnyUnaryMethod>();
    for (const [methodName, method] of Object.entries(methods)) {
      if (
        typeof method.handler !== 'function' ||
        !isMessageType(method.requestType) ||
        !isMessageType(method.responseType)
      ) {
        throw new TypeError(
          `ttrpc: method ${name}/${methodName} needs requestType.decode, responseType.encode and a handler`,
        );
      }
      table.set(methodName, method);
    }
    this.#services.set(name, table);
  }

  /**
   * Finds a method.
   *
   * @throws TtrpcError Unimplemented "service X" or "method Y", Go's words
   *   (services.go `handle`).
   */
  lookup(service: string, method: string): AnyUnaryMethod {
    const methods = this.#services.get(service);
    if (methods === undefined) throw new TtrpcError(Code.Unimplemented, `service ${service}`);
    const found = methods.get(method);
    if (found === undefined) throw new TtrpcError(Code.Unimplemented, `method ${method}`);
    return found;
  }

  /**
   * Runs one unary call and returns the encoded response message.
   *
   * @throws TtrpcError Internal "ttrpc: error unmarshalling payload: ..." when
   *   the payload does not decode (services.go `protoUnmarshal`), Internal when
   *   the handler returns nothing or its answer does not encode, and whatever
   *   the handler throws (as is: the connection normalises it).
   */
  async invoke(method: AnyUnaryMethod, payload: Uint8Array, context: HandlerContext): Promise<Uint8Array> {
    let request: unknown;
    try {
      request = method.requestType.decode(payload);
    } catch (cause) {
      throw new TtrpcError(Code.Internal, `ttrpc: error unmarshalling payload: ${errorText(cause)}`, { cause });
    }
    // Called as a method so a handler keeps its `this`.
    const response = await (
      method as unknown as { handler(request: unknown, context: HandlerContext): unknown }
    ).handler(request, context);
    if (response === undefined || response === null) {
      throw new TtrpcError(Code.Internal, `ttrpc: ${context.service}/${context.method} returned no response message`);
    }
    try {
      return (method.responseType as unknown as { encode(message: unknown): { finish(): Uint8Array } })
        .encode(response)
        .finish();
    } catch (cause) {
      throw new TtrpcError(Code.Internal, `ttrpc: error marshaling payload: ${errorText(cause)}`, { cause });
    }
  }
}

function isMessageType(value: MessageClass | undefined): boolean {
  return value !== undefined && typeof value.decode === 'function' && typeof value.encode === 'function';
}
