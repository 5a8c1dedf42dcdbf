/**
 * stdout throughput: a container runs busybox `dd if=/dev/zero bs=1M count=N`; the shim copies its
 * stdout into the fifo ctr made, ctr copies that fifo to its own stdout, a pipe this
 * process reads and counts. The rate is taken from the first byte to the last, so the
 * container's start (measured elsewhere) does not dilute it.
 *
 * The physical limit beside it: the same `dd` writing the same bytes into a plain fifo
 * that this process reads the same way (one hop, where the container path has three).
 *
 * Not `head -c N /dev/zero`: busybox's head copies byte by byte through getc/putc and
 * tops out near 30 MiB/s on this machine, so it would measure head, not the shim.
 */
import { spawn } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { Comparison, Reference } from './results-model.js';
import { interleave, toComparison, type Sample } from './interleave.js';
import type { Rig } from './rig.js';
import { summarize } from './stats.js';

const MiB = 1024 * 1024;

/** busybox dd writing `bytes` (a whole number of MiB) of zeros to stdout, 1 MiB per write. */
export function zeroWriter(bytes: number): string[] {
  if (bytes <= 0 || bytes % MiB !== 0) throw new RangeError(`stdout size ${bytes} is not a positive whole number of MiB`);
  return ['dd', 'if=/dev/zero', `bs=${MiB}`, `count=${bytes / MiB}`];
}

/** What reading one stream to its end gave. */
interface Drained {
  readonly bytes: number;
  /** ms from the first byte to the end; 0 when no byte came. */
  readonly activeMs: number;
}

/** Reads `stream` to its end, counting bytes and timing from the first byte. */
function drain(stream: Readable): Promise<Drained> {
  return new Promise((resolve, reject) => {
    let bytes = 0;
    let first = 0;
    stream.on('data', (chunk: Buffer) => {
      if (bytes === 0) first = performance.now();
      bytes += chunk.length;
    });
    stream.once('end', () => {
      resolve({ bytes, activeMs: bytes === 0 ? 0 : performance.now() - first });
    });
    stream.once('error', reject);
  });
}

function rate(drained: Drained, expected: number, what: string): Sample {
  if (drained.bytes !== expected) return { ok: false, error: `${what} delivered ${drained.bytes} of ${expected} bytes` };
  if (drained.activeMs <= 0) return { ok: false, error: `${what} delivered everything in one chunk: too little data to time` };
  return { ok: true, value: drained.bytes / MiB / (drained.activeMs / 1000) };
}

/** Runs `ctr` with its stdout drained; resolves when it exited and its stdout ended. */
function runCtrDrained(rig: Rig, args: readonly string[], timeoutMs: number): Promise<{ readonly code: number | null; readonly stderr: string; readonly drained: Drained }> {
  const { address, namespace } = rig.containerd.ctr;
  const child = spawn('ctr', ['--address', address, '--namespace', namespace, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (text: string) => {
    stderr += text;
  });
  const exited = new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => {
      resolve(code);
    });
  });
  return Promise.all([drain(child.stdout), exited]).then(
    ([drained, code]) => {
      clearTimeout(timer);
      return { code, stderr, drained };
    },
    (error: unknown) => {
      clearTimeout(timer);
      throw error;
    },
  );
}

/** Measures `rounds` runs per shim, interleaved. */
export async function measureStdoutThroughput(rig: Rig, rounds: number, bytes: number, expected: ReadonlySet<number>): Promise<Comparison> {
  const set = await interleave(rounds, async (shim) => {
    await rig.settle(expected, 'throughput');
    const id = rig.nextId(`stdout-${shim.key}`);
    const run = await runCtrDrained(rig, rig.runArgs(shim, { kind: 'own' }, id, ['--rm'], zeroWriter(bytes)), 300_000);
    if (run.code !== 0) {
      await rig.remove(id);
      return { ok: false, error: `ctr exit ${run.code ?? 'by signal'}: ${run.stderr.trim().split('\n')[0] ?? ''}` };
    }
    return rate(run.drained, bytes, 'the container');
  });
  return toComparison(
    {
      id: 'stdout',
      title: `stdout throughput, ${bytes / MiB} MiB`,
      unit: 'MiB/s',
      better: 'higher',
      note: 'busybox dd if=/dev/zero bs=1M in the container: stdout -> shim -> ctr fifo -> ctr -> pipe read by the bench; rate from first byte to last',
    },
    set,
  );
}

/** The same bytes through one plain fifo: busybox `head` -> fifo -> this process. */
export async function measureFifoLimit(rig: Rig, rounds: number, bytes: number): Promise<Reference> {
  const samples: number[] = [];
  let note = 'busybox dd if=/dev/zero bs=1M > fifo, read by the bench as it reads ctr';
  const command = ['/bin/busybox', ...zeroWriter(bytes)].join(' ');
  for (let round = 0; round < rounds; round++) {
    const fifo = join(rig.tmpDir, `fifo-${round}`);
    await runQuiet('mkfifo', [fifo]);
    // Opening a fifo for reading blocks until a writer opens it; fs streams open it off
    // the event loop, so the writer can be spawned right after.
    const reading = drain(createReadStream(fifo));
    const writer = spawn('/bin/busybox', ['sh', '-c', `exec ${command} > "$1"`, 'sh', fifo], { stdio: 'ignore' });
    const [drained] = await Promise.all([reading, new Promise((resolve) => writer.once('close', resolve))]);
    const sample = rate(drained, bytes, 'the fifo');
    if (sample.ok) samples.push(sample.value);
    else note = `${note}; ${sample.error}`;
  }
  return { id: 'stdout.fifo', title: `plain fifo, ${bytes / MiB} MiB (physical limit)`, unit: 'MiB/s', summary: summarize(samples), samples, note };
}

function runQuiet(command: string, args: readonly string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: 'ignore' });
    child.once('error', reject);
    child.once('close', (code) => {
      if (code === 0) resolve();
      else reject(new Error(`${command} ${args.join(' ')} exited with ${code ?? 'a signal'}`));
    });
  });
}
