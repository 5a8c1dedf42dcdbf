/**
 * The hook through which a manager or a daemon asks, once it has done real work, that the
 * runtime code cache of its role be written (shim/code-cache.cts says why). entry.cts
 * provides the writer; without one (the module tree, tests) asking does nothing.
 */

let writer: (() => void) | undefined;
let asked = false;

/** Installs the writer entry.cts got from loading the bundle (run-process.ts calls it). */
export function setCodeCacheWriter(write: (() => void) | undefined): void {
  writer = write;
}

/**
 * Writes the cache soon (not in the caller's turn: a Task or launcher answer goes out
 * first), at most once per process. Never throws: a cache that cannot be written only
 * costs the next processes the compiling it would have saved; `onError` hears why.
 */
export function saveCodeCacheSoon(onError: (error: unknown) => void): void {
  const write = writer;
  if (asked || write === undefined) return;
  asked = true;
  setImmediate(() => {
    try {
      write();
    } catch (error) {
      onError(error);
    }
  });
}
