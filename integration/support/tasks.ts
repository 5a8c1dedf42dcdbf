/**
 * What `ctr task ls|ps|metrics` print, parsed, and where a task's files are on the host.
 * Everything is read the way a user reads it (ctr's own output) or straight from the
 * kernel (cgroupfs, /proc), never from tsrun's own state.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ContainerdInstance, Ctr } from '../harness/index.js';
import { waitUntil, type PollOptions } from './poll.js';

/** One row of `ctr task ls`. */
export interface TaskRow {
  readonly pid: number;
  readonly status: string;
}

/** `ctr task ls` as a map from task id to its row. @throws CtrError */
export async function taskRows(ctr: Ctr): Promise<Map<string, TaskRow>> {
  const out = await ctr.ok(['tasks', 'list']);
  const rows = new Map<string, TaskRow>();
  for (const line of out.trim().split('\n').slice(1)) {
    const [id, pid, status] = line.trim().split(/\s+/);
    if (id !== undefined && pid !== undefined && status !== undefined) rows.set(id, { pid: Number(pid), status });
  }
  return rows;
}

/**
 * Waits until `ctr task ls` shows the task in `status` (RUNNING, PAUSED, STOPPED, ...).
 * @returns its row.
 * @throws Error after the bound, naming the last status seen.
 */
export async function waitForTask(ctr: Ctr, id: string, status: string, options: PollOptions = {}): Promise<TaskRow> {
  let last = 'absent';
  try {
    return await waitUntil(`task ${id} to be ${status}`, async () => {
      const row = (await taskRows(ctr)).get(id);
      last = row?.status ?? 'absent';
      return row?.status === status ? row : undefined;
    }, options);
  } catch (error) {
    throw new Error(`${error instanceof Error ? error.message : String(error)} (last seen: ${last})`);
  }
}

/** One row of `ctr task ps`: a host pid and, for an exec process, its exec id. */
export interface PsRow {
  readonly pid: number;
  /** The ExecID from the row's ProcessDetails; undefined for the init and its children. */
  readonly execId: string | undefined;
}

/** `ctr task ps ID`. @throws CtrError */
export async function psRows(ctr: Ctr, id: string): Promise<PsRow[]> {
  const out = await ctr.ok(['tasks', 'ps', id]);
  // "PID      INFO\n16894    -\n16925    &ProcessDetails{ExecID:e1,XXX_unrecognized:[],}"
  return out
    .trim()
    .split('\n')
    .slice(1)
    .map((line) => {
      const [pid, ...info] = line.trim().split(/\s+/);
      const execId = /ExecID:([^,}]*)/.exec(info.join(' '))?.[1];
      return { pid: Number(pid), execId };
    });
}

/** `ctr task metrics ID` (table format) as metric name -> printed value. @throws CtrError */
export async function metricValues(ctr: Ctr, id: string): Promise<Map<string, string>> {
  const out = await ctr.ok(['tasks', 'metrics', id]);
  const values = new Map<string, string>();
  const table = out.split(/\n\s*\n/)[1] ?? '';
  for (const line of table.trim().split('\n').slice(1)) {
    const match = /^(\S+)\s+(.*?)\s*$/.exec(line);
    if (match?.[1] !== undefined && match[2] !== undefined) values.set(match[1], match[2]);
  }
  return values;
}

/** The host path of a file inside a running task's root filesystem (containerd mounts it in the bundle). */
export function rootfsPath(instance: ContainerdInstance, id: string, path: string): string {
  return join(instance.state, 'io.containerd.runtime.v2.task', instance.namespace, id, 'rootfs', path);
}

/** A cgroup v1 file of a container `ctr run` placed at `/<namespace>/<id>`. */
export function cgroupFile(instance: ContainerdInstance, controller: string, id: string, file: string): string {
  return join('/sys/fs/cgroup', controller, instance.namespace, id, file);
}

/** Reads a small text file, trimmed; undefined when it does not exist (yet). */
export function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
}
