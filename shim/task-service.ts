/**
 * containerd's Task API (`containerd.task.v2.Task`, same handlers under
 * `containerd.task.v3.Task`) mapped onto the runtime core. This file is the
 * protocol edge: protobuf in, domain calls, protobuf out; a core RuntimeError
 * becomes a ttrpc status here and nowhere else (DESIGN.md section 3, "one error
 * vocabulary").
 *
 * Method semantics follow containerd's runc shim (cmd/containerd-shim-runc-v2
 * task/service.go; facts section 3): Connect reports the daemon's pid and the init
 * pid; Shutdown is a no-op while any container remains; Stats answers cgroups v1 or
 * v2 Metrics in an Any; Pids marks exec processes with ProcessDetails.
 */
import { containerd, google, packAny, timestampFromDate, unpackAnyAs, typeNameOf } from '../protos/index.js';
import { Code, defineService, TtrpcError, type HandlerContext, type ServiceImplementation } from '../ttrpc/index.js';
import { AsyncLocalStorage } from 'node:async_hooks';
import { subscribe } from 'node:diagnostics_channel';
import { RuntimeError, runtimeInvocationChannel, type RuntimeInvocationMessage, type ErrorCode, type Logger, type ProcessStatus, type Runtime, type RuntimeSettings } from '../core/index.js';
import { readSettings, runtimeSettings } from './bundle.js';
import { saveCodeCacheSoon } from './code-cache-saver.js';
import { settingsFromAny } from './options.js';
import { SettingsError, type Settings } from './settings.js';
import { version } from './version.js';

const v2 = containerd.task.v2;

/** The Task service definition (method name -> message types), as containerd's shim.proto declares it. */
export const TaskService = defineService({
  State: { requestType: v2.StateRequest, responseType: v2.StateResponse },
  Create: { requestType: v2.CreateTaskRequest, responseType: v2.CreateTaskResponse },
  Start: { requestType: v2.StartRequest, responseType: v2.StartResponse },
  Delete: { requestType: v2.DeleteRequest, responseType: v2.DeleteResponse },
  Pids: { requestType: v2.PidsRequest, responseType: v2.PidsResponse },
  Pause: { requestType: v2.PauseRequest, responseType: google.protobuf.Empty },
  Resume: { requestType: v2.ResumeRequest, responseType: google.protobuf.Empty },
  Checkpoint: { requestType: v2.CheckpointTaskRequest, responseType: google.protobuf.Empty },
  Kill: { requestType: v2.KillRequest, responseType: google.protobuf.Empty },
  Exec: { requestType: v2.ExecProcessRequest, responseType: google.protobuf.Empty },
  ResizePty: { requestType: v2.ResizePtyRequest, responseType: google.protobuf.Empty },
  CloseIO: { requestType: v2.CloseIORequest, responseType: google.protobuf.Empty },
  Update: { requestType: v2.UpdateTaskRequest, responseType: google.protobuf.Empty },
  Wait: { requestType: v2.WaitRequest, responseType: v2.WaitResponse },
  Stats: { requestType: v2.StatsRequest, responseType: v2.StatsResponse },
  Connect: { requestType: v2.ConnectRequest, responseType: v2.ConnectResponse },
  Shutdown: { requestType: v2.ShutdownRequest, responseType: google.protobuf.Empty },
});

/** The ttrpc service names the daemon registers (containerd 1.6/1.7 call v2, 2.x v3). */
export const taskServiceNames = ['containerd.task.v2.Task', 'containerd.task.v3.Task'] as const;

export interface TaskServiceOptions {
  readonly runtime: Runtime;
  readonly namespace: string;
  readonly logger: Logger;
  /** Called when Shutdown found no container left: the daemon exits after answering. */
  readonly onShutdown: () => void;
  /**
   * Records a handled call: its whole duration and the part spent waiting for the
   * OCI runtime (so the shim's own cost is `ms - runtimeMs`).
   */
  readonly onTiming?: (method: string, ms: number, runtimeMs: number) => void;
}

type Empty = google.protobuf.Empty.$Properties;
const empty: Empty = {};

/** Builds the Task service implementation over a runtime. */
export function createTaskService(options: TaskServiceOptions): ServiceImplementation<typeof TaskService> {
  const { runtime, namespace } = options;

  const settingsFor = (bundle: string, any: google.protobuf.Any.$Properties | null | undefined): RuntimeSettings => {
    let settings: Settings = readSettings(bundle);
    if (any !== null && any !== undefined && (any.type_url ?? '') !== '') {
      try {
        settings = { ...settings, ...runtimeFields(settingsFromAny(any)) };
      } catch (error) {
        if (error instanceof SettingsError) throw new RuntimeError('InvalidArgument', error.message);
        throw error;
      }
    }
    return runtimeSettings(settings, namespace);
  };

  const service: ServiceImplementation<typeof TaskService> = {
    async State(request) {
      const state = await runtime.state(request.id, request.execId);
      return {
        id: state.containerId,
        bundle: state.bundle,
        pid: state.pid,
        status: statusOf(state.status),
        stdin: state.stdio.stdin,
        stdout: state.stdio.stdout,
        stderr: state.stdio.stderr,
        terminal: state.stdio.terminal,
        exitStatus: state.exit?.exitStatus ?? 0,
        exitedAt: state.exit === undefined ? null : timestampFromDate(state.exit.exitedAt),
        execId: state.execId,
      };
    },

    async Create(request) {
      const settings = settingsFor(request.bundle, request.options);
      const { pid } = await runtime.create({
        id: request.id,
        bundle: request.bundle,
        rootfs: request.rootfs.map((m) => ({ type: m.type ?? '', source: m.source ?? '', target: m.target ?? '', options: m.options ?? [] })),
        stdio: { stdin: request.stdin, stdout: request.stdout, stderr: request.stderr, terminal: request.terminal },
        checkpoint: request.checkpoint,
        parentCheckpoint: request.parentCheckpoint,
        settings,
      });
      return { pid };
    },

    async Start(request) {
      return runtime.start(request.id, request.execId);
    },

    async Delete(request) {
      const exit = await runtime.delete(request.id, request.execId);
      // A container went through Create, Start, Wait and Delete: what this process
      // compiled for that is worth a runtime code cache (code-cache.cts).
      if (request.execId === '') {
        saveCodeCacheSoon((err: unknown) => {
          options.logger.debug({ err }, 'could not write the runtime code cache');
        });
      }
      return { pid: exit.pid, exitStatus: exit.exitStatus, exitedAt: timestampFromDate(exit.exitedAt) };
    },

    async Pids(request) {
      const processes = await runtime.pids(request.id);
      return {
        processes: processes.map((p) => ({
          pid: p.pid,
          info: p.execId === undefined ? null : packAny('containerd.runc.v1.ProcessDetails', { execId: p.execId }),
        })),
      };
    },

    async Pause(request) {
      await runtime.pause(request.id);
      return empty;
    },

    async Resume(request) {
      await runtime.resume(request.id);
      return empty;
    },

    async Checkpoint(request) {
      const any = request.options;
      const opts = any === null || any === undefined || (any.type_url ?? '') === '' ? undefined : decodeOr(() => unpackAnyAs(any, 'containerd.runc.v1.CheckpointOptions'), 'checkpoint options');
      await runtime.checkpoint({
        containerId: request.id,
        path: request.path !== '' ? request.path : (opts?.imagePath ?? ''),
        exit: opts?.exit ?? false,
        openTcp: opts?.openTcp ?? false,
        externalUnixSockets: opts?.externalUnixSockets ?? false,
        terminal: opts?.terminal ?? false,
        fileLocks: opts?.fileLocks ?? false,
        emptyNamespaces: opts?.emptyNamespaces ?? [],
        cgroupsMode: opts?.cgroupsMode ?? '',
        workPath: opts?.workPath ?? '',
      });
      return empty;
    },

    async Kill(request) {
      await runtime.kill(request.id, request.execId, request.signal, request.all);
      return empty;
    },

    async Exec(request) {
      await runtime.exec({
        containerId: request.id,
        execId: request.execId,
        stdio: { stdin: request.stdin, stdout: request.stdout, stderr: request.stderr, terminal: request.terminal },
        spec: jsonOfAny(request.spec, 'exec process spec'),
      });
      return empty;
    },

    async ResizePty(request) {
      await runtime.resizePty(request.id, request.execId, { width: request.width, height: request.height });
      return empty;
    },

    async CloseIO(request) {
      await runtime.closeIO(request.id, request.execId);
      return empty;
    },

    async Update(request) {
      await runtime.update(request.id, jsonOfAny(request.resources, 'resources'));
      return empty;
    },

    async Wait(request, context: HandlerContext) {
      const exit = await abortable(runtime.wait(request.id, request.execId), context.signal);
      return { exitStatus: exit.exitStatus, exitedAt: timestampFromDate(exit.exitedAt) };
    },

    async Stats(request) {
      const stats = await runtime.stats(request.id);
      return {
        stats:
          stats.kind === 'v1'
            ? packAny('io.containerd.cgroups.v1.Metrics', stats.metrics)
            : packAny('io.containerd.cgroups.v2.Metrics', stats.metrics),
      };
    },

    Connect(request) {
      return { shimPid: process.pid, taskPid: request.id === '' ? 0 : runtime.initPid(request.id), version };
    },

    Shutdown() {
      // containerd calls Shutdown after every task delete; a group daemon lives on
      // while any of its containers remains (the runc shim does the same).
      if (runtime.containerIds().length === 0) options.onShutdown();
      return empty;
    },
  };
  return withErrorEdge(service, options);
}

/** Parses the JSON carried by a non-protobuf Any (OCI Process, LinuxResources). */
function jsonOfAny(any: google.protobuf.Any.$Properties | null | undefined, what: string): unknown {
  if (any === null || any === undefined || any.value === null || any.value === undefined || any.value.length === 0) {
    throw new RuntimeError('InvalidArgument', `the ${what} is missing: send it as JSON in an Any`);
  }
  try {
    return JSON.parse(Buffer.from(any.value).toString('utf8')) as unknown;
  } catch (error) {
    throw new RuntimeError('InvalidArgument', `the ${what} (${typeNameOf(any.type_url ?? '')}) is not valid JSON: ${error instanceof Error ? error.message : String(error)}`);
  }
}

function decodeOr<T>(decode: () => T, what: string): T {
  try {
    return decode();
  } catch (error) {
    throw new RuntimeError('InvalidArgument', `the ${what} do not decode: ${error instanceof Error ? error.message : String(error)}`);
  }
}

function runtimeFields(settings: Settings): Partial<Settings> {
  // Per-task options carry runc settings only; group policy and log level belong to the daemon.
  const { groupPolicy: _groupPolicy, logLevel: _logLevel, ...rest } = settings;
  return rest;
}

const statusNumbers: Readonly<Record<ProcessStatus, containerd.v1.types.Status>> = {
  created: containerd.v1.types.Status.CREATED,
  running: containerd.v1.types.Status.RUNNING,
  stopped: containerd.v1.types.Status.STOPPED,
  deleted: containerd.v1.types.Status.STOPPED,
  paused: containerd.v1.types.Status.PAUSED,
  pausing: containerd.v1.types.Status.PAUSING,
};

function statusOf(status: ProcessStatus): containerd.v1.types.Status {
  return statusNumbers[status];
}

/** Rejects when the call is cancelled, so a Wait of a client that went away does not pin anything. */
function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(toError(signal.reason));
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => {
      reject(toError(signal.reason));
    };
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(toError(error));
      },
    );
  });
}

function toError(reason: unknown): Error {
  return reason instanceof Error ? reason : new Error(String(reason));
}

const codes: Readonly<Record<ErrorCode, Code>> = {
  InvalidArgument: Code.InvalidArgument,
  NotFound: Code.NotFound,
  AlreadyExists: Code.AlreadyExists,
  FailedPrecondition: Code.FailedPrecondition,
  Unimplemented: Code.Unimplemented,
  Unavailable: Code.Unavailable,
  DeadlineExceeded: Code.DeadlineExceeded,
  Canceled: Code.Canceled,
  Internal: Code.Internal,
  Unknown: Code.Unknown,
};

/**
 * The one place a domain error becomes a ttrpc status: RuntimeError codes map by
 * name; a TtrpcError passes through; anything else is Unknown with its message
 * (logged with its stack, which never goes on the wire).
 */
export function toTtrpcError(error: unknown, logger: Logger, method: string): TtrpcError {
  if (error instanceof TtrpcError) return error;
  if (error instanceof RuntimeError) return new TtrpcError(codes[error.code], error.message, { cause: error });
  const message = error instanceof Error ? error.message : String(error);
  logger.error({ method, err: error }, 'unexpected error in a Task call');
  return new TtrpcError(Code.Unknown, message, { cause: error });
}

/** The Task call in flight, so the OCI runtime's time can be attributed to it. */
const callTiming = new AsyncLocalStorage<{ runtimeMs: number }>();
let listening = false;

function countRuntimeTime(message: unknown): void {
  const store = callTiming.getStore();
  if (store !== undefined) store.runtimeMs += (message as RuntimeInvocationMessage).durationMs;
}

function withErrorEdge(service: ServiceImplementation<typeof TaskService>, options: TaskServiceOptions): ServiceImplementation<typeof TaskService> {
  if (options.onTiming !== undefined && !listening) {
    subscribe(runtimeInvocationChannel.name, countRuntimeTime);
    listening = true;
  }
  const wrapped: Record<string, unknown> = {};
  for (const [name, handler] of Object.entries(service) as [string, (request: never, context: HandlerContext) => unknown][]) {
    wrapped[name] = (request: never, context: HandlerContext): Promise<unknown> => {
      const store = { runtimeMs: 0 };
      return callTiming.run(store, async () => {
        const started = performance.now();
        try {
          return await handler(request, context);
        } catch (error) {
          throw toTtrpcError(error, options.logger, name);
        } finally {
          options.onTiming?.(name, performance.now() - started, store.runtimeMs);
        }
      });
    };
  }
  return wrapped as ServiceImplementation<typeof TaskService>;
}

