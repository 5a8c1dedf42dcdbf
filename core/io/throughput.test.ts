/**
 * Stdout throughput through the shim's copier, next to the same topology with
 * `cat` as the copier (process -> pipe -> copier -> fifo -> reader): 256 MiB each,
 * interleaved, medians reported as test diagnostics. The assertions are about
 * correctness (every byte arrives) and a floor far below either number, so a
 * pathological regression (tiny chunks, a copy per byte) fails.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createProcessIO } from './index.js';
import type { IoTestEnv } from './test-support.js';
import { createIoTestEnv, within } from './test-support.js';

const MIB = 256;
const BYTES = MIB * 1024 * 1024;
const ROUNDS = 3;

let env: IoTestEnv;

before(() => {
  env = createIoTestEnv();
});

after(() => {
  env.close();
});

/**
 * Reads the fifo to its end with dd in its own process (a blocking reader, as
 * containerd is) and resolves with the number of bytes read, when that is a whole
 * number of MiB (NaN otherwise). (`wc -c` reads so slowly that it would measure
 * itself.)
 */
function countBytes(fifo: string, countFile: string): Promise<number> {
  // With iflag=fullblock only the last record can be partial: 'F+P records in'.
  const reader = env.sh(`dd bs=1048576 iflag=fullblock of=/dev/null < ${fifo} 2> ${countFile}`, [-1, -1, 2]);
  return within(reader.exited, 'the reader', 60_000).then(() => {
    const records = /(\d+)\+(\d+) records in/.exec(readFileSync(countFile, 'utf8'));
    if (records?.[2] !== '0') return Number.NaN;
    return Number(records[1]) * 1024 * 1024;
  });
}

const WRITE = `dd if=/dev/zero bs=1048576 count=${MIB} 2>/dev/null`;

async function throughShim(round: number): Promise<{ seconds: number; cpuMs: number }> {
  const fifo = join(env.dir, `shim-${round}`);
  await env.mkfifo(fifo);
  const io = await createProcessIO(env.options({ stdin: '', stdout: fifo, stderr: '', terminal: false }));
  try {
    const counted = countBytes(fifo, `${fifo}.count`);
    const cpu = process.cpuUsage();
    const started = performance.now();
    const child = env.sh(WRITE, io.runtimeFds);
    await io.started();
    await within(child.exited, 'the writer', 60_000);
    assert.equal(await io.drain(60_000), true);
    await io.close();
    assert.equal(await counted, BYTES);
    const seconds = (performance.now() - started) / 1000;
    const used = process.cpuUsage(cpu);
    return { seconds, cpuMs: (used.user + used.system) / 1000 };
  } finally {
    await io.close();
  }
}

async function throughCat(round: number): Promise<number> {
  const fifo = join(env.dir, `cat-${round}`);
  await env.mkfifo(fifo);
  const counted = countBytes(fifo, `${fifo}.count`);
  const started = performance.now();
  const child = env.sh(`${WRITE} | cat > ${fifo}`, [-1, -1, 2]);
  await within(child.exited, 'dd | cat', 60_000);
  assert.equal(await counted, BYTES);
  return (performance.now() - started) / 1000;
}

const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? Number.NaN;

test(`${MIB} MiB of stdout through the shim's fifo copier, next to cat`, { timeout: 120_000 }, async (t) => {
  const shim: number[] = [];
  const cpu: number[] = [];
  const cat: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const result = await throughShim(round);
    shim.push(result.seconds);
    cpu.push(result.cpuMs);
    cat.push(await throughCat(round));
  }
  const shimRate = MIB / median(shim);
  const catRate = MIB / median(cat);
  t.diagnostic(`shim copier: ${shimRate.toFixed(0)} MiB/s (median of ${ROUNDS}; runs ${shim.map((s) => s.toFixed(2)).join(', ')} s; Node CPU ${median(cpu).toFixed(0)} ms per ${MIB} MiB)`);
  t.diagnostic(`cat copier:  ${catRate.toFixed(0)} MiB/s (median of ${ROUNDS}; runs ${cat.map((s) => s.toFixed(2)).join(', ')} s)`);
  t.diagnostic(`ratio shim/cat: ${(shimRate / catRate).toFixed(2)}`);
  assert.ok(shimRate > 20, `the copier managed only ${shimRate.toFixed(1)} MiB/s`);
});
