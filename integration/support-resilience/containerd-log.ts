/**
 * Reading a private containerd's log from a point on: what containerd (and, through each
 * task's `log` fifo, the shim daemons) wrote after a restart. At debug level containerd 1.6
 * logs every event a shim forwards (`msg="event forwarded" ns=... topic=/tasks/exit`), which
 * shows that an event reached it without racing an event subscription against the shim.
 */
import { openSync, closeSync, readSync, statSync } from 'node:fs';
import type { ContainerdInstance } from '../harness/index.js';

/** The log's current length in bytes: pass it to {@link logSince} later. */
export function logOffset(instance: ContainerdInstance): number {
  try {
    return statSync(instance.logPath).size;
  } catch {
    return 0;
  }
}

/** What the log gained since `offset`, as text. */
export function logSince(instance: ContainerdInstance, offset: number): string {
  let fd: number;
  try {
    fd = openSync(instance.logPath, 'r');
  } catch {
    return '';
  }
  try {
    const size = statSync(instance.logPath).size;
    const bytes = Buffer.alloc(Math.max(0, size - offset));
    let read = 0;
    while (read < bytes.length) {
      const n = readSync(fd, bytes, read, bytes.length - read, offset + read);
      if (n === 0) break;
      read += n;
    }
    return bytes.subarray(0, read).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

/** containerd's debug lines for events shims forwarded on `topic` in `namespace`. */
export function forwardedEvents(text: string, namespace: string, topic: string): string[] {
  return text.split('\n').filter((line) => line.includes('msg="event forwarded"') && line.includes(` ns=${namespace} `) && line.includes(` topic=${topic} `));
}

/** The JSON lines a shim daemon wrote through its `log` fifo, parsed (other lines skipped). */
export function shimLogLines(text: string): Record<string, unknown>[] {
  const lines: Record<string, unknown>[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const parsed: unknown = JSON.parse(line);
      if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) lines.push(parsed as Record<string, unknown>);
    } catch {
      // A line containerd split or interleaved: not ours to judge here.
    }
  }
  return lines;
}
