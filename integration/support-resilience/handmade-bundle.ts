/**
 * OCI bundles made by hand, for Task calls sent straight to a daemon's socket (bypassing
 * containerd): a rootfs of Debian's static busybox with a few applet links, and a
 * config.json derived from a spec containerd itself wrote, so the spec is realistic.
 */
import { copyFile, mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BUSYBOX_BINARY } from '../harness/index.js';

/** What {@link createHandmadeBundle} needs. */
export interface HandmadeBundleOptions {
  /** Parent directory; the bundle is `<dir>/<id>`. */
  readonly dir: string;
  readonly id: string;
  /** The containerd namespace: the container's cgroup is `/<namespace>/<id>`, as `ctr run` makes it. */
  readonly namespace: string;
  /** A config.json containerd wrote (another task's bundle), used as the template. */
  readonly template: string;
  /** The init process's argv. */
  readonly args: readonly string[];
}

const APPLETS = ['sh', 'sleep', 'echo', 'cat'];

/**
 * Creates the bundle directory with `rootfs/` (busybox) and `config.json`; returns its path.
 * The rootfs is a plain directory: a Create for it sends no rootfs mounts.
 */
export async function createHandmadeBundle(options: HandmadeBundleOptions): Promise<string> {
  const bundle = join(options.dir, options.id);
  const rootfs = join(bundle, 'rootfs');
  for (const dir of ['bin', 'proc', 'dev', 'sys', 'tmp', 'etc', 'run']) await mkdir(join(rootfs, dir), { recursive: true });
  await copyFile(BUSYBOX_BINARY, join(rootfs, 'bin', 'busybox'));
  for (const applet of APPLETS) await symlink('busybox', join(rootfs, 'bin', applet));

  const spec = JSON.parse(await readFile(options.template, 'utf8')) as Record<string, unknown>;
  const processSpec = { ...(spec['process'] as Record<string, unknown>), args: [...options.args], terminal: false };
  const linux = { ...(spec['linux'] as Record<string, unknown>), cgroupsPath: `/${options.namespace}/${options.id}` };
  const config = { ...spec, process: processSpec, linux, root: { path: 'rootfs', readonly: false }, hostname: options.id, annotations: {} };
  await writeFile(join(bundle, 'config.json'), JSON.stringify(config, null, 2));
  return bundle;
}

/** A bundle directory whose config.json is not JSON. */
export async function createBundleWithInvalidSpec(dir: string, id: string): Promise<string> {
  const bundle = join(dir, id);
  await mkdir(join(bundle, 'rootfs'), { recursive: true });
  await writeFile(join(bundle, 'config.json'), '{"ociVersion": "1.0.2", "process": {');
  return bundle;
}
