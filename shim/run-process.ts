/**
 * The `containerd-shim-tsrun-v1` process entry point. With `start`, `delete`,
 * `-info` or `-v` it answers once and exits; with no action it is a group daemon.
 * tsrun's own modes (native/launcher/PROTOCOL.md): `-manager` serves the native
 * launcher until idle (manager.ts); `-spare` waits, booted, to become a daemon (spare.ts).
 *
 * Each mode imports only what it runs: the one-shot actions and the manager never load
 * the daemon's code (a Node boot is on containerd's path for those two; about 40 ms of
 * module loading saved on this 2-core box).
 */
import { readFileSync, writeSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadNative } from '../native/index.js';
import { parseFlags, type ShimCommandLine } from './flags.js';

const argv = process.argv.slice(2);
const native = loadNative();

/** How a daemon (or a spare) is started: this same entry point under the same node. */
const entry = { file: process.execPath, args: [process.execPath, fileURLToPath(import.meta.url)] };

let cmd: ShimCommandLine | undefined;
try {
  cmd = parseFlags(argv);
} catch {
  // runAction reports the flag error.
}

if (cmd !== undefined && cmd.flags.manager) {
  const { runManagerProcess } = await import('./manager.js');
  process.exit(await runManagerProcess(native, cmd.flags.address, entry));
} else if (cmd !== undefined && cmd.flags.spare) {
  const { runSpare } = await import('./spare.js');
  process.exit(await runSpare(native));
} else if (cmd !== undefined && cmd.action === '' && !cmd.flags.version && !cmd.flags.info) {
  const { runDaemon } = await import('./daemon.js');
  process.exit(await runDaemon(cmd, native, process.env));
} else {
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
  process.exit(result.exitCode);
}
