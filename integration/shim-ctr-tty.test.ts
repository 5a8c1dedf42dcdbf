/**
 * Terminals through tsrun (issue 5): `ctr run -t` and `ctr task exec -t` run on a real
 * pseudo-terminal (util-linux `script`), as from a user's terminal emulator. The process
 * gets a pty of its own (runc's console socket, the master copied by the shim), sized like
 * the user's terminal (ResizePty), resized when the user's terminal is (SIGWINCH in ctr,
 * ResizePty again), and what the user types reaches it.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { describe, test } from 'node:test';
import { isAlive } from './harness/index.js';
import { outerTty, runArgs, spawnCtrInPty, startFifoTask, useTsrunContainerd, waitFor, waitForTask, waitUntil, type CtrProcess, type FifoReader } from './support/index.js';

/** The terminal output after the `outer-tty:` announcement, with CRs dropped. */
function screen(output: string): string {
  return output.replace(/^outer-tty:\S*\r?\n/, '').replace(/\r/g, '');
}

/**
 * Types empty lines into a `while read x; do stty size; done` loop until the process
 * reports `rows cols`. ctr 1.6 sends the first ResizePty only after Start (run.go,
 * exec.go: HandleConsoleResize follows task.Start), so a process that asks for its size
 * at once may still see 0x0 (stty then fails); the runc shim behaves the same.
 */
async function sizeReported(pty: CtrProcess, rows: number, cols: number): Promise<void> {
  // Lines end in "\r\r\n": both the container's pty and the outer one turn \n into \r\n.
  const size = new RegExp(`\\n\\r*${rows} ${cols}\\r*\\n`);
  try {
    await waitUntil(`the process to report ${rows} rows and ${cols} columns`, () => {
      if (size.test(pty.stdout)) return true;
      pty.write('\r');
      return undefined;
    }, { intervalMs: 200 });
  } catch (error) {
    throw new Error(`${error instanceof Error ? error.message : String(error)}; terminal output: ${JSON.stringify(pty.stdout.slice(-600))}`);
  }
}

/** The loop of {@link sizeReported}; a line starting with `q` ends it with exit status 9. */
const SIZE_LOOP = 'while read x; do case "$x" in q*) echo "got [$x]"; exit 9;; esac; stty size; done; echo bye';

describe('terminals (-t) with the tsrun runtime', () => {
  const containerd = useTsrunContainerd();

  test('ctr run -t: the process has a terminal of its own on 0, 1 and 2, sized like the outer one', async () => {
    const instance = containerd();
    const id = containerd.id('tty');
    const script = `tty; test -t 0 && test -t 1 && test -t 2 && echo all-three-are-ttys; ${SIZE_LOOP}`;
    const pty = spawnCtrInPty(instance, runArgs(['--rm', '-t'], id, ['sh', '-c', script]), { rows: 33, cols: 101 });
    try {
      await pty.waitForOutput(/all-three-are-ttys/);
      await sizeReported(pty, 33, 101);
      pty.write('\x04');
      const result = await pty.result;
      assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`);
      const lines = screen(result.stdout).split('\n');
      assert.match(lines[0] ?? '', /^\/dev\/pts\/\d+$/);
      assert.equal(lines[1], 'all-three-are-ttys');
      assert.match(screen(result.stdout), /bye\n?$/, 'EOF typed on the terminal (^D) ended the read loop');
    } finally {
      pty.kill();
      await instance.ctr.removeContainer(id);
    }
  });

  test("terminal output still in the pty when the process exits reaches the client's fifo complete", async () => {
    // Read from the fifo, not through `ctr run -t` (support/fifo-client.ts says why).
    // The container prints 100 KB at once and exits while nobody reads: the fifo and the
    // shim's buffers fill, the shim stops reading the pty master, and the rest stays in the
    // pty, its slave closed. All of it must still come out once the client reads. (libuv
    // took a pty master's hang-up after one short read for its end of file, and Node
    // dropped what it held at the EIO that ends a drained pty: the tail was lost.)
    const instance = containerd();
    const id = containerd.id('tty-tail');
    const task = await startFifoTask(instance, id, 'seq 1 16000', { tty: true });
    let reader: FifoReader | undefined;
    try {
      const init = await waitForTask(instance.ctr, id, 'RUNNING');
      task.go();
      // Should the output not fit in the buffers on the way, the process blocks on its
      // terminal instead of exiting: then reading late is all this proves.
      await waitFor("the container's process to exit", () => !isAlive(init.pid), { timeoutMs: 5_000 }).catch(() => undefined);
      reader = task.read('stdout');
      await waitForTask(instance.ctr, id, 'STOPPED');
      await instance.ctr.ok(['tasks', 'delete', id]);
      const output = (await reader.done).toString('utf8');
      let expected = '';
      for (let i = 1; i <= 16_000; i++) expected += `${i}\r\n`;
      assert.equal(output.length, expected.length, `terminal output of ${output.length} bytes, ends with ${JSON.stringify(output.slice(-40))}`);
      assert.ok(output === expected, 'every line of seq 1 16000, in order');
    } finally {
      reader?.close();
      await instance.ctr.removeContainer(id);
      await task.dispose();
    }
  });

  test("ctr run -t sh: typed lines reach an interactive shell, and its exit status is ctr's", async () => {
    const instance = containerd();
    const id = containerd.id('interactive');
    const pty = spawnCtrInPty(instance, runArgs(['--rm', '-t'], id, ['sh']));
    try {
      // busybox's prompt for root in /.
      await pty.waitForOutput(/\/ # /);
      // Outputs are built by printf so that the terminal's echo of the typed command
      // (which holds the format, not the result) cannot match.
      pty.write(`printf 'sum=%d\\n' $((40 + 2))\r`);
      await pty.waitForOutput(/sum=42/);
      pty.write(`printf 'rea%s\\n' dy; read line; printf 'got [%s]\\n' "$line"\r`);
      await pty.waitForOutput(/ready/);
      pty.write('typed through the pty\r');
      await pty.waitForOutput(/got \[typed through the pty\]/);
      pty.write('exit 6\r');
      const result = await pty.result;
      assert.equal(result.code, 6, `${result.stdout}\n${result.stderr}`);
    } finally {
      pty.kill();
      await instance.ctr.removeContainer(id);
    }
  });

  test("resizing the outer terminal resizes the container's (SIGWINCH -> ResizePty)", async () => {
    const instance = containerd();
    const id = containerd.id('resize');
    const pty = spawnCtrInPty(instance, runArgs(['--rm', '-t'], id, ['sh', '-c', SIZE_LOOP]), { rows: 20, cols: 70 });
    try {
      const outer = await outerTty(pty);
      await sizeReported(pty, 20, 70);
      // TIOCSWINSZ on the outer terminal: the kernel sends ctr, its foreground process, SIGWINCH.
      execFileSync('stty', ['-F', outer, 'rows', '41', 'cols', '123']);
      await sizeReported(pty, 41, 123);
      pty.write('quit\r');
      const result = await pty.result;
      assert.equal(result.code, 9, `${result.stdout}\n${result.stderr}`);
    } finally {
      pty.kill();
      await instance.ctr.removeContainer(id);
    }
  });

  test('ctr task exec -t: an exec gets a terminal of its own, sized like the outer one, and its exit status', async () => {
    const instance = containerd();
    const id = containerd.id('exec-tty');
    try {
      await instance.ctr.ok(runArgs(['-d'], id, ['sleep', '1000']));
      await waitForTask(instance.ctr, id, 'RUNNING');
      const pty = spawnCtrInPty(instance, ['tasks', 'exec', '-t', '--exec-id', 'term', id, 'sh', '-c', `tty; ${SIZE_LOOP}`], { rows: 27, cols: 91 });
      try {
        // The exec's own terminal, printed before anything is typed.
        await pty.waitForOutput(/outer-tty:\S+\r?\n\/dev\/pts\/\d+\r*\n/);
        await sizeReported(pty, 27, 91);
        pty.write('quit from the keyboard\r');
        const result = await pty.result;
        assert.equal(result.code, 9, `${result.stdout}\n${result.stderr}`);
        const lines = screen(result.stdout).split('\n');
        assert.match(lines[0] ?? '', /^\/dev\/pts\/\d+$/);
        assert.ok(lines.includes('got [quit from the keyboard]'), screen(result.stdout));
      } finally {
        pty.kill();
      }
      // The exec's terminal is gone; the container's init runs on.
      assert.equal((await waitForTask(instance.ctr, id, 'RUNNING')).status, 'RUNNING');
    } finally {
      await instance.ctr.removeContainer(id);
    }
  });
});
