/**
 * A timer that fires at an absolute deadline, however far away. Node clamps
 * delays over 2^31-1 ms (about 24.8 days) to 1 ms with a warning, so a far
 * deadline is reached in steps. Timers are unref'd: a pending deadline never
 * keeps the process alive by itself.
 */

const MAX_DELAY_MS = 2_147_483_647;

/** @internal A cancellable deadline timer. */
export interface DeadlineTimer {
  clear(): void;
}

/** @internal Calls `onExpire` once `Date.now()` reaches `deadline` (ms since the epoch). */
export function setDeadlineTimer(deadline: number, onExpire: () => void): DeadlineTimer {
  let handle: NodeJS.Timeout | undefined;
  const arm = (): void => {
    const delay = deadline - Date.now();
    if (delay <= 0) {
      handle = undefined;
      onExpire();
      return;
    }
    handle = setTimeout(arm, Math.min(delay, MAX_DELAY_MS));
    handle.unref();
  };
  arm();
  return {
    clear(): void {
      if (handle !== undefined) clearTimeout(handle);
      handle = undefined;
    },
  };
}
