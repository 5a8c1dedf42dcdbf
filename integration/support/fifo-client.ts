/**
 * The test as containerd's client for a task's output: `ctr run -d --fifo-dir` creates the
 * stdio fifos and leaves, and the test reads them itself, to their end of file.
 *
 * Why not read what `ctr run` prints: ctr 1.6's task.Delete closes its fifo readers before
 * waiting for them (containerd PR #8643 fixed it in 1.7), so output still in a fifo when
 * the exit reaches ctr is dropped by ctr itself, with the runc shim too, more often on a
 * loaded machine. The shim's promise is that every byte is in the fifo before the exit is
 * published; this reads exactly that.
 *
 * ctr copies from the fifos until it leaves, so the container waits for a file the test
 * creates in its root filesystem once ctr is gone, and only then runs its script.
 */
import { createReadStream, writeFileSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ContainerdInstance } from '../harness/index.js';
import { spawnCtr, spawnCtrInPty } from './ctr-process.js';
import { rootfsPath } from './tasks.js';
import { runArgs } from './tsrun-containerd.js';

/** The gate file in the container's /tmp. */
const GATE = 'tmp/.tsrun-go';

/** A detached task whose stdio fifos the test holds (see the module comment). */
export interface FifoTask {
  readonly id: string;
  /** Path of the task's stdout or stderr fifo. */
  fifo(stream: 'stdout' | 'stderr'): string;
  /** Opens a fifo and collects everything until its end of file. */
  read(stream: 'stdout' | 'stderr'): FifoReader;
  /** Lets the container run its script. */
  go(): void;
  /** Removes the fifo directory (the container is the caller's to remove). */
  dispose(): Promise<void>;
}

/** Everything read from one fifo. */
export interface FifoReader {
  /** Resolves with all bytes once the fifo reached its end (every writer closed). */
  readonly done: Promise<Buffer>;
  close(): void;
}

/**
 * Starts `sh -c script` in a detached task (a terminal when `tty`), fifos in a fresh dir,
 * the script held until {@link FifoTask.go}.
 * @throws Error when ctr fails or made no fifos.
 */
export async function startFifoTask(instance: ContainerdInstance, id: string, script: string, options: { readonly tty?: boolean } = {}): Promise<FifoTask> {
  const fifoDir = await mkdtemp(join(tmpdir(), 'tsrun-fifo-'));
  try {
    const gated = `until [ -e /${GATE} ]; do sleep 0.02; done; ${script}`;
    const args = runArgs(['-d', ...(options.tty === true ? ['-t'] : []), '--fifo-dir', fifoDir], id, ['sh', '-c', gated]);
    // `ctr run -d -t` wants a terminal to start with, even though it leaves at once.
    const ctr = options.tty === true ? spawnCtrInPty(instance, args) : spawnCtr(instance, args);
    ctr.endInput();
    const result = await ctr.result;
    if (result.code !== 0) throw new Error(`ctr ${args.join(' ')} exited ${result.code ?? result.signal ?? '?'}: ${result.stdout}${result.stderr}`);
    const [set] = await readdir(fifoDir);
    if (set === undefined) throw new Error(`ctr made no fifo set in ${fifoDir}`);
    const fifo = (stream: 'stdout' | 'stderr'): string => join(fifoDir, set, `${id}-${stream}`);
    return {
      id,
      fifo,
      read(stream) {
        const chunks: Buffer[] = [];
        const reader = createReadStream(fifo(stream));
        const done = new Promise<Buffer>((resolve, reject) => {
          reader.on('data', (chunk) => chunks.push(Buffer.from(chunk)));
          reader.once('end', () => {
            resolve(Buffer.concat(chunks));
          });
          reader.once('error', reject);
        });
        done.catch(() => undefined);
        return {
          done,
          close() {
            reader.destroy();
          },
        };
      },
      go() {
        writeFileSync(rootfsPath(instance, id, GATE), '');
      },
      async dispose() {
        await rm(fifoDir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await rm(fifoDir, { recursive: true, force: true });
    throw error;
  }
}
