/**
 * The README's demo: a private containerd on an embedded config (its own root, state
 * and sockets), the locally built busybox image imported, and one container run
 * through tsrun (`--runtime io.containerd.tsrun.v1`) with its output printed.
 * Everything it made is removed at the end. Run it through ../demo.sh.
 */
import { BUSYBOX_IMAGE, importTestImages, startContainerd, TSRUN_BIN_DIR } from './harness/index.js';

const script = 'echo "hello from a container run by tsrun"; echo "pid $$ in $(hostname), kernel $(uname -r)"; ls /';
const containerd = await startContainerd({ extraPath: [TSRUN_BIN_DIR] });
let code = 1;
try {
  console.log(`private containerd ${containerd.address} (root ${containerd.root})`);
  await importTestImages(containerd.ctr);
  console.log(`image ${BUSYBOX_IMAGE} imported; running a container with --runtime io.containerd.tsrun.v1:\n`);
  const run = await containerd.ctr.run(['run', '--rm', '--runtime', 'io.containerd.tsrun.v1', BUSYBOX_IMAGE, 'tsrun-demo', 'sh', '-c', script], { timeoutMs: 60_000 });
  process.stdout.write(run.stdout);
  process.stderr.write(run.stderr);
  console.log(`\nctr exited with ${run.code} after ${Math.round(run.durationMs)} ms`);
  code = run.code ?? 1;
} finally {
  const report = await containerd.cleanup();
  console.log(`cleaned up: ${JSON.stringify(report)}`);
}
process.exit(code);
