/**
 * Mount points as the kernel reports them in /proc/self/mountinfo, and their removal.
 * containerd and its shims mount in the host mount namespace (snapshots during unpack,
 * each task's rootfs, CRI's network namespaces), so the test process sees every mount a
 * private containerd made under its own directories and can count and remove them.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

/** One line of /proc/self/mountinfo, reduced to what the harness needs. */
export interface MountInfo {
  readonly id: number;
  readonly parentId: number;
  /** Where it is mounted, with mountinfo's octal escapes (\040 for a space) decoded. */
  readonly mountPoint: string;
  readonly fsType: string;
  readonly source: string;
}

/** Parses the text of a mountinfo file (proc(5)). Malformed lines are skipped. */
export function parseMountInfo(text: string): MountInfo[] {
  const mounts: MountInfo[] = [];
  for (const line of text.split('\n')) {
    // "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue"
    const [left, right] = line.split(' - ');
    if (left === undefined || right === undefined) continue;
    const fields = left.split(' ');
    const tail = right.split(' ');
    const id = Number(fields[0]);
    const parentId = Number(fields[1]);
    const mountPoint = fields[4];
    if (!Number.isInteger(id) || !Number.isInteger(parentId) || mountPoint === undefined) continue;
    mounts.push({
      id,
      parentId,
      mountPoint: unescapeOctal(mountPoint),
      fsType: tail[0] ?? '',
      source: unescapeOctal(tail[1] ?? ''),
    });
  }
  return mounts;
}

function unescapeOctal(value: string): string {
  return value.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

/** Every mount whose mount point is `dir` itself or lies beneath it, in mountinfo order. */
export async function mountsUnder(dir: string): Promise<MountInfo[]> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  const prefix = dir.endsWith('/') ? dir : `${dir}/`;
  return parseMountInfo(text).filter((m) => m.mountPoint === dir || m.mountPoint.startsWith(prefix));
}

/**
 * Unmounts everything under `dir`, deepest first, and re-reads mountinfo until nothing is
 * left (a mount can be stacked on another at the same point). A mount that a plain umount
 * cannot remove (busy) is detached lazily, so the directory can still be deleted.
 *
 * @returns the mount points that were unmounted.
 * @throws Error when mounts remain after repeated attempts.
 */
export async function unmountUnder(dir: string): Promise<string[]> {
  const unmounted: string[] = [];
  for (let round = 0; round < 10; round++) {
    const mounts = await mountsUnder(dir);
    if (mounts.length === 0) return unmounted;
    // Deepest path first; among equal paths, the later (top) mount first.
    const ordered = mounts
      .map((m, index) => ({ m, index }))
      .sort((a, b) => b.m.mountPoint.length - a.m.mountPoint.length || b.index - a.index);
    for (const { m } of ordered) {
      try {
        await execFileAsync('umount', [m.mountPoint]);
      } catch {
        await execFileAsync('umount', ['--lazy', m.mountPoint]).catch(() => undefined);
      }
      unmounted.push(m.mountPoint);
    }
  }
  const left = await mountsUnder(dir);
  if (left.length > 0) {
    throw new Error(`could not unmount ${left.map((m) => m.mountPoint).join(', ')}: check with 'findmnt -R ${dir}'`);
  }
  return unmounted;
}
