/**
 * ttrpc round-trip micro-benchmark (the TypeScript twin of containerd/ttrpc's
 * `BenchmarkRoundTrip`): unary calls with a small payload over a unix socket,
 * with 1 and 64 calls in flight, the server in this process or in a child
 * process. Prints a Markdown table of calls per second and p50/p99 latency.
 *
 * Run: `npx tsc -b bench && node build/bench/ttrpc-roundtrip.js`
 * Options: `--duration-ms=3000` per case, `--mode=both|in-process|two-process`.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { ttrpc } from '../protos/index.js';
import {
  connect,
  createServer,
  createServiceClient,
  defineService,
  implement,
  type TtrpcClient,
} from '../ttrpc/index.js';

const SERVICE = 'bench.v1.Echo';
const Echo = defineService({ Echo: { requestType: ttrpc.KeyValue, responseType: ttrpc.KeyValue } });

interface Options {
  readonly durationMs: number;
  readonly mode: 'both' | 'in-process' | 'two-process';
}

interface Result {
  readonly mode: string;
  readonly inFlight: number;
  readonly calls: number;
  readonly callsPerSecond: number;
  readonly p50Us: number;
  readonly p99Us: number;
}

function parseOptions(argv: readonly string[]): Options {
  let durationMs = 3000;
  let mode: Options['mode'] = 'both';
  for (const arg of argv) {
    const [key, value = ''] = arg.split('=');
    if (key === '--duration-ms') durationMs = Number(value);
    else if (key === '--mode' && (value === 'both' || value === 'in-process' || value === 'two-process')) mode = value;
    else throw new Error(`unknown option ${arg}: use --duration-ms=N or --mode=both|in-process|two-process`);
  }
  if (!Number.isFinite(durationMs) || durationMs <= 0) throw new Error('--duration-ms must be a positive number');
  return { durationMs, mode };
}

/** Serves the echo service on `path`; resolves to a stop function. */
async function serve(path: string): Promise<() => Promise<void>> {
  const server = createServer();
  server.register(SERVICE, implement(Echo, { Echo: (request) => request }));
  await server.listen(path);
  return () => server.close();
}

/** Runs `inFlight` sequential callers for `durationMs` and measures every call. */
async function measure(client: TtrpcClient, inFlight: number, durationMs: number): Promise<Omit<Result, 'mode'>> {
  const echo = createServiceClient(client, SERVICE, Echo);
  const request = { key: 'container-id', value: 'x'.repeat(32) };
  const latencies: number[] = [];
  const run = async (until: number, record: boolean): Promise<void> => {
    while (performance.now() < until) {
      const started = performance.now();
      await echo.Echo(request);
      if (record) latencies.push(performance.now() - started);
    }
  };
  // Warm up (JIT, socket buffers) for a fifth of the run, unmeasured.
  const warmUntil = performance.now() + durationMs / 5;
  await Promise.all(Array.from({ length: inFlight }, () => run(warmUntil, false)));
  const started = performance.now();
  const until = started + durationMs;
  await Promise.all(Array.from({ length: inFlight }, () => run(until, true)));
  const elapsed = performance.now() - started;
  latencies.sort((a, b) => a - b);
  const quantile = (q: number): number =>
    (latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0) * 1000;
  return {
    inFlight,
    calls: latencies.length,
    callsPerSecond: (latencies.length / elapsed) * 1000,
    p50Us: quantile(0.5),
    p99Us: quantile(0.99),
  };
}

/** Starts this file as a server in a child process; resolves once it listens. */
async function serveInChild(path: string): Promise<() => Promise<void>> {
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), '--serve', path], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout });
  await new Promise<void>((resolve, reject) => {
    child.once('exit', (code) => {
      reject(new Error(`the benchmark server exited early with code ${String(code)}`));
    });
    lines.once('line', () => {
      resolve();
    });
  });
  return () =>
    new Promise<void>((resolve) => {
      child.removeAllListeners('exit');
      child.once('exit', () => {
        resolve();
      });
      child.kill('SIGTERM');
    });
}

async function runMode(mode: 'in-process' | 'two-process', options: Options): Promise<Result[]> {
  const dir = mkdtempSync(join(tmpdir(), 'ttrpc-bench-'));
  const path = join(dir, 'bench.sock');
  const stop = mode === 'in-process' ? await serve(path) : await serveInChild(path);
  try {
    const results: Result[] = [];
    for (const inFlight of [1, 64]) {
      const client = await connect(path);
      try {
        results.push({ mode, ...(await measure(client, inFlight, options.durationMs)) });
      } finally {
        await client.close();
      }
    }
    return results;
  } finally {
    await stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

function table(results: readonly Result[], options: Options): string {
  const rows = results.map(
    (r) =>
      `| ${r.mode} | ${r.inFlight} | ${Math.round(r.callsPerSecond).toLocaleString('en-US')} | ${r.p50Us.toFixed(0)} | ${r.p99Us.toFixed(0)} | ${r.calls.toLocaleString('en-US')} |`,
  );
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  return [
    `ttrpc round trip, unary Echo (KeyValue, ~50-byte payload), unix socket, ${options.durationMs} ms per case`,
    `(node ${process.version}, ${cpus().length} x ${cpu})`,
    '',
    '| server | calls in flight | calls/s | p50 µs | p99 µs | calls |',
    '|---|---:|---:|---:|---:|---:|',
    ...rows,
  ].join('\n');
}

async function main(argv: readonly string[]): Promise<void> {
  if (argv[0] === '--serve') {
    const path = argv[1];
    if (path === undefined) throw new Error('--serve needs a socket path');
    const stop = await serve(path);
    process.once('SIGTERM', () => {
      void stop().then(() => process.exit(0));
    });
    process.stdout.write('ready\n');
    return;
  }
  const options = parseOptions(argv);
  const modes = options.mode === 'both' ? (['in-process', 'two-process'] as const) : [options.mode];
  const results: Result[] = [];
  for (const mode of modes) results.push(...(await runMode(mode, options)));
  process.stdout.write(`${table(results, options)}\n`);
}

main(process.argv.slice(2)).catch((error: unknown) => {
  process.stderr.write(`ttrpc-roundtrip: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
