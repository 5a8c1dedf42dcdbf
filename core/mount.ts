/**
 * Rootfs mounting: containerd's `mount.All` / `mount.UnmountAll` semantics over the
 * native facade's mount(2) and umount2(2).
 *
 * Follows containerd's core/mount/mount_linux.go (parseMountOptions, Mount.mount,
 * compactLowerdirOption, UnmountAll) with these differences, each on purpose:
 * - Propagation options (`private`, `rprivate`, `shared`, `rshared`, `slave`, `rslave`,
 *   `unbindable`, `runbindable`) are flags, as in runc's table. containerd's table lacks
 *   them (they would reach the filesystem as data and fail), yet its mount code already
 *   applies propagation as a second mount(2) call; so do we.
 * - Long overlay `lowerdir=` lists are shortened by naming the layers' common parent
 *   through an open directory fd (`/proc/self/fd/<n>/<layer>`) instead of containerd's
 *   chdir in a thread that unshared CLONE_FS: Node has one process-wide cwd, and
 *   changing it would race every relative path in the daemon.
 * - `loop`, `uidmap=`/`gidmap=` and `fuse.*`/`fuse3.*` types (loop devices, idmapped
 *   mounts, mount helpers) are refused with a sentence instead of half-supported.
 * - unmountAll reads /proc/self/mountinfo and unmounts every mount at or below the
 *   target, deepest first, instead of unmounting the target until EINVAL.
 */
import {
  closeSync,
  lstatSync,
  openSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  constants as fsConstants,
} from 'node:fs';
import type { Native } from '../native/facade.js';
import type { Mount } from './api.js';
import { RuntimeError } from './errors.js';

/** MS_* bits of mount(2) (linux/mount.h). */
export const MS = {
  RDONLY: 0x1,
  NOSUID: 0x2,
  NODEV: 0x4,
  NOEXEC: 0x8,
  SYNCHRONOUS: 0x10,
  REMOUNT: 0x20,
  MANDLOCK: 0x40,
  DIRSYNC: 0x80,
  NOATIME: 0x400,
  NODIRATIME: 0x800,
  BIND: 0x1000,
  REC: 0x4000,
  SILENT: 0x8000,
  UNBINDABLE: 0x20000,
  PRIVATE: 0x40000,
  SLAVE: 0x80000,
  SHARED: 0x100000,
  RELATIME: 0x200000,
  STRICTATIME: 0x1000000,
} as const;

/** umount2(2) flag: detach now, clean up once no longer busy. */
const MNT_DETACH = 0x2;

const PROPAGATION = MS.SHARED | MS.PRIVATE | MS.SLAVE | MS.UNBINDABLE;

/**
 * The kernel copies at most one page of mount data. 4096 is the smallest page size
 * Linux runs with, so the check is conservative on 16K/64K-page machines.
 */
const PAGE_SIZE = 4096;

/** How an option changes the flags: set or clear these bits. */
interface FlagOption {
  readonly clear: boolean;
  readonly flag: number;
}

/** containerd's table (core/mount/mount_linux.go parseMountOptions) plus runc's propagation names. */
const FLAG_OPTIONS: ReadonlyMap<string, FlagOption> = new Map<string, FlagOption>([
  ['async', { clear: true, flag: MS.SYNCHRONOUS }],
  ['atime', { clear: true, flag: MS.NOATIME }],
  ['bind', { clear: false, flag: MS.BIND }],
  ['defaults', { clear: false, flag: 0 }],
  ['dev', { clear: true, flag: MS.NODEV }],
  ['diratime', { clear: true, flag: MS.NODIRATIME }],
  ['dirsync', { clear: false, flag: MS.DIRSYNC }],
  ['exec', { clear: true, flag: MS.NOEXEC }],
  ['mand', { clear: false, flag: MS.MANDLOCK }],
  ['noatime', { clear: false, flag: MS.NOATIME }],
  ['nodev', { clear: false, flag: MS.NODEV }],
  ['nodiratime', { clear: false, flag: MS.NODIRATIME }],
  ['noexec', { clear: false, flag: MS.NOEXEC }],
  ['nomand', { clear: true, flag: MS.MANDLOCK }],
  ['norelatime', { clear: true, flag: MS.RELATIME }],
  ['nostrictatime', { clear: true, flag: MS.STRICTATIME }],
  ['nosuid', { clear: false, flag: MS.NOSUID }],
  ['rbind', { clear: false, flag: MS.BIND | MS.REC }],
  ['relatime', { clear: false, flag: MS.RELATIME }],
  ['remount', { clear: false, flag: MS.REMOUNT }],
  ['ro', { clear: false, flag: MS.RDONLY }],
  ['rw', { clear: true, flag: MS.RDONLY }],
  ['strictatime', { clear: false, flag: MS.STRICTATIME }],
  ['suid', { clear: true, flag: MS.NOSUID }],
  ['sync', { clear: false, flag: MS.SYNCHRONOUS }],
  ['private', { clear: false, flag: MS.PRIVATE }],
  ['rprivate', { clear: false, flag: MS.PRIVATE | MS.REC }],
  ['shared', { clear: false, flag: MS.SHARED }],
  ['rshared', { clear: false, flag: MS.SHARED | MS.REC }],
  ['slave', { clear: false, flag: MS.SLAVE }],
  ['rslave', { clear: false, flag: MS.SLAVE | MS.REC }],
  ['unbindable', { clear: false, flag: MS.UNBINDABLE }],
  ['runbindable', { clear: false, flag: MS.UNBINDABLE | MS.REC }],
]);

/** Mount options split as mount(2) wants them. */
export interface ParsedMountOptions {
  /** MS_* bits, propagation bits included. */
  readonly flags: number;
  /** Everything that is not a flag, in order: the filesystem's own options. */
  readonly data: readonly string[];
}

/**
 * Splits fstab-style options into MS_* flags and filesystem data, as containerd's
 * parseMountOptions does: a known flag sets or clears its bits in order (so `ro,rw` is
 * read-write), anything else is data. Never throws.
 */
export function parseMountOptions(options: readonly string[]): ParsedMountOptions {
  let flags = 0;
  const data: string[] = [];
  for (const option of options) {
    const known = FLAG_OPTIONS.get(option);
    if (known !== undefined && known.flag !== 0) {
      flags = known.clear ? flags & ~known.flag : flags | known.flag;
    } else if (known === undefined) {
      data.push(option);
    }
    // 'defaults' (flag 0) is dropped, as mount(8) does. containerd passes it on as
    // data, where overlay and tmpfs fail with EINVAL (checked on kernel 6.18).
  }
  return { flags, data };
}

/**
 * Mounts `mounts` in order onto `target` (`<bundle>/rootfs`); a mount's own non-empty
 * `target` names a path inside `target`, resolved like containerd's fs.RootPath
 * (symlinks followed but never out of `target`). Parents must precede their submounts.
 *
 * Throws a {@link RuntimeError} (`InvalidArgument` for options tsrun does not support or
 * over-long options, `Unknown` for a failed mount(2), with the native error as cause).
 * On failure every mount this call made is undone first, so nothing leaks.
 */
export function mountAll(native: Native, mounts: readonly Mount[], target: string): void {
  const made: string[] = [];
  try {
    for (const mount of mounts) {
      const at = mount.target === '' ? target : resolveInRoot(target, mount.target);
      mountOne(native, mount, at, () => made.push(at));
    }
  } catch (error) {
    for (const at of made.reverse()) {
      try {
        unmountOne(native, at);
      } catch {
        // Best effort: the original error is the one worth reporting.
      }
    }
    throw error;
  }
}

/**
 * Unmounts `target` and every mount below it, deepest first, as listed by
 * /proc/self/mountinfo (stacked mounts on one path are all removed). A target that does
 * not exist or is not mounted is fine (idempotent). EBUSY is retried briefly, then the
 * mount is detached (MNT_DETACH), so the rootfs never stays mounted.
 *
 * Throws a {@link RuntimeError} when umount2 fails otherwise (e.g. EPERM) or mounts remain.
 */
export function unmountAll(native: Native, target: string): void {
  if (target === '') return;
  const root = existingRealPath(target);
  if (root === undefined) return;
  // Unmounting can uncover mounts (propagation, a mount made meanwhile): re-read a few times.
  for (let round = 0; round < 8; round++) {
    const below = mountPointsAtOrBelow(root);
    if (below.length === 0) return;
    for (const mountPoint of below) unmountOne(native, mountPoint);
  }
  const left = mountPointsAtOrBelow(root);
  if (left.length > 0) {
    throw new RuntimeError('Unknown', `could not unmount everything below ${root}: still mounted: ${left.join(', ')}`);
  }
}

/** One line of /proc/self/mountinfo (proc(5)). Paths are unescaped. */
export interface MountInfoEntry {
  readonly id: number;
  readonly parentId: number;
  readonly major: number;
  readonly minor: number;
  /** The root of the mount within its filesystem. */
  readonly root: string;
  readonly mountPoint: string;
  readonly mountOptions: string;
  readonly optionalFields: readonly string[];
  readonly fsType: string;
  readonly source: string;
  readonly superOptions: string;
}

/** Parses /proc/<pid>/mountinfo text; malformed lines are skipped. Never throws. */
export function parseMountInfo(text: string): MountInfoEntry[] {
  const entries: MountInfoEntry[] = [];
  for (const line of text.split('\n')) {
    const fields = line.split(' ');
    const dash = fields.indexOf('-', 6);
    if (dash < 0 || fields.length < dash + 4) continue;
    const [id, parentId, devno, root, mountPoint, mountOptions] = fields;
    const [major, minor] = (devno ?? '').split(':');
    if (
      id === undefined ||
      parentId === undefined ||
      root === undefined ||
      mountPoint === undefined ||
      mountOptions === undefined
    )
      continue;
    entries.push({
      id: Number(id),
      parentId: Number(parentId),
      major: Number(major),
      minor: Number(minor),
      root: unescapeMountInfo(root),
      mountPoint: unescapeMountInfo(mountPoint),
      mountOptions,
      optionalFields: fields.slice(6, dash),
      fsType: fields[dash + 1] ?? '',
      source: unescapeMountInfo(fields[dash + 2] ?? ''),
      superOptions: fields[dash + 3] ?? '',
    });
  }
  return entries;
}

/** The kernel escapes space, tab, newline and backslash in mountinfo as \ooo. */
function unescapeMountInfo(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

/**
 * Mount points at or below `path` (symlinks resolved), deepest first; none when `path`
 * does not exist. A path mounted n times appears n times.
 */
export function mountPointsBelow(path: string): string[] {
  const root = existingRealPath(path);
  return root === undefined ? [] : mountPointsAtOrBelow(root);
}

/** `path` with symlinks resolved, or undefined when it does not exist. */
function existingRealPath(path: string): string | undefined {
  try {
    return realpathSync(path);
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return undefined;
    throw error;
  }
}

/**
 * Mount points equal to or below `root`, deepest first; a path mounted n times appears
 * n times (each umount2 removes the top one).
 */
function mountPointsAtOrBelow(root: string): string[] {
  const prefix = root.endsWith('/') ? root : `${root}/`;
  // Only a line that holds the root (escaped as the kernel writes it) can list a mount at
  // or below it: parse those alone (Delete reads this file twice, on every container).
  const needle = escapeMountInfo(root);
  const lines = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((line) => line.includes(needle));
  const entries = parseMountInfo(lines.join('\n'))
    .map((entry, index) => ({ path: entry.mountPoint, index }))
    .filter(({ path }) => path === root || path.startsWith(prefix));
  entries.sort((a, b) => depth(b.path) - depth(a.path) || b.index - a.index);
  return entries.map(({ path }) => path);
}

/** The kernel's escaping of a path in mountinfo (the reverse of {@link unescapeMountInfo}). */
function escapeMountInfo(path: string): string {
  return path.replace(/[ \t\n\\]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, '0')}`);
}

function depth(path: string): number {
  return path.split('/').filter((part) => part !== '').length;
}

/** Blocks the thread for `ms` (only used between EBUSY retries, a few ms at most). */
function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

const BUSY_RETRIES = 3;
const BUSY_RETRY_MS = 10;

/**
 * umount2 one mount point: EINVAL (not a mount point) and ENOENT mean nothing is
 * mounted there. EBUSY is retried a few times (a process may be leaving it) and then
 * detached: containerd retries 50 times 50 ms, which would stall the daemon's event
 * loop for 2.5 s; a lazy detach removes it from the tree now and frees it when unused.
 */
function unmountOne(native: Native, mountPoint: string): void {
  for (let attempt = 0; ; attempt++) {
    try {
      native.umount2(mountPoint, 0);
      return;
    } catch (error) {
      const code = errnoCode(error);
      if (code === 'EINVAL' || code === 'ENOENT') return;
      if (code !== 'EBUSY') {
        throw new RuntimeError('Unknown', `unmount ${mountPoint} failed: ${describe(error)}`, { cause: error });
      }
      if (attempt >= BUSY_RETRIES) break;
      sleepSync(BUSY_RETRY_MS);
    }
  }
  try {
    native.umount2(mountPoint, MNT_DETACH);
  } catch (error) {
    const code = errnoCode(error);
    if (code === 'EINVAL' || code === 'ENOENT') return;
    throw new RuntimeError(
      'Unknown',
      `unmount ${mountPoint} failed (busy, and detaching failed too): ${describe(error)}`,
      { cause: error },
    );
  }
}

/** One mount with containerd's call sequence; `onMounted` runs once the target holds a new mount. */
function mountOne(native: Native, mount: Mount, target: string, onMounted: () => void): void {
  if (mount.type.startsWith('fuse.') || mount.type.startsWith('fuse3.')) {
    throw new RuntimeError(
      'InvalidArgument',
      `mount type '${mount.type}' needs a FUSE mount helper, which tsrun does not run: use a kernel filesystem (e.g. overlay)`,
    );
  }
  for (const option of mount.options) {
    if (option === 'loop' || option.startsWith('uidmap=') || option.startsWith('gidmap=')) {
      throw new RuntimeError(
        'InvalidArgument',
        `mount option '${option}' of ${mount.type} mount ${mount.source} is not supported by tsrun (no loop devices or idmapped mounts)`,
      );
    }
  }

  let options = mount.options;
  let layerDirFd: number | undefined;
  try {
    // Avoid the one-page limit on mount data (containerd's 512-byte margin).
    if (mount.type === 'overlay' && optionsSize(options) >= PAGE_SIZE - 512) {
      const compacted = compactLowerdir(options);
      if (compacted !== undefined) {
        layerDirFd = openSync(compacted.commonDir, fsConstants.O_RDONLY | fsConstants.O_DIRECTORY);
        const prefix = `/proc/self/fd/${layerDirFd}/`;
        options = [...compacted.otherOptions, `lowerdir=${compacted.layers.map((layer) => prefix + layer).join(':')}`];
      }
    }

    const { flags, data } = parseMountOptions(options);
    const dataString = data.join(',');
    if (dataString.length > PAGE_SIZE) {
      throw new RuntimeError(
        'InvalidArgument',
        `options of ${mount.type} mount ${mount.source} are too long (${dataString.length} bytes; the kernel takes at most ${PAGE_SIZE})`,
      );
    }
    const plainFlags = flags & ~PROPAGATION;

    // A remount without data changes nothing the first call could apply (moby/moby#34077).
    if ((flags & MS.REMOUNT) === 0 || dataString !== '') {
      callMount(native, mount.source, target, mount.type, plainFlags, dataString);
      if ((flags & MS.REMOUNT) === 0) onMounted();
    }
    if ((flags & PROPAGATION) !== 0) {
      callMount(native, '', target, '', flags & (PROPAGATION | MS.REC | MS.SILENT), '');
    }
    // A bind mount ignores MS_RDONLY on the first call: remount it read-only.
    if ((plainFlags & (MS.BIND | MS.RDONLY)) === (MS.BIND | MS.RDONLY)) {
      callMount(native, '', target, '', plainFlags | MS.REMOUNT, '');
    }
  } finally {
    if (layerDirFd !== undefined) closeSync(layerDirFd);
  }
}

function callMount(native: Native, source: string, target: string, fstype: string, flags: number, data: string): void {
  try {
    native.mount(source, target, fstype, flags, data);
  } catch (error) {
    const what =
      fstype === ''
        ? `remount of ${target} (flags 0x${flags.toString(16)})`
        : `mount of ${fstype} ${source} on ${target}`;
    throw new RuntimeError('Unknown', `${what} failed: ${describe(error)}`, { cause: error });
  }
}

function optionsSize(options: readonly string[]): number {
  return options.reduce((size, option) => size + option.length, 0);
}

/** The `lowerdir=` layers relative to the parent of their longest common prefix (containerd's compactLowerdirOption). */
export function compactLowerdir(
  options: readonly string[],
): { commonDir: string; layers: string[]; otherOptions: string[] } | undefined {
  const index = options.findIndex((option) => option.startsWith('lowerdir='));
  if (index < 0) return undefined;
  const dirs = (options[index] ?? '').slice('lowerdir='.length).split(':');
  if (dirs.length <= 1) return undefined;
  const prefix = longestCommonPrefix(dirs);
  if (prefix === '') return undefined;
  // Snapshot ids are digits: step back to the parent so "snapshots/1" and "snapshots/12"
  // do not compact to "snapshots/1".
  const parent = prefix.slice(0, prefix.lastIndexOf('/'));
  if (parent === '' || !parent.startsWith('/')) return undefined;
  const commonDir = `${parent}/`;
  if (dirs.some((dir) => dir.length <= commonDir.length)) return undefined;
  return {
    commonDir,
    layers: dirs.map((dir) => dir.slice(commonDir.length)),
    otherOptions: options.filter((_, i) => i !== index),
  };
}

function longestCommonPrefix(strings: readonly string[]): string {
  let min = strings[0] ?? '';
  let max = min;
  for (const s of strings) {
    if (s < min) min = s;
    if (s > max) max = s;
  }
  let i = 0;
  while (i < min.length && i < max.length && min[i] === max[i]) i++;
  return min.slice(0, i);
}

const MAX_SYMLINKS = 255;

/**
 * `path` inside `root`, following symlinks as if `root` were `/` (a link never leads
 * out of `root`; `..` stops at it). Components that do not exist are kept as written.
 */
export function resolveInRoot(root: string, path: string): string {
  const pending = path.split('/').filter((part) => part !== '' && part !== '.');
  const resolved: string[] = [];
  let links = 0;
  while (pending.length > 0) {
    const part = pending.shift() ?? '';
    if (part === '..') {
      resolved.pop();
      continue;
    }
    const candidate = `${root}/${[...resolved, part].join('/')}`;
    let isLink = false;
    try {
      isLink = lstatSync(candidate).isSymbolicLink();
    } catch (error) {
      if (errnoCode(error) !== 'ENOENT' && errnoCode(error) !== 'ENOTDIR') throw error;
    }
    if (!isLink) {
      resolved.push(part);
      continue;
    }
    if (++links > MAX_SYMLINKS) {
      throw new RuntimeError(
        'InvalidArgument',
        `mount target '${path}' in ${root} has too many levels of symbolic links`,
      );
    }
    const link = readlinkSync(candidate);
    if (link.startsWith('/')) resolved.length = 0;
    pending.unshift(...link.split('/').filter((p) => p !== '' && p !== '.'));
  }
  return resolved.length === 0 ? root : `${root}/${resolved.join('/')}`;
}

function errnoCode(error: unknown): string | undefined {
  if (typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'string')
    return error.code;
  return undefined;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
