/**
 * The one ordered event publisher of a daemon: task events go to containerd's
 * `containerd.services.events.ttrpc.v1.Events/Forward` on `TTRPC_ADDRESS`
 * (facts section 2.9), strictly in the order they were published.
 *
 * Go's publisher re-queues a failed event at the back of its queue, so a retried
 * exit can overtake its start; here the event at the head is retried in place
 * (head-of-line), because containerd requires create < start < exit < delete.
 *
 * - Per call: a 5 s deadline, as containerd's publisher.
 * - Connection closed (containerd restarting): reconnect and retry at once.
 * - Other failures: retry after a backoff of 1, 2, 3, 4, 5 s, then drop the event
 *   with an error log line naming it (a lost event is logged, never silent).
 * - Bounded queue: when it is full the newest event is dropped and logged.
 */
import { EventEmitter } from 'eventemitter3';
import { containerd, google, packAny, timestampFromDate, type PropertiesOf, type TypeUrl } from '../protos/index.js';
import { connect, createServiceClient, defineService, isConnectionClosed, type ServiceClient, type TtrpcClient } from '../ttrpc/index.js';
import type { Logger } from '../core/index.js';

/** containerd's events ttrpc service (api/services/ttrpc/events/v1/events.proto). */
export const EventsService = defineService({
  Forward: { requestType: containerd.services.events.ttrpc.v1.ForwardRequest, responseType: google.protobuf.Empty },
});
export const eventsServiceName = 'containerd.services.events.ttrpc.v1.Events';

/** One task event: its topic and message. */
export interface TaskEvent<U extends TypeUrl = TypeUrl> {
  readonly topic: string;
  readonly typeUrl: U;
  readonly message: PropertiesOf<U>;
}

export interface PublisherOptions {
  /** containerd's ttrpc socket path (`TTRPC_ADDRESS`). */
  readonly address: string;
  readonly namespace: string;
  readonly logger: Logger;
  /** Queue bound (Go: 2048). */
  readonly maxQueued?: number;
  /** Retries after the first failure (Go: 5). */
  readonly maxRetries?: number;
  /** Backoff unit in ms: retry n waits n units (Go: 1 s). */
  readonly backoffMs?: number;
  readonly callTimeoutMs?: number;
}

interface PublisherEvents {
  /** An event containerd accepted (for tests and diagnostics). */
  forwarded: (topic: string) => void;
  /** An event given up on, after logging it. */
  dropped: (topic: string, reason: string) => void;
}

/** The ordered publisher. */
export interface Publisher extends EventEmitter<PublisherEvents> {
  /** Queues an event; never throws, never blocks. */
  publish<U extends TypeUrl>(event: TaskEvent<U>): void;
  /** Number of events not yet forwarded. */
  readonly pending: number;
  /** Waits (bounded) for the queue to drain, then closes the connection. */
  close(timeoutMs: number): Promise<void>;
}

interface Queued {
  readonly topic: string;
  readonly envelope: containerd.types.Envelope.$Properties;
}

/** Creates the publisher; it connects lazily on the first event. */
export function createPublisher(options: PublisherOptions): Publisher {
  return new OrderedPublisher(options);
}

class OrderedPublisher extends EventEmitter<PublisherEvents> implements Publisher {
  readonly #options: Required<PublisherOptions>;
  readonly #queue: Queued[] = [];
  #client: TtrpcClient | undefined;
  #events: ServiceClient<typeof EventsService> | undefined;
  #running = false;
  #closed = false;
  #idle: (() => void) | undefined;

  constructor(options: PublisherOptions) {
    super();
    this.#options = { maxQueued: 2048, maxRetries: 5, backoffMs: 1000, callTimeoutMs: 5000, ...options };
  }

  get pending(): number {
    return this.#queue.length;
  }

  publish<U extends TypeUrl>(event: TaskEvent<U>): void {
    if (this.#closed || this.#queue.length >= this.#options.maxQueued) {
      const reason = this.#closed ? 'the publisher is closed' : `the queue holds ${this.#options.maxQueued} events`;
      this.#options.logger.error({ topic: event.topic, reason }, 'event dropped');
      this.emit('dropped', event.topic, reason);
      return;
    }
    this.#queue.push({
      topic: event.topic,
      envelope: {
        timestamp: timestampFromDate(new Date()),
        namespace: this.#options.namespace,
        topic: event.topic,
        event: packAny(event.typeUrl, event.message),
      },
    });
    if (!this.#running) void this.#run();
  }

  async close(timeoutMs: number): Promise<void> {
    if (this.#queue.length > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, timeoutMs);
        this.#idle = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    this.#closed = true;
    for (const left of this.#queue.splice(0)) {
      this.#options.logger.error({ topic: left.topic, reason: 'the daemon is exiting' }, 'event dropped');
      this.emit('dropped', left.topic, 'the daemon is exiting');
    }
    await this.#client?.close();
    this.#client = undefined;
    this.#events = undefined;
  }

  /** The single sender: one event in flight at a time, in queue order. */
  async #run(): Promise<void> {
    this.#running = true;
    try {
      for (let head = this.#queue[0]; head !== undefined && !this.#closed; head = this.#queue[0]) {
        await this.#deliver(head);
        this.#queue.shift();
      }
    } finally {
      this.#running = false;
      const idle = this.#idle;
      this.#idle = undefined;
      idle?.();
    }
  }

  async #deliver(item: Queued): Promise<void> {
    let lastError = '';
    for (let attempt = 0; attempt <= this.#options.maxRetries; attempt++) {
      if (attempt > 0) await sleep(attempt * this.#options.backoffMs);
      if (this.#closed) return;
      try {
        await this.#forward(item);
        this.emit('forwarded', item.topic);
        return;
      } catch (error) {
        lastError = error instanceof Error ? error.message : String(error);
        if (isConnectionClosed(error)) {
          // containerd went away (restart): reconnect and retry at once, once.
          this.#dropClient();
          try {
            await this.#forward(item);
            this.emit('forwarded', item.topic);
            return;
          } catch (retryError) {
            lastError = retryError instanceof Error ? retryError.message : String(retryError);
            this.#dropClient();
          }
        }
        this.#options.logger.warn({ topic: item.topic, attempt: attempt + 1, error: lastError }, 'event forward failed');
      }
    }
    this.#options.logger.error({ topic: item.topic, retries: this.#options.maxRetries, error: lastError }, 'event dropped');
    this.emit('dropped', item.topic, lastError);
  }

  async #forward(item: Queued): Promise<void> {
    if (this.#events === undefined) {
      this.#client = await connect(this.#options.address);
      this.#events = createServiceClient(this.#client, eventsServiceName, EventsService);
    }
    await this.#events.Forward({ envelope: item.envelope }, { timeoutMs: this.#options.callTimeoutMs });
  }

  #dropClient(): void {
    // Closing a connection that already failed cannot fail in a way we could act on.
    void this.#client?.close();
    this.#client = undefined;
    this.#events = undefined;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
