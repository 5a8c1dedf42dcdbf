/**
 * Dispatch of the one-shot actions: `-v`, `-info`, `start`, `delete`. A function of
 * the request, returning what the shim binary prints and its exit code; the
 * daemon (no action) is started by main.ts, not here.
 */
import type { Logger } from '../core/index.js';
import { failure, type ActionContext, type ActionRequest, type ActionResult } from './action.js';
import { deleteAction } from './delete.js';
import { FlagError, parseFlags } from './flags.js';
import { infoAction, versionAction } from './info.js';
import { start } from './start.js';

/** Runs one action. Never throws: every failure is an exit code and a sentence. */
export async function runAction(request: ActionRequest, context: ActionContext, logger: Logger): Promise<ActionResult> {
  let cmd;
  try {
    cmd = parseFlags(request.argv);
  } catch (error) {
    if (error instanceof FlagError) return failure(`containerd-shim-tsrun-v1: ${error.message}`, 2);
    throw error;
  }
  try {
    if (cmd.flags.version) return versionAction();
    if (cmd.flags.info) return infoAction();
    switch (cmd.action) {
      case 'start':
        return await start(cmd, request, context);
      case 'delete':
        return await deleteAction(cmd, request, context, logger);
      case '':
        return failure('containerd-shim-tsrun-v1: no action: the daemon is started by `start`, not by hand');
      default:
        return failure(`containerd-shim-tsrun-v1: unknown action '${cmd.action}': use start or delete (containerd runs them)`, 2);
    }
  } catch (error) {
    return failure(`containerd-shim-tsrun-v1 ${cmd.action}: ${error instanceof Error ? error.message : String(error)}`);
  }
}
