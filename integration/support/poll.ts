/**
 * Polling instead of fixed sleeps: on a loaded 2-core machine a container may take a
 * second to reach a state it reaches in 50 ms on an idle one, so tests wait for the
 * state itself, with a generous bound, and say what they waited for when it never came.
 */
import { setTimeout as sleep } from 'node:timers/promises';

/** Options of {@link waitUntil}. */
export interface PollOptions {
  /** Give up after this long; 20 s when left out. */
  readonly timeoutMs?: number;
  /** Pause between attempts; 50 ms when left out. */
  readonly intervalMs?: number;
}

/**
 * Calls `probe` until it returns a value other than `undefined`, and returns that value.
 * A probe that throws counts as "not yet" (a ctr call racing the state it asks about);
 * the last error is quoted if the bound passes.
 *
 * @param what what is awaited, for the error message ("task c1 to be RUNNING").
 * @throws Error after `timeoutMs`, naming `what`, the last value seen and the last error.
 */
export async function waitUntil<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, options: PollOptions = {}): Promise<T> {
  const timeoutMs = options.timeoutMs ?? 20_000;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      const cause = lastError === undefined ? '' : `; last error: ${lastError instanceof Error ? lastError.message : JSON.stringify(lastError)}`;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${cause}`);
    }
    await sleep(options.intervalMs ?? 50);
  }
}

/** {@link waitUntil} for a condition: resolves once `condition` holds. @throws Error after the bound. */
export async function waitFor(what: string, condition: () => Promise<boolean> | boolean, options: PollOptions = {}): Promise<void> {
  await waitUntil(what, async () => ((await condition()) ? true : undefined), options);
}
