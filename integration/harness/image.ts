/**
 * Test images built locally from Debian's busybox-static, without network: one layer
 * (busybox at /bin/busybox, a symlink per applet, minimal /etc/passwd and /etc/group, /tmp),
 * wrapped in an OCI image layout inside an OCI archive that `ctr images import` reads.
 *
 * Two images share the layer:
 *   docker.io/tsrun/busybox:test  Cmd ["sh"]: for `ctr run IMAGE ID cmd...`
 *   docker.io/tsrun/pause:test    an entrypoint that sleeps until SIGTERM/SIGINT and exits 0,
 *                                 as Kubernetes' pause does: the CRI pod sandbox image.
 *
 * The archive is byte-for-byte reproducible (fixed mtimes, owners and order), built once per
 * process and cached on disk by content digest, so every test file of a run reuses it.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Ctr, CtrCallOptions } from './ctr.js';
import { createTar, type TarEntry } from './tar.js';

/** The general-purpose test image. */
export const BUSYBOX_IMAGE = 'docker.io/tsrun/busybox:test';
/** The pod sandbox image for CRI tests. */
export const PAUSE_IMAGE = 'docker.io/tsrun/pause:test';
/** Where Debian's busybox-static installs the static binary. */
export const BUSYBOX_BINARY = '/bin/busybox';

/** The pause image's process: sleep until told to stop, then exit 0 (k8s pause semantics). */
export const PAUSE_COMMAND: readonly string[] = ['/bin/sh', '-c', 'trap "exit 0" TERM INT; while :; do sleep 3600 & wait; done'];

const PATH_ENV = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const EPOCH = '1970-01-01T00:00:00Z';

/** A built archive and what it holds. */
export interface ImageArchive {
  /** The OCI archive (tar) on disk. */
  readonly path: string;
  /** Image names, as `ctr images import` will register them. */
  readonly images: readonly string[];
  /** Digest of the single (uncompressed) layer, which is also its diff_id. */
  readonly layerDigest: string;
  /** Manifest digest per image name. */
  readonly manifests: Readonly<Record<string, string>>;
}

interface Blob {
  readonly digest: string;
  readonly bytes: Buffer;
}

function blob(bytes: Buffer): Blob {
  return { digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}`, bytes };
}

function json(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value));
}

/** The OCI platform architecture of this Node process. @throws Error on an architecture tests do not support. */
export function ociArchitecture(arch: string = process.arch): string {
  switch (arch) {
    case 'x64':
      return 'amd64';
    case 'arm64':
      return 'arm64';
    default:
      throw new Error(`no OCI architecture known for Node's '${arch}': add it to integration/harness/image.ts`);
  }
}

/**
 * The layer's tar entries: busybox, one symlink per applet in /bin, minimal /etc, and the
 * directories a container expects.
 */
export function busyboxLayerEntries(busybox: Uint8Array, applets: readonly string[]): TarEntry[] {
  const entries: TarEntry[] = [
    { kind: 'directory', path: 'bin', mode: 0o755 },
    { kind: 'file', path: 'bin/busybox', mode: 0o755, data: busybox },
  ];
  for (const applet of [...new Set(applets)].sort()) {
    if (applet === 'busybox' || applet.includes('/') || applet === '') continue;
    entries.push({ kind: 'symlink', path: `bin/${applet}`, target: 'busybox' });
  }
  entries.push(
    { kind: 'directory', path: 'dev', mode: 0o755 },
    { kind: 'directory', path: 'etc', mode: 0o755 },
    { kind: 'file', path: 'etc/group', mode: 0o644, data: Buffer.from('root:x:0:\nnobody:x:65534:\n') },
    {
      kind: 'file',
      path: 'etc/passwd',
      mode: 0o644,
      data: Buffer.from('root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n'),
    },
    { kind: 'directory', path: 'proc', mode: 0o755 },
    { kind: 'directory', path: 'root', mode: 0o700 },
    { kind: 'directory', path: 'sys', mode: 0o755 },
    { kind: 'directory', path: 'tmp', mode: 0o1777 },
    { kind: 'directory', path: 'usr', mode: 0o755 },
    { kind: 'directory', path: 'usr/bin', mode: 0o755 },
    // Scripts written for other images start with #!/usr/bin/env.
    { kind: 'symlink', path: 'usr/bin/env', target: '../../bin/busybox' },
    { kind: 'directory', path: 'var', mode: 0o755 },
  );
  return entries;
}

/** The image config and manifest of one image over the shared layer. */
function imageBlobs(layer: Blob, architecture: string, process: Record<string, unknown>, description: string): { config: Blob; manifest: Blob } {
  const config = blob(
    json({
      created: EPOCH,
      architecture,
      os: 'linux',
      config: { Env: [PATH_ENV], WorkingDir: '/', ...process },
      rootfs: { type: 'layers', diff_ids: [layer.digest] },
      history: [{ created: EPOCH, created_by: description }],
    }),
  );
  const manifest = blob(
    json({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config.digest, size: config.bytes.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: layer.digest, size: layer.bytes.length }],
    }),
  );
  return { config, manifest };
}

/**
 * Builds the OCI archive in memory.
 *
 * @param busybox the static busybox binary's bytes.
 * @param applets the applet names it provides (`busybox --list`).
 */
export function buildImageArchive(busybox: Uint8Array, applets: readonly string[], architecture: string): { tar: Buffer; archive: Omit<ImageArchive, 'path'> } {
  const layer = blob(createTar(busyboxLayerEntries(busybox, applets)));
  const images = [
    { name: BUSYBOX_IMAGE, ...imageBlobs(layer, architecture, { Cmd: ['sh'] }, 'tsrun integration harness: Debian busybox-static') },
    { name: PAUSE_IMAGE, ...imageBlobs(layer, architecture, { Entrypoint: [...PAUSE_COMMAND] }, 'tsrun integration harness: pause') },
  ];
  const index = json({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: images.map((image) => ({
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      digest: image.manifest.digest,
      size: image.manifest.bytes.length,
      platform: { architecture, os: 'linux' },
      annotations: {
        // containerd's importer takes the full name from this annotation (images/archive
        // importer: AnnotationImageName wins over the OCI ref name + --base-name).
        'io.containerd.image.name': image.name,
        'org.opencontainers.image.ref.name': image.name.slice(image.name.lastIndexOf(':') + 1),
      },
    })),
  });
  const blobs = new Map<string, Buffer>();
  for (const b of [layer, ...images.flatMap((i) => [i.config, i.manifest])]) blobs.set(b.digest, b.bytes);
  const entries: TarEntry[] = [
    { kind: 'file', path: 'oci-layout', mode: 0o644, data: json({ imageLayoutVersion: '1.0.0' }) },
    { kind: 'file', path: 'index.json', mode: 0o644, data: index },
    { kind: 'directory', path: 'blobs', mode: 0o755 },
    { kind: 'directory', path: 'blobs/sha256', mode: 0o755 },
    ...[...blobs].map(([digest, bytes]): TarEntry => ({ kind: 'file', path: `blobs/sha256/${digest.slice('sha256:'.length)}`, mode: 0o644, data: bytes })),
  ];
  return {
    tar: createTar(entries),
    archive: {
      images: images.map((i) => i.name),
      layerDigest: layer.digest,
      manifests: Object.fromEntries(images.map((i) => [i.name, i.manifest.digest])),
    },
  };
}

let cached: Promise<ImageArchive> | undefined;

/**
 * The test images' archive on disk: built on first use in this process, stored under
 * `$TMPDIR/tsrun-images/<digest>.tar` (content-addressed, so concurrent test processes and
 * later runs reuse it safely).
 *
 * @throws Error when busybox is missing (install busybox-static) or the archive cannot be written.
 */
export function testImageArchive(busyboxPath: string = BUSYBOX_BINARY): Promise<ImageArchive> {
  cached ??= (async () => {
    if (!existsSync(busyboxPath)) throw new Error(`${busyboxPath} not found: install Debian's busybox-static (apt-get install busybox-static)`);
    const busybox = readFileSync(busyboxPath);
    const applets = execFileSync(busyboxPath, ['--list'], { encoding: 'utf8' }).split('\n').filter((a) => a !== '');
    const { tar, archive } = buildImageArchive(busybox, applets, ociArchitecture());
    const dir = join(tmpdir(), 'tsrun-images');
    const path = join(dir, `${createHash('sha256').update(tar).digest('hex').slice(0, 32)}.tar`);
    if (!existsSync(path)) {
      await mkdir(dir, { recursive: true });
      // Write then rename: another test process may be reading the same path.
      const partial = `${path}.${process.pid}.partial`;
      await writeFile(partial, tar);
      await rename(partial, path);
    }
    return { path, ...archive };
  })();
  const pending = cached;
  // A failed build must not stay cached: the next caller retries.
  pending.catch(() => {
    if (cached === pending) cached = undefined;
  });
  return pending;
}

/**
 * Imports the test images into a containerd namespace (unpacked for the overlayfs
 * snapshotter), so `ctr run BUSYBOX_IMAGE ...` and CRI's sandbox image work offline.
 *
 * @returns the archive that was imported.
 * @throws CtrError when the import fails.
 */
export async function importTestImages(ctr: Ctr, options: CtrCallOptions = {}): Promise<ImageArchive> {
  const archive = await testImageArchive();
  await ctr.ok(['images', 'import', archive.path], { timeoutMs: 60_000, ...options });
  return archive;
}
