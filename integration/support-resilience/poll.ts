/**
 * Polling for host-side effects that follow an action asynchronously (a daemon exiting, a
 * task turning STOPPED, a mount going away): tests wait for the state they expect instead
 * of sleeping a fixed time, so they stay fast on an idle machine and pass on a loaded one.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';

/** Options of {@link eventually}. */
export interface EventuallyOptions {
  /** How long to keep trying; 15 s when left out (generous: a 2-core box under load). */
  readonly timeoutMs?: number;
  /** Pause between tries; 50 ms when left out. */
  readonly intervalMs?: number;
  /** What the failure message shows of the last state (called once, on timeout). */
  readonly detail?: () => string | Promise<string>;
}

/**
 * Calls `probe` until it returns something other than `undefined` or `false`, and returns that.
 *
 * @param what the expected state, as a sentence ending the message "... within N ms".
 * @throws AssertionError naming `what` (and `detail`) when the time is up.
 */
export async function eventually<T>(
  what: string,
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  options: EventuallyOptions = {},
): Promise<T> {
  const timeoutMs = options.timeoutMs ?? 15_000;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) {
      const detail = options.detail === undefined ? '' : `; last: ${await options.detail()}`;
      assert.fail(`${what} within ${timeoutMs} ms${detail}`);
    }
    await sleep(options.intervalMs ?? 50);
  }
}
