/**
 * A {@link Logger} for tests: records every entry (so a test can assert that a bound
 * was logged) and prints nothing unless TSRUN_TEST_LOG is set.
 */
import type { Logger } from './api.js';

/** One recorded log entry. */
export interface LogEntry {
  readonly level: 'debug' | 'info' | 'warn' | 'error';
  readonly obj: object;
  readonly msg: string | undefined;
}

/** A logger that records into `entries`, shared with its children. */
export interface TestLogger extends Logger {
  readonly entries: LogEntry[];
}

/** Creates a recording logger; with TSRUN_TEST_LOG=1 it also prints warn and error. */
export function createTestLogger(): TestLogger {
  const entries: LogEntry[] = [];
  const verbose = process.env['TSRUN_TEST_LOG'] !== undefined;
  const make = (bindings: object): TestLogger => {
    const log =
      (level: LogEntry['level']) =>
      (obj: object, msg?: string): void => {
        const entry = { level, obj: { ...bindings, ...obj }, msg };
        entries.push(entry);
        if (entries.length > 100_000) entries.splice(0, 50_000);
        if (verbose && (level === 'warn' || level === 'error' || process.env['TSRUN_TEST_LOG'] === 'debug')) {
          console.error(level, msg, entry.obj);
        }
      };
    return {
      entries,
      debug: log('debug'),
      info: log('info'),
      warn: log('warn'),
      error: log('error'),
      child: (more: object) => make({ ...bindings, ...more }),
    };
  };
  return make({});
}
