/**
 * What a `containerd-shim-tsrun-v1` process does, whichever entry point started it
 * (entry.cts on containerd's path, main.ts otherwise). With `start`, `delete`, `-info`
 * or `-v` it answers once and exits; with no action it is a group daemon. tsrun's own
 * modes (native/launcher/PROTOCOL.md): `-manager` serves the native launcher until idle
 * (manager.ts); `-spare` waits, booted, to become a daemon (spare.ts).
 *
 * Each mode imports only what it runs: the one-shot actions and the manager never
 * evaluate the daemon's modules (in the bundle, a dynamic import is a lazy module).
 */
import { readFileSync, writeSync } from 'node:fs';
import { loadNative } from '../native/index.js';
import { setCodeCacheWriter } from './code-cache-saver.js';
import { parseFlags, type ShimCommandLine } from './flags.js';

/**
 * Runs this process's mode to its end and resolves with the exit code; the caller exits.
 * `entryScript` is the absolute path of the script node was started with: daemons and
 * spares are started as `node <entryScript> ...`, so they boot the same way.
 * `saveCodeCache` writes this process's runtime code cache (entry.cts, code-cache.cts).
 * @throws Error when the native addon cannot be loaded (not built, or for another Node).
 */
export async function runShimProcess(entryScript: string, options: { readonly saveCodeCache?: (() => void) | undefined } = {}): Promise<number> {
  setCodeCacheWriter(options.saveCodeCache);
  const argv = process.argv.slice(2);
  const native = loadNative();
  const entry = { file: process.execPath, args: [process.execPath, entryScript] };

  let cmd: ShimCommandLine | undefined;
  try {
    cmd = parseFlags(argv);
  } catch {
    // runAction reports the flag error.
  }

  if (cmd !== undefined && cmd.flags.manager) {
    const { runManagerProcess } = await import('./manager.js');
    return runManagerProcess(native, cmd.flags.address, entry, cmd.flags.sparePid);
  }
  if (cmd !== undefined && cmd.flags.spare) {
    const { runSpare } = await import('./spare.js');
    return runSpare(native);
  }
  if (cmd !== undefined && cmd.action === '' && !cmd.flags.version && !cmd.flags.info) {
    const { runDaemon } = await import('./daemon.js');
    return runDaemon(cmd, native, process.env);
  }
  const [{ runAction }, { createSpawnLauncher }, { createLogger, createLogSink }] = await Promise.all([import('./cli.js'), import('./daemon-launcher.js'), import('./log.js')]);
  // containerd writes the runtime options on stdin for start and -info, then closes it.
  const wantsStdin = cmd !== undefined && (cmd.action === 'start' || cmd.flags.info) && !process.stdin.isTTY;
  const stdin = wantsStdin ? readFileSync(0) : new Uint8Array(0);
  const logger = createLogger('warn', createLogSink(2, { attached: true }));
  const context = { native, launcher: createSpawnLauncher(native, entry) };
  const result = await runAction({ argv, env: process.env, cwd: process.cwd(), stdin, parentPid: process.ppid }, context, logger);
  process.stderr.write(result.stderr);
  // Synchronously, all of it: containerd reads stdout once we exit.
  for (let offset = 0; offset < result.stdout.length; ) offset += writeSync(1, result.stdout, offset);
  return result.exitCode;
}

/**
 * Evaluates the modules of every mode without running any: the build calls it on the
 * bundle before taking V8's code cache (scripts/bundle-shim.mjs), so that the cache
 * holds the code each mode loads, not only the bundle's first lines.
 */
export async function preloadModes(): Promise<void> {
  await Promise.all([import('./manager.js'), import('./spare.js'), import('./daemon.js'), import('./cli.js'), import('./daemon-launcher.js'), import('./log.js')]);
}
