/**
 * The runtime core: every container of one daemon, behind the {@link Runtime}
 * contract of api.ts. This file validates ids, keeps the container table and turns
 * anything thrown into a {@link RuntimeError}; the lifecycle itself is container.ts.
 */
import { EventEmitter } from 'eventemitter3';
import type {
  CheckpointRequest,
  ContainerStats,
  CreateRequest,
  ExecRequest,
  ExitInfo,
  Logger,
  ProcessInfo,
  ProcessState,
  Runtime,
  RuntimeEvents,
  RuntimeOptions,
} from './api.js';
import type { ContainerContext } from './container.js';
import { Container } from './container.js';
import { RuntimeError, alreadyExists, notFound } from './errors.js';
import { validateId } from './ids.js';
import type { ProcessMonitor } from './process-monitor.js';
import { createProcessMonitor } from './process-monitor.js';

/** Default bound on draining a process's stdout/stderr after its exit (ms). */
export const DEFAULT_IO_DRAIN_TIMEOUT_MS = 2000;

/**
 * Creates the runtime core. It starts its own {@link ProcessMonitor} (SIGCHLD and the
 * orphan sweep); the daemon must have called `native.setChildSubreaper()` so that
 * container processes reparent to it.
 */
export function createRuntime(options: RuntimeOptions): Runtime {
  return new RuntimeCore(options);
}

class RuntimeCore extends EventEmitter<RuntimeEvents> implements Runtime {
  readonly #logger: Logger;
  readonly #monitor: ProcessMonitor;
  readonly #context: ContainerContext;
  readonly #containers = new Map<string, Container>();
  /** Ids whose create is in flight: taken, but not yet visible to other calls. */
  readonly #creating = new Set<string>();

  constructor(options: RuntimeOptions) {
    super();
    this.#logger = options.logger;
    this.#monitor = createProcessMonitor(options.native, options.logger);
    this.#context = {
      native: options.native,
      monitor: this.#monitor,
      logger: options.logger,
      namespace: options.namespace,
      ioDrainTimeoutMs: options.ioDrainTimeoutMs ?? DEFAULT_IO_DRAIN_TIMEOUT_MS,
      emit: (event, payload) => {
        this.#emit(event, payload);
      },
    };
  }

  create(request: CreateRequest): Promise<{ pid: number }> {
    return guard(async () => {
      validateId('container', request.id);
      if (this.#containers.has(request.id) || this.#creating.has(request.id)) {
        throw alreadyExists(`container '${request.id}' already exists`);
      }
      this.#creating.add(request.id);
      try {
        const container = await Container.create(this.#context, request);
        this.#containers.set(request.id, container);
        return { pid: container.init.pid };
      } finally {
        this.#creating.delete(request.id);
      }
    });
  }

  start(containerId: string, execId = ''): Promise<{ pid: number }> {
    return guard(() => this.#container(containerId, execId).start(execId));
  }

  delete(containerId: string, execId = ''): Promise<ExitInfo> {
    return guard(async () => {
      const container = this.#container(containerId, execId);
      const exit = await container.delete(execId);
      if (execId === '') this.#containers.delete(containerId);
      return exit;
    });
  }

  exec(request: ExecRequest): Promise<void> {
    return guard(() => {
      validateId('exec', request.execId);
      this.#container(request.containerId, '').addExec(request);
      return Promise.resolve();
    });
  }

  kill(containerId: string, execId: string, signal: number, all: boolean): Promise<void> {
    return guard(() => this.#container(containerId, execId).kill(execId, signal, all));
  }

  resizePty(containerId: string, execId: string, size: { width: number; height: number }): Promise<void> {
    return guard(() => {
      this.#container(containerId, execId).resizePty(execId, size);
      return Promise.resolve();
    });
  }

  closeIO(containerId: string, execId: string): Promise<void> {
    return guard(() => {
      this.#container(containerId, execId).closeIO(execId);
      return Promise.resolve();
    });
  }

  pause(containerId: string): Promise<void> {
    return guard(() => this.#container(containerId, '').pause());
  }

  resume(containerId: string): Promise<void> {
    return guard(() => this.#container(containerId, '').resume());
  }

  update(containerId: string, resources: unknown): Promise<void> {
    return guard(() => this.#container(containerId, '').update(resources));
  }

  pids(containerId: string): Promise<ProcessInfo[]> {
    return guard(() => this.#container(containerId, '').pids());
  }

  state(containerId: string, execId = ''): Promise<ProcessState> {
    return guard(() => Promise.resolve(this.#container(containerId, execId).state(execId)));
  }

  wait(containerId: string, execId = ''): Promise<ExitInfo> {
    return guard(() => this.#container(containerId, execId).wait(execId));
  }

  stats(containerId: string): Promise<ContainerStats> {
    return guard(() => this.#container(containerId, '').stats());
  }

  checkpoint(request: CheckpointRequest): Promise<void> {
    return guard(() => this.#container(request.containerId, '').checkpoint(request));
  }

  containerIds(): string[] {
    return [...this.#containers.keys()];
  }

  initPid(containerId: string): number {
    return this.#containers.get(containerId)?.init.pid ?? 0;
  }

  async close(): Promise<void> {
    for (const container of this.#containers.values()) await container.close();
    this.#monitor.close();
  }

  #container(containerId: string, execId: string): Container {
    validateId('container', containerId);
    if (execId !== '') validateId('exec', execId);
    const container = this.#containers.get(containerId);
    if (container === undefined) throw notFound(`container '${containerId}' not found`);
    return container;
  }

  /** A listener that throws must not break the lifecycle that emitted the event. */
  #emit<K extends keyof RuntimeEvents>(event: K, payload: Parameters<RuntimeEvents[K]>[0]): void {
    this.#logger.debug({ event, payload }, 'event');
    try {
      (this.emit as (event: K, payload: Parameters<RuntimeEvents[K]>[0]) => boolean)(event, payload);
    } catch (err) {
      this.#logger.error({ err, event }, 'an event listener threw');
    }
  }
}

/** Runs a verb and turns anything it throws into a RuntimeError (Unknown unless it is one). */
async function guard<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw RuntimeError.from(err);
  }
}
