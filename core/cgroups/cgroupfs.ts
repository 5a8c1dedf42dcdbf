/**
 * Reading cgroupfs files the way containerd/cgroups does (its parseUint, parseKV,
 * bufio.Scanner line splitting), shared by the v1 and v2 readers.
 * @internal
 */
import { readFileSync } from 'node:fs';
import { readFile, readdir } from 'node:fs/promises';
import type { Uint64 } from './metrics.js';

/** The largest uint64, which cgroup v2 files spell "max" and containerd reports as math.MaxUint64. */
export const MAX_UINT64 = (1n << 64n) - 1n;

/**
 * A uint64 as the metrics objects hold it: a number when it is exactly representable
 * (up to 2^53 - 1), else its decimal string. protobufjs encodes both exactly.
 */
export function toUint64(value: bigint): Uint64 {
  return value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value.toString();
}

/** A malformed cgroupfs file (not a missing one). */
export class CgroupParseError extends Error {
  override readonly name = 'CgroupParseError';
}

/**
 * Go's strconv.ParseUint(s, 10, 64) with containerd's twist: a negative number
 * (e.g. "-1" for "no limit") reads as 0. Throws {@link CgroupParseError} otherwise.
 */
export function parseUint(text: string, bits = 64): bigint {
  if (/^[0-9]+$/.test(text)) {
    const value = BigInt(text);
    if (value < 1n << BigInt(bits)) return value;
  } else if (/^-[0-9]+$/.test(text)) {
    return 0n;
  }
  throw new CgroupParseError(`invalid unsigned integer "${text}"`);
}

/** containerd's parseKV: exactly two whitespace-separated fields, the second a uint64. */
export function parseKV(line: string): readonly [string, bigint] {
  const parts = fields(line);
  const [key, value] = parts;
  if (parts.length !== 2 || key === undefined || value === undefined) {
    throw new CgroupParseError(`invalid key/value line "${line}"`);
  }
  return [key, parseUint(value)];
}

/** Go's strings.Fields. */
export function fields(line: string): string[] {
  return line.split(/\s+/).filter((part) => part !== '');
}

/** The lines bufio.Scanner yields: no trailing empty line after a final newline, no '\r'. */
export function scanLines(text: string): string[] {
  if (text === '') return [];
  const lines = text.split('\n');
  if (text.endsWith('\n')) lines.pop();
  return lines.map((line) => (line.endsWith('\r') ? line.slice(0, -1) : line));
}

/** Reads a file of "key value" lines; every line must parse (containerd's readKVStatsFile). */
export async function readKVFile(path: string): Promise<Map<string, bigint>> {
  return parseKVText(path, await readFile(path, 'utf8'));
}

/**
 * {@link readKVFile}, synchronously: for readers that must not leave the file open past
 * a close() of their own (cgroupfs never waits for a disk).
 */
export function readKVFileSync(path: string): Map<string, bigint> {
  return parseKVText(path, readFileSync(path, 'utf8'));
}

function parseKVText(path: string, text: string): Map<string, bigint> {
  const out = new Map<string, bigint>();
  for (const line of scanLines(text)) {
    try {
      const [key, value] = parseKV(line);
      out.set(key, value);
    } catch (error) {
      throw new CgroupParseError(`error while parsing ${path} (line "${line}"): ${(error as Error).message}`);
    }
  }
  return out;
}

/** A Node errno code, if `error` has one. */
export function errnoCode(error: unknown): string | undefined {
  if (typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'string')
    return error.code;
  return undefined;
}

/**
 * containerd's IgnoreNotExist test. ENODEV counts too: reading a file of a cgroup
 * that was removed after open returns it.
 */
export function isNotExist(error: unknown): boolean {
  const code = errnoCode(error);
  return code === 'ENOENT' || code === 'ENODEV';
}

/**
 * Huge page sizes as cgroup file names spell them ("2MB", "1GB"), from the names of
 * /sys/kernel/mm/hugepages/hugepages-<n>kB, sorted by directory entry name.
 * [] when the directory does not exist (no huge page support).
 */
export async function hugePageSizes(dir = '/sys/kernel/mm/hugepages'): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (error) {
    if (isNotExist(error)) return [];
    throw error;
  }
  return names.sort().flatMap((name) => {
    const match = /^hugepages-([0-9]+)kB$/.exec(name);
    if (match?.[1] === undefined) return [];
    const kb = Number(match[1]);
    // mm/hugetlb_cgroup.c names: GB from 1 GiB, MB from 1 MiB, else KB.
    if (kb >= 1 << 20) return [`${kb >> 20}GB`];
    if (kb >= 1 << 10) return [`${kb >> 10}MB`];
    return [`${kb}KB`];
  });
}
