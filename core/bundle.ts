/**
 * An OCI bundle as the runtime core reads it: the directory, its config.json, and the
 * few facts of the spec that change what core/ does. Refuses what runc would refuse
 * later with a vaguer message (DESIGN.md section 3, "Bad input never takes the daemon
 * down").
 */
import { readFileSync, statSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { hasErrno, invalidArgument, messageOf, notFound } from './errors.js';

/** What core/ needs to know of a bundle. */
export interface Bundle {
  /** Absolute path of the bundle directory. */
  readonly path: string;
  /** `<bundle>/rootfs`, where the rootfs mounts go. */
  readonly rootfs: string;
  /**
   * Whether the container gets a pid namespace of its own. Without one, the init's
   * exit does not take the other processes down, so core/ kills them all
   * (containerd's ShouldKillAllOnExit).
   */
  readonly ownPidNamespace: boolean;
}

/**
 * Reads and checks `<path>/config.json`. Throws InvalidArgument for a relative path or
 * an invalid spec, NotFound when the bundle or its config.json does not exist.
 * Synchronous, as the Go shim reads it: containerd wrote the file a moment ago (it is in
 * the page cache), and two thread pool round trips cost about 1 ms of every Create here.
 */
export function readBundle(path: string): Bundle {
  if (!isAbsolute(path)) throw invalidArgument(`bundle path '${path}' is not absolute`);
  try {
    if (!statSync(path).isDirectory()) throw invalidArgument(`bundle '${path}' is not a directory`);
  } catch (err) {
    if (hasErrno(err, 'ENOENT')) throw notFound(`bundle '${path}' does not exist`, err);
    throw err;
  }
  const configPath = join(path, 'config.json');
  let text: string;
  try {
    text = readFileSync(configPath, 'utf8');
  } catch (err) {
    if (hasErrno(err, 'ENOENT')) throw notFound(`bundle '${path}' has no config.json`, err);
    throw invalidArgument(`cannot read the config.json of bundle '${path}': ${messageOf(err)}`, err);
  }
  let spec: unknown;
  try {
    spec = JSON.parse(text);
  } catch (err) {
    throw invalidArgument(`the config.json of bundle '${path}' is not valid JSON: ${messageOf(err)}`, err);
  }
  if (!isObject(spec)) throw invalidArgument(`the config.json of bundle '${path}' is not a JSON object`);
  return { path, rootfs: join(path, 'rootfs'), ownPidNamespace: hasOwnPidNamespace(spec) };
}

/** A pid namespace entry without a path means a new namespace (runtime-spec config-linux.md). */
function hasOwnPidNamespace(spec: Record<string, unknown>): boolean {
  const linux = spec['linux'];
  if (!isObject(linux)) return false;
  const namespaces = linux['namespaces'];
  if (!Array.isArray(namespaces)) return false;
  return namespaces.some((ns: unknown) => isObject(ns) && ns['type'] === 'pid' && (ns['path'] === undefined || ns['path'] === ''));
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
