/**
 * `-v` and `-info` (facts section 2.7). `-info` answers a
 * `containerd.types.RuntimeInfo` protobuf; containerd 2.2+ calls it once per
 * runtime name before the first Create and only logs a failure.
 */
import { containerd } from '../protos/index.js';
import { answer, type ActionResult } from './action.js';
import { runtimeName, version } from './version.js';

/** `-v`: the version text Go shims print. */
export function versionAction(): ActionResult {
  return answer(`${runtimeName}:\n  Version:  ${version}\n  Runtime:  node ${process.version}\n`);
}

/** `-info`: RuntimeInfo with our name and version. */
export function infoAction(): ActionResult {
  const info = containerd.types.RuntimeInfo.encode({ name: runtimeName, version: { version, revision: '' } }).finish();
  return answer(info);
}
