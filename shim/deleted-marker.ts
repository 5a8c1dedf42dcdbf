/**
 * `<bundle>/tsrun-deleted`: the daemon's note that it deleted a task cleanly, so the
 * `delete` action containerd runs after every teardown can answer at once, without
 * running the OCI runtime again (issue 7; facts section 2.6).
 *
 * The daemon writes it after the Task Delete of a container's init succeeded: `runc
 * delete` done and the rootfs no longer mounted. Nothing else writes it, and `start`
 * removes any left in a bundle before its daemon runs, so its presence proves that this
 * bundle's container is gone. Without it (the daemon died, or its delete failed) the
 * `delete` action does the full cleanup.
 *
 * Contents: JSON `{"pid": number, "exitStatus": number, "exitedAt": ISO-8601 string}`,
 * the init's exit as the daemon reported it to containerd.
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger, Runtime } from '../core/index.js';
import { mountPointsBelow } from '../core/mount.js';

/** The file name inside the bundle. */
export const DELETED_MARKER = 'tsrun-deleted';

/** The init's exit, as the Task Delete answered it. */
export interface DeletedTask {
  readonly pid: number;
  readonly exitStatus: number;
  readonly exitedAt: Date;
}

/** `<bundle>/tsrun-deleted`. */
export function deletedMarkerPath(bundle: string): string {
  return join(bundle, DELETED_MARKER);
}

/**
 * Writes the marker atomically (a reader never sees half of it).
 * @throws the fs error (e.g. ENOENT when the bundle is gone): the caller decides if that matters.
 */
export function writeDeletedMarker(bundle: string, task: DeletedTask): void {
  const path = deletedMarkerPath(bundle);
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, `${JSON.stringify({ pid: task.pid, exitStatus: task.exitStatus, exitedAt: task.exitedAt.toISOString() })}\n`, { mode: 0o600 });
  renameSync(tmp, path);
}

/** The marker's task, or undefined when there is no marker or it does not parse (the full cleanup runs then). Never throws. */
export function readDeletedMarker(bundle: string): DeletedTask | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(deletedMarkerPath(bundle), 'utf8'));
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null) return undefined;
  const { pid, exitStatus, exitedAt } = parsed as Record<string, unknown>;
  if (!isCount(pid) || !isCount(exitStatus) || typeof exitedAt !== 'string') return undefined;
  const date = new Date(exitedAt);
  if (Number.isNaN(date.getTime())) return undefined;
  return { pid, exitStatus, exitedAt: date };
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= 0xffffffff;
}

/**
 * The daemon's side: writes the marker into a container's bundle each time the core
 * reports its init deleted (`task-delete`, emitted once runc delete succeeded and the
 * container's resources were released, before the Task Delete answer goes out), unless
 * something is still mounted at or below `<bundle>/rootfs` (the core only logs a failed
 * unmount): then the `delete` action must do the full cleanup. Never throws.
 */
export function recordCleanDeletes(runtime: Runtime, logger: Logger): void {
  // Bundles by container id, from Create; a container's bundle is fixed for its life.
  const bundles = new Map<string, string>();
  runtime.on('task-create', (e) => {
    bundles.set(e.containerId, e.bundle);
  });
  runtime.on('task-delete', (e) => {
    // Only the init's delete ends the container (an exec's would carry its own id).
    if (e.id !== e.containerId) return;
    const bundle = bundles.get(e.containerId);
    bundles.delete(e.containerId);
    if (bundle === undefined) return;
    try {
      const mounted = mountPointsBelow(join(bundle, 'rootfs'));
      if (mounted.length > 0) {
        logger.warn({ container: e.containerId, mounted }, 'rootfs still mounted after delete: containerd\'s delete will clean up');
        return;
      }
      writeDeletedMarker(bundle, { pid: e.pid, exitStatus: e.exitStatus, exitedAt: e.exitedAt });
    } catch (err) {
      logger.warn({ err, container: e.containerId }, 'could not record the clean delete: containerd\'s delete will clean up');
    }
  });
}
