import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { createTar, type TarEntry } from './tar.js';

const work = mkdtempSync(join(tmpdir(), 'tsrun-tar-'));
after(() => {
  rmSync(work, { recursive: true, force: true });
});

const longDir = `${'d'.repeat(60)}/${'e'.repeat(60)}`;
const entries: TarEntry[] = [
  { kind: 'directory', path: 'bin', mode: 0o755 },
  { kind: 'file', path: 'bin/tool', mode: 0o755, data: Buffer.from('#!/bin/sh\necho hi\n') },
  { kind: 'symlink', path: 'bin/alias', target: 'tool' },
  { kind: 'directory', path: 'tmp', mode: 0o1777 },
  { kind: 'file', path: 'empty', mode: 0o600, data: new Uint8Array(0) },
  { kind: 'file', path: 'block', mode: 0o644, data: Buffer.alloc(512, 7) },
  { kind: 'directory', path: longDir, mode: 0o755 },
  { kind: 'file', path: `${longDir}/file-with-a-long-path.txt`, mode: 0o644, data: Buffer.from('deep') },
];

test('GNU tar reads every entry back with its type, mode, size and link target', () => {
  const path = join(work, 'list.tar');
  writeFileSync(path, createTar(entries));
  const listing = execFileSync('tar', ['--numeric-owner', '-tvf', path], { encoding: 'utf8' }).trim().split('\n');
  assert.equal(listing.length, entries.length);
  assert.match(listing[0]!, /^drwxr-xr-x 0\/0 +0 1970-01-01 00:00 bin\/$/);
  assert.match(listing[1]!, /^-rwxr-xr-x 0\/0 +18 1970-01-01 00:00 bin\/tool$/);
  assert.match(listing[2]!, /^lrwxrwxrwx 0\/0 +0 1970-01-01 00:00 bin\/alias -> tool$/);
  assert.match(listing[3]!, /^drwxrwxrwt 0\/0 +0 .* tmp\/$/);
  assert.match(listing[4]!, /^-rw------- 0\/0 +0 .* empty$/);
  assert.match(listing[5]!, /^-rw-r--r-- 0\/0 +512 .* block$/);
  assert.ok(listing[7]!.endsWith(`${longDir}/file-with-a-long-path.txt`), listing[7]);
});

test('extracted contents are byte-identical, including a path split into ustar prefix and name', () => {
  const path = join(work, 'extract.tar');
  const dir = mkdtempSync(join(work, 'x-'));
  writeFileSync(path, createTar(entries));
  execFileSync('tar', ['-xf', path, '-C', dir]);
  assert.equal(readFileSync(join(dir, 'bin/tool'), 'utf8'), '#!/bin/sh\necho hi\n');
  assert.equal(readlinkSync(join(dir, 'bin/alias')), 'tool');
  assert.deepEqual(readFileSync(join(dir, 'block')), Buffer.alloc(512, 7));
  assert.equal(readFileSync(join(dir, longDir, 'file-with-a-long-path.txt'), 'utf8'), 'deep');
  assert.equal(statSync(join(dir, 'tmp')).mode & 0o7777, 0o1777);
});

test('the same entries always give the same bytes (stable digests)', () => {
  assert.deepEqual(createTar(entries), createTar(entries));
  assert.equal(createTar(entries).length % 512, 0);
});

test('absolute and over-long paths are refused with a sentence', () => {
  assert.throws(() => createTar([{ kind: 'directory', path: '/etc', mode: 0o755 }]), /is absolute/);
  assert.throws(() => createTar([{ kind: 'file', path: 'x'.repeat(101), mode: 0o644, data: new Uint8Array(0) }]), /too long for ustar/);
  assert.throws(() => createTar([{ kind: 'symlink', path: 'l', target: 't'.repeat(101) }]), /more than ustar's 100/);
});
