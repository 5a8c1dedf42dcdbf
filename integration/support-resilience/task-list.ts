/**
 * `ctr task ls` as a user reads it: one row per task with its init pid and status. What
 * ctr prints is what containerd's Tasks service answers, which for a tsrun task is the
 * shim's own State (containerd 1.6 keeps no task state of its own).
 */
import type { Ctr, CtrCallOptions } from '../harness/index.js';

/** One row of `ctr task ls`. */
export interface TaskRow {
  readonly id: string;
  readonly pid: number;
  /** As ctr prints it: RUNNING, STOPPED, CREATED, PAUSED, PAUSING, UNKNOWN. */
  readonly status: string;
}

/**
 * Parses `ctr task ls` output ("TASK  PID  STATUS" then one row per task).
 * @throws Error on a row that is not three columns with a numeric pid.
 */
export function parseTaskList(stdout: string): TaskRow[] {
  const rows: TaskRow[] = [];
  for (const line of stdout.split('\n').slice(1)) {
    if (line.trim() === '') continue;
    const [id, pid, status, ...rest] = line.trim().split(/\s+/);
    if (id === undefined || pid === undefined || status === undefined || rest.length > 0 || !/^\d+$/.test(pid)) {
      throw new Error(`not a 'ctr task ls' row: ${JSON.stringify(line)}`);
    }
    rows.push({ id, pid: Number(pid), status });
  }
  return rows;
}

/**
 * The tasks of a namespace, by id.
 * @throws CtrError when ctr fails.
 */
export async function taskList(ctr: Ctr, options?: CtrCallOptions): Promise<Map<string, TaskRow>> {
  const rows = parseTaskList(await ctr.ok(['task', 'ls'], options));
  return new Map(rows.map((row) => [row.id, row]));
}

/** The rows as one line for failure messages: "a 123 RUNNING, b 0 STOPPED". */
export function describeTasks(tasks: ReadonlyMap<string, TaskRow>): string {
  return tasks.size === 0 ? '(no tasks)' : [...tasks.values()].map((t) => `${t.id} ${t.pid} ${t.status}`).join(', ');
}
