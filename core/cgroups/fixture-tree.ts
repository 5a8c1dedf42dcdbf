/**
 * Test support for the cgroups tests: recorded cgroupfs trees (testdata/, see its
 * README), scratch copies of them, and a logger that records what it is told.
 * @internal
 */
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from '../api.js';

/** core/cgroups/testdata in the source tree (tests run from build/core/cgroups/). */
export const TESTDATA = fileURLToPath(new URL('../../../core/cgroups/testdata/', import.meta.url));

/** A scratch copy of testdata/`name`; `dispose()` removes it. */
export function copyFixture(name: string): { dir: string; dispose(): void } {
  const root = mkdtempSync(join(tmpdir(), 'tsrun-cgroup-fixture-'));
  const dir = join(root, name);
  cpSync(join(TESTDATA, name), dir, { recursive: true });
  return {
    dir,
    dispose: () => {
      rmSync(root, { recursive: true, force: true });
    },
  };
}

export interface LogEntry {
  readonly level: 'debug' | 'info' | 'warn' | 'error';
  readonly obj: object;
  readonly msg: string | undefined;
}

/** A {@link Logger} that keeps every entry. */
export function createRecordingLogger(): Logger & { readonly entries: LogEntry[] } {
  const entries: LogEntry[] = [];
  const logger = {
    entries,
    debug: (obj: object, msg?: string) => entries.push({ level: 'debug', obj, msg }),
    info: (obj: object, msg?: string) => entries.push({ level: 'info', obj, msg }),
    warn: (obj: object, msg?: string) => entries.push({ level: 'warn', obj, msg }),
    error: (obj: object, msg?: string) => entries.push({ level: 'error', obj, msg }),
    child: () => logger,
  };
  return logger;
}

/** Resolves once `condition()` holds; rejects after `timeoutMs` with `what` in the message. */
export async function waitFor(condition: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
