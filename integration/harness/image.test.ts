import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { BUSYBOX_IMAGE, PAUSE_COMMAND, PAUSE_IMAGE, buildImageArchive, ociArchitecture } from './image.js';

const work = mkdtempSync(join(tmpdir(), 'tsrun-image-'));
after(() => {
  rmSync(work, { recursive: true, force: true });
});

const fakeBusybox = Buffer.from('not really busybox, but bytes to package');
const built = buildImageArchive(fakeBusybox, ['sh', 'echo', 'sleep', 'busybox', '['], 'amd64');

function extract(tar: Buffer, name: string): string {
  const dir = mkdtempSync(join(work, `${name}-`));
  const path = join(dir, 'archive.tar');
  writeFileSync(path, tar);
  execFileSync('tar', ['-xf', path, '-C', dir]);
  return dir;
}

function readJson(path: string): Record<string, unknown> {
  return JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
}

function blobPath(dir: string, digest: string): string {
  return join(dir, 'blobs', 'sha256', digest.replace(/^sha256:/, ''));
}

test('the archive is an OCI layout whose every blob is named by its own sha256', () => {
  const dir = extract(built.tar, 'layout');
  assert.deepEqual(readJson(join(dir, 'oci-layout')), { imageLayoutVersion: '1.0.0' });
  for (const name of readdirSync(join(dir, 'blobs', 'sha256'))) {
    const digest = createHash('sha256').update(readFileSync(join(dir, 'blobs', 'sha256', name))).digest('hex');
    assert.equal(digest, name);
  }
});

test('index.json names both images for ctr import and points at manifests over one shared layer', () => {
  const dir = extract(built.tar, 'index');
  const index = readJson(join(dir, 'index.json')) as { manifests: { digest: string; platform: unknown; annotations: Record<string, string> }[] };
  assert.deepEqual(
    index.manifests.map((m) => m.annotations['io.containerd.image.name']),
    [BUSYBOX_IMAGE, PAUSE_IMAGE],
  );
  for (const descriptor of index.manifests) {
    assert.deepEqual(descriptor.platform, { architecture: 'amd64', os: 'linux' });
    const manifest = readJson(blobPath(dir, descriptor.digest)) as { config: { digest: string }; layers: { digest: string; size: number }[] };
    assert.equal(manifest.layers.length, 1);
    assert.equal(manifest.layers[0]!.digest, built.archive.layerDigest);
    const config = readJson(blobPath(dir, manifest.config.digest)) as { rootfs: { diff_ids: string[] }; os: string; architecture: string };
    // An uncompressed layer's diff_id is its digest.
    assert.deepEqual(config.rootfs.diff_ids, [built.archive.layerDigest]);
    assert.equal(config.os, 'linux');
  }
});

test('the pause image sleeps until TERM; the busybox image runs sh', () => {
  const dir = extract(built.tar, 'configs');
  const configOf = (name: string): { config: { Cmd?: string[]; Entrypoint?: string[] } } => {
    const manifest = readJson(blobPath(dir, built.archive.manifests[name]!)) as { config: { digest: string } };
    return readJson(blobPath(dir, manifest.config.digest)) as { config: { Cmd?: string[]; Entrypoint?: string[] } };
  };
  assert.deepEqual(configOf(BUSYBOX_IMAGE).config.Cmd, ['sh']);
  assert.deepEqual(configOf(PAUSE_IMAGE).config.Entrypoint, [...PAUSE_COMMAND]);
});

test('the layer holds busybox, one symlink per applet, /etc/passwd and a sticky /tmp', () => {
  const dir = extract(built.tar, 'layer');
  const rootfs = extract(readFileSync(blobPath(dir, built.archive.layerDigest)), 'rootfs');
  assert.deepEqual(readFileSync(join(rootfs, 'bin/busybox')), fakeBusybox);
  assert.equal(readlinkSync(join(rootfs, 'bin/sh')), 'busybox');
  assert.equal(readlinkSync(join(rootfs, 'bin/[')), 'busybox');
  assert.match(readFileSync(join(rootfs, 'etc/passwd'), 'utf8'), /^root:x:0:0:/);
  const listing = execFileSync('tar', ['-tvf', blobPath(dir, built.archive.layerDigest)], { encoding: 'utf8' });
  assert.match(listing, /^drwxrwxrwt .* tmp\/$/m);
  assert.doesNotMatch(listing, /bin\/busybox -> /);
});

test('building twice gives the same bytes, so digests are stable across runs', () => {
  const again = buildImageArchive(fakeBusybox, ['busybox', '[', 'sleep', 'echo', 'sh'], 'amd64');
  assert.deepEqual(again.tar, built.tar);
});

test('Node architectures map to OCI names', () => {
  assert.equal(ociArchitecture('x64'), 'amd64');
  assert.equal(ociArchitecture('arm64'), 'arm64');
  assert.throws(() => ociArchitecture('mips'), /no OCI architecture known/);
});
