/**
 * The files of a task bundle that the shim reads and writes (facts section 2.5):
 * `config.json` (containerd; annotations decide the group), `address` (the shim;
 * containerd 1.6/1.7 reconnect with it after a restart), `tsrun.json` (the shim;
 * the settings `start` decoded, so `delete` and the daemon find the OCI runtime
 * and its root without containerd's options).
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RuntimeSettings } from '../core/index.js';
import { defaultSettings, type Settings } from './settings.js';

/** A bundle that cannot be used; the message says which file and why. */
export class BundleError extends Error {
  override readonly name = 'BundleError';
}

/**
 * The OCI annotations of `<bundle>/config.json`.
 * @throws BundleError when config.json is missing or not a JSON object.
 */
export function readAnnotations(bundle: string): Record<string, string> {
  const path = join(bundle, 'config.json');
  let spec: unknown;
  try {
    spec = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new BundleError(`cannot read the OCI spec ${path}: ${reason}`);
  }
  if (typeof spec !== 'object' || spec === null) throw new BundleError(`the OCI spec ${path} is not a JSON object`);
  const annotations = (spec as { annotations?: unknown }).annotations;
  if (annotations === undefined || annotations === null) return {};
  if (typeof annotations !== 'object') throw new BundleError(`the OCI spec ${path} has annotations that are not an object`);
  const result: Record<string, string> = {};
  for (const [key, value] of Object.entries(annotations)) {
    if (typeof value === 'string') result[key] = value;
  }
  return result;
}

/** Writes `<bundle>/address` atomically (containerd reads it after a restart). */
export function writeAddress(bundle: string, address: string): void {
  writeAtomic(join(bundle, 'address'), address);
}

/** Persists the decoded settings for `delete` and the daemon. */
export function writeSettings(bundle: string, settings: Settings): void {
  writeAtomic(join(bundle, 'tsrun.json'), `${JSON.stringify(settings)}\n`);
}

/** The settings `start` persisted, or the defaults when there are none (a bundle from before tsrun, or a failed start). */
export function readSettings(bundle: string): Settings {
  let text: string;
  try {
    text = readFileSync(join(bundle, 'tsrun.json'), 'utf8');
  } catch {
    return defaultSettings;
  }
  try {
    const parsed = JSON.parse(text) as Partial<Settings>;
    return { ...defaultSettings, ...parsed };
  } catch {
    return defaultSettings;
  }
}

/** The OCI runtime root of a namespace: `<Root or /run/containerd/runc>/<namespace>`, as the Go shim joins it. */
export function runtimeRoot(settings: Settings, namespace: string): string {
  return join(settings.root === '' ? '/run/containerd/runc' : settings.root, namespace);
}

/** What the core needs of the settings to drive the OCI runtime of a container in `namespace`. */
export function runtimeSettings(settings: Settings, namespace: string): RuntimeSettings {
  return {
    binaryName: settings.binaryName,
    root: runtimeRoot(settings, namespace),
    systemdCgroup: settings.systemdCgroup,
    noPivotRoot: settings.noPivotRoot,
    noNewKeyring: settings.noNewKeyring,
    ioUid: settings.ioUid,
    ioGid: settings.ioGid,
    criuImagePath: settings.criuImagePath,
    criuWorkPath: settings.criuWorkPath,
  };
}

function writeAtomic(path: string, content: string): void {
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, content, { mode: 0o600 });
  renameSync(tmp, path);
}
