/**
 * The tsrun side of a private containerd: where a task's bundle is, which socket its shim
 * daemon serves (the `address` file the shim wrote, which containerd 1.6 reads to reconnect
 * after a restart), a Task client on that socket, and the daemon processes themselves.
 */
import { readFileSync, readlinkSync } from 'node:fs';
import { join, relative } from 'node:path';
import { connect, createServiceClient, type ServiceClient, type TtrpcClient } from '../../ttrpc/index.js';
import { TaskService } from '../../shim/task-service.js';
import { listProcesses, withFlag, type ContainerdInstance, type ProcessEntry } from '../harness/index.js';

/** The ttrpc service name containerd 1.6 calls. */
export const TASK_SERVICE_V2 = 'containerd.task.v2.Task';

/** The bundle containerd made for a task: `<state>/io.containerd.runtime.v2.task/<namespace>/<id>`. */
export function bundleDir(instance: ContainerdInstance, namespace: string, id: string): string {
  return join(instance.state, 'io.containerd.runtime.v2.task', namespace, id);
}

/**
 * The socket path of the daemon serving a task, from `<bundle>/address` (`unix://` removed).
 * @throws Error when the bundle has no address file (no such task, or its start failed).
 */
export function shimSocketOf(instance: ContainerdInstance, namespace: string, id: string): string {
  const address = readFileSync(join(bundleDir(instance, namespace, id), 'address'), 'utf8').trim();
  return address.startsWith('unix://') ? address.slice('unix://'.length) : address;
}

/** A Task client on one daemon socket, and the connection under it (close it when done). */
export interface TaskConnection {
  readonly client: TtrpcClient;
  readonly task: ServiceClient<typeof TaskService>;
}

/**
 * Connects tsrun's own ttrpc client to a daemon socket, as containerd does.
 * @throws TtrpcError Unavailable when nothing listens there.
 */
export async function connectTask(socketPath: string): Promise<TaskConnection> {
  const client = await connect(socketPath);
  return { client, task: createServiceClient(client, TASK_SERVICE_V2, TaskService) };
}

/** What the Task API's Connect tells about a task's daemon. */
export interface ShimIdentity {
  /** The daemon's pid (Connect's shim_pid). */
  readonly shimPid: number;
  /** The task's init pid (Connect's task_pid). */
  readonly taskPid: number;
  /** The socket it serves. */
  readonly socket: string;
}

/**
 * Asks the daemon serving a task who it is (Task/Connect over its socket).
 * @throws Error when the task has no address file; TtrpcError when the daemon does not answer.
 */
export async function shimIdentity(instance: ContainerdInstance, namespace: string, id: string): Promise<ShimIdentity> {
  const socket = shimSocketOf(instance, namespace, id);
  const { client, task } = await connectTask(socket);
  try {
    const answer = await task.Connect({ id }, { timeoutMs: 10_000 });
    return { shimPid: answer.shimPid, taskPid: answer.taskPid, socket };
  } finally {
    await client.close();
  }
}

/** A running tsrun group daemon. */
export interface ShimDaemon {
  readonly pid: number;
  readonly namespace: string;
  /** The `-id` it was started with: the first container of its group. */
  readonly id: string;
  readonly argv: readonly string[];
}

/**
 * The tsrun daemons of one containerd: processes running the shim's daemon entry point
 * (`.../shim/entry.cjs`, or `main.js` without the launcher's default; no action) with `-address <containerd's socket>`. The short-lived
 * `start`/`delete` processes run `bin/containerd-shim-tsrun-v1` and are not listed, nor
 * the manager (`-manager`) and a spare still waiting for a group (`-spare`, cwd `/`).
 * A spare that adopted a group keeps its command line `entry.cjs -spare -address <a>`: its
 * namespace and first container come from its cwd, that container's bundle
 * `<state>/io.containerd.runtime.v2.task/<namespace>/<id>` (shim/spare.ts).
 */
export async function shimDaemons(instance: ContainerdInstance): Promise<ShimDaemon[]> {
  const processes = withFlag(await listProcesses(), '-address', instance.address);
  return processes.filter(isDaemon).flatMap((p): ShimDaemon[] => {
    if (!p.argv.includes('-spare')) return [{ pid: p.pid, namespace: flagValue(p.argv, '-namespace'), id: flagValue(p.argv, '-id'), argv: p.argv }];
    const [namespace, id, ...rest] = relative(join(instance.state, 'io.containerd.runtime.v2.task'), cwdOf(p.pid)).split('/');
    if (namespace === undefined || id === undefined || namespace === '..' || namespace === '' || rest.length > 0) return []; // waiting
    return [{ pid: p.pid, namespace, id, argv: p.argv }];
  });
}

function isDaemon(p: ProcessEntry): boolean {
  const script = p.argv[1] ?? '';
  return (script.endsWith('/shim/entry.cjs') || script.endsWith('/shim/main.js')) && !p.argv.includes('start') && !p.argv.includes('delete') && !p.argv.includes('-manager');
}

/** A process's cwd; its bundle may be deleted already (readlink then ends in " (deleted)"). */
function cwdOf(pid: number): string {
  try {
    return readlinkSync(`/proc/${pid}/cwd`).replace(/ \(deleted\)$/, '');
  } catch {
    return '/';
  }
}

function flagValue(argv: readonly string[], flag: string): string {
  const index = argv.indexOf(flag);
  return index >= 0 ? (argv[index + 1] ?? '') : '';
}

/** The daemons as one line for failure messages. */
export function describeDaemons(daemons: readonly ShimDaemon[]): string {
  return daemons.length === 0 ? '(none)' : daemons.map((d) => `${d.pid} ${d.namespace}/${d.id}`).join(', ');
}
