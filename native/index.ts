/**
 * Loads the addon (native/build/Release/tsrun_native.node, built by `npm install`
 * through node-gyp) and exposes it as the typed {@link Native} facade.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Native } from './facade.js';

export type * from './facade.js';

const ADDON = join('native', 'build', 'Release', 'tsrun_native.node');

let loaded: Native | undefined;

/**
 * Finds the built addon by walking up from `start` (by default this module's own
 * directory, build/native/ once compiled) to the first directory holding
 * native/build/Release/tsrun_native.node: the repository root, wherever it lives.
 * Throws an Error saying how to build it when no ancestor has it.
 */
export function findAddon(start: string = dirname(fileURLToPath(import.meta.url))): string {
  for (let dir = start; ; dir = dirname(dir)) {
    const candidate = join(dir, ADDON);
    if (existsSync(candidate)) return candidate;
    if (dirname(dir) === dir) break;
  }
  throw new Error(
    `the tsrun native addon (${ADDON}) was not found above ${start}: build it with \`npm install\` (node-gyp rebuild --directory=native)`,
  );
}

/**
 * The native facade, loaded once per process (main thread; the addon keeps the
 * tracked-children set process-wide). Throws when the addon is missing or was
 * built for another Node ABI.
 */
export function loadNative(): Native {
  if (loaded === undefined) {
    const require = createRequire(import.meta.url);
    loaded = require(findAddon()) as Native;
  }
  return loaded;
}
