/**
 * The `delete` action: containerd runs it after every task teardown and after a
 * daemon died (facts section 2.6). It must be idempotent and finish well within
 * containerd's 5 s: force-delete the OCI container (which kills what is left of
 * it), unmount the rootfs, and answer a DeleteResponse with the init pid, exit
 * status 137 (SIGKILL) and now, as the runc shim does.
 *
 * Fast path: when the daemon deleted the task cleanly it left `<bundle>/tsrun-deleted`
 * (deleted-marker.ts); then there is nothing to clean, and the answer is the exit the
 * daemon recorded, at once, without running the OCI runtime.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { containerd, timestampFromDate } from '../protos/index.js';
import { createProcessMonitor, type Logger } from '../core/index.js';
import { unmountAll } from '../core/mount.js';
import { createOciRuntime } from '../core/runc.js';
import { answer, failure, type ActionContext, type ActionRequest, type ActionResult } from './action.js';
import { readSettings, runtimeSettings } from './bundle.js';
import { readDeletedMarker } from './deleted-marker.js';
import type { ShimCommandLine } from './flags.js';

/** Runs `delete`. Never throws: failures come back as an exit code and a sentence. */
export async function deleteAction(cmd: ShimCommandLine, request: ActionRequest, context: ActionContext, logger: Logger): Promise<ActionResult> {
  const { id, namespace } = cmd.flags;
  if (id === '' || namespace === '') return failure('delete needs -id and -namespace (containerd passes them)');
  const bundle = cmd.flags.bundle !== '' ? cmd.flags.bundle : request.cwd;
  const deleted = readDeletedMarker(bundle);
  if (deleted !== undefined) {
    return answer(containerd.task.v2.DeleteResponse.encode({ pid: deleted.pid, exitStatus: deleted.exitStatus, exitedAt: timestampFromDate(deleted.exitedAt) }).finish());
  }
  const settings = readSettings(bundle);
  const monitor = createProcessMonitor(context.native, logger);
  let warning = '';
  try {
    const runtime = createOciRuntime({
      native: context.native,
      monitor,
      logger,
      namespace,
      containerId: id,
      bundle,
      settings: runtimeSettings(settings, namespace),
    });
    await runtime.delete(true);
  } catch (error) {
    // Not found is the idempotent case; anything else is worth a warning, but the
    // mounts must still go.
    const message = error instanceof Error ? error.message : String(error);
    if (!/not found|does not exist/i.test(message)) warning = `tsrun delete ${id}: ${message}\n`;
  } finally {
    monitor.close();
  }
  try {
    unmountAll(context.native, join(bundle, 'rootfs'));
  } catch (error) {
    return failure(`tsrun delete ${id}: cannot unmount ${join(bundle, 'rootfs')}: ${error instanceof Error ? error.message : String(error)}`);
  }
  const response = containerd.task.v2.DeleteResponse.encode({ pid: readPid(bundle), exitStatus: 128 + 9, exitedAt: timestampFromDate(new Date()) }).finish();
  return answer(response, warning);
}

function readPid(bundle: string): number {
  try {
    const pid = Number.parseInt(readFileSync(join(bundle, 'init.pid'), 'utf8').trim(), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : 0;
  } catch {
    return 0;
  }
}
