/**
 * The `containerd-shim-tsrun-v1` process entry point. With `start`, `delete`,
 * `-info` or `-v` it answers once and exits; with no action it is a group daemon.
 */
import { readFileSync, writeSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadNative } from '../native/index.js';
import { runAction } from './cli.js';
import { runDaemon } from './daemon.js';
import { parseFlags, type ShimCommandLine } from './flags.js';
import { createLogger, createLogSink } from './log.js';

const argv = process.argv.slice(2);
const native = loadNative();

/** How `start` starts a daemon: this same entry point under the same node. */
const daemon = { file: process.execPath, args: [process.execPath, fileURLToPath(import.meta.url)] };

let cmd: ShimCommandLine | undefined;
try {
  cmd = parseFlags(argv);
} catch {
  // runAction reports the flag error.
}

if (cmd !== undefined && cmd.action === '' && !cmd.flags.version && !cmd.flags.info) {
  process.exit(await runDaemon(cmd, native, process.env));
} else {
  // containerd writes the runtime options on stdin for start and -info, then closes it.
  const wantsStdin = cmd !== undefined && (cmd.action === 'start' || cmd.flags.info) && !process.stdin.isTTY;
  const stdin = wantsStdin ? readFileSync(0) : new Uint8Array(0);
  const logger = createLogger('warn', createLogSink(2, { attached: true }));
  const result = await runAction({ argv, env: process.env, cwd: process.cwd(), stdin, parentPid: process.ppid }, { native, daemon }, logger);
  process.stderr.write(result.stderr);
  // Synchronously, all of it: containerd reads stdout once we exit.
  for (let offset = 0; offset < result.stdout.length; ) offset += writeSync(1, result.stdout, offset);
  process.exit(result.exitCode);
}
