/**
 * The shim's ES module entry point: `node build/shim/main.js ...` runs the process
 * (run-process.ts) from the compiled module tree. containerd's path goes through
 * entry.cts instead (one bundled file and a V8 code cache: about 80 ms less per Node
 * boot on this 2-core box); this one is what tests and a tree without the bundle use.
 */
import { fileURLToPath } from 'node:url';
import { runShimProcess } from './run-process.js';

process.exit(await runShimProcess(fileURLToPath(import.meta.url)));
