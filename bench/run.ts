/**
 * `npm run bench`: tsrun against containerd-shim-runc-v2, side by side on one private
 * containerd, the same runc and the same busybox image, interleaved (tsrun, runc-v2,
 * tsrun, ...). Prints a Markdown table of medians and ratios and writes
 * `bench/results/<stamp>-<mode>.json` and `.svg`. Never asserts a number: it measures.
 *
 *   node build/bench/run.js [--quick | --smoke] [--only=PHASES] [--out=DIR]
 *
 * Needs root, containerd 1.6+, runc, busybox-static and a built tree (`npm run build`).
 * Everything it starts (containerd, shims, containers, temp files) is removed at the end,
 * also on Ctrl-C.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CallTimings } from './daemon-log.js';
import { measureBurst } from './measure-burst.js';
import { measureExec } from './measure-exec.js';
import { measureLatency, trueCommand } from './measure-latency.js';
import { measureMemory } from './measure-memory.js';
import { groupDaemonTimings, oneContainerDaemonTimings, shimCostOf } from './measure-shim-cost.js';
import { measureFifoLimit, measureStdoutThroughput } from './measure-throughput.js';
import { parsePlan, PlanError, type Phase, type Plan } from './plan.js';
import { chartBars, describeMachine, formatNumber, renderMarkdown } from './report.js';
import type { BenchResults, Comparison, MachineInfo, Reference, ShimCost, ShimKey } from './results-model.js';
import { createRig, shimsUnderTest, type Placement, type Rig } from './rig.js';
import { shimProcesses } from './shim-processes.js';
import { renderRatioChart } from './svg-chart.js';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
/** The group the keepers run in; warm runs join it. */
const warmGroup = 'bench-warm';
const warm: Placement = { kind: 'group', group: warmGroup };
const own: Placement = { kind: 'own' };

function log(message: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

function firstLine(text: string): string {
  return text.trim().split('\n')[0] ?? '';
}

/** What {@link measureAll} found. */
interface Measured {
  readonly comparisons: Comparison[];
  readonly references: Reference[];
  readonly shimCost: ShimCost | undefined;
  readonly phaseSeconds: Record<string, number>;
}

/**
 * Runs every phase of the plan on the rig. A phase that throws (containerd refused a
 * keeper, a shim that cannot start at all) is recorded in the notes and the next phase
 * runs: one broken measurement must not lose the others.
 */
async function measureAll(rig: Rig, plan: Plan): Promise<Measured> {
  const phaseSeconds: Record<string, number> = {};
  const phase = async <T>(name: string, work: () => Promise<T>): Promise<T | undefined> => {
    const started = performance.now();
    try {
      return await work();
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      rig.notes.push(`${name} failed: ${firstLine(message)}`);
      log(`${name} failed: ${firstLine(message)}`);
      return undefined;
    } finally {
      phaseSeconds[name] = Math.round((performance.now() - started) / 100) / 10;
    }
  };
  const comparisons: Comparison[] = [];
  const add = (found: Comparison | readonly Comparison[] | undefined): void => {
    if (found === undefined) return;
    if (Array.isArray(found)) comparisons.push(...(found as readonly Comparison[]));
    else comparisons.push(found as Comparison);
  };
  const references: Reference[] = [];
  const none = new Set<number>();
  const has = (name: Phase): boolean => plan.phases.has(name);

  // One unrecorded run of each first: containerd's own first-use costs, page cache.
  const warmUp: string[] = [];
  for (const shim of shimsUnderTest) {
    await rig.settle(none, 'warm-up', { everything: true });
    const outcome = await rig.runToExit(shim, own, 'warmup', trueCommand);
    warmUp.push(`${shim.label} ${outcome.ok ? `${formatNumber(outcome.ms)} ms` : `failed (${outcome.error})`}`);
  }
  rig.notes.push(`first run after containerd started (one unrecorded warm-up run each): ${warmUp.join(', ')}`);

  if (has('latency')) {
    log(`latency, no shim running: ${plan.latencyRounds} rounds`);
    add(
      await phase('latency.first', () =>
        measureLatency(rig, plan.latencyRounds, own, 'nothing', {
          id: 'latency.first',
          title: 'run --rm /bin/true, no shim process running',
          note: "before each run, tsrun's manager (if any) was stopped and every shim process had exited; each container gets its own shim",
        }),
      ),
    );
  }

  // Keepers: one idle container per shim in the warm group, for warm runs, execs, the
  // group daemon's timings and the warm burst.
  const keepers: Record<ShimKey, string> = { tsrun: 'keeper-tsrun', runcV2: 'keeper-runcV2' };
  let expected: ReadonlySet<number> | undefined;
  if (has('latency') || has('exec') || has('cost') || has('burst')) {
    expected = await phase('keepers', async () => {
      for (const shim of shimsUnderTest) await rig.startIdle(shim, warm, keepers[shim.key]);
      await rig.settle(await rig.persistentPids(), 'keepers');
      const running = (await shimProcesses(rig.containerd.address)).filter((p) => p.role !== 'action' && !rig.stuck.has(p.pid));
      const serving = running.filter((p) => p.serving);
      log(`keepers running: ${running.map((p) => `${p.shim} ${p.role} ${p.pid}${p.serving ? ' (serving)' : ''}`).join(', ')}`);
      // Each keeper must be served by its own runtime's shim, or every warm number is wrong.
      for (const shim of shimsUnderTest) {
        if (serving.filter((p) => p.shim === shim.key).length !== 1) {
          throw new Error(`expected one ${shim.label} process serving the keepers, found ${serving.map((p) => `${p.shim} ${p.pid}`).join(', ') || 'none'}`);
        }
      }
      return new Set(running.map((p) => p.pid));
    });
  }
  let groupTimings: CallTimings | undefined;
  if (expected !== undefined) {
    const running = expected;
    if (has('latency')) {
      log(`latency, cold and warm: ${plan.latencyRounds} rounds each`);
      add(
        await phase('latency.cold', () =>
          measureLatency(rig, plan.latencyRounds, own, running, {
            id: 'latency.cold',
            title: 'run --rm /bin/true, cold (new shim for the container)',
            note: "a keeper container keeps one daemon of the shim running; the new container gets its own (tsrun's default container policy)",
          }),
        ),
      );
      add(
        await phase('latency.warm', () =>
          measureLatency(rig, plan.latencyRounds, warm, running, {
            id: 'latency.warm',
            title: 'run --rm /bin/true, warm (joins a running shim)',
            note: `the keeper's group: io.containerd.tsrun.v1.group=${warmGroup}-tsrun / io.containerd.runc.v2.group=${warmGroup}-runcV2`,
          }),
        ),
      );
    }
    if (has('exec')) {
      log(`exec: ${plan.execRounds} rounds`);
      add(await phase('exec', () => measureExec(rig, plan.execRounds, keepers)));
    }
    if (has('cost')) groupTimings = await phase('cost', () => groupDaemonTimings(rig, keepers.tsrun));
    if (has('burst')) {
      log(`burst of ${plan.burstSize}: ${plan.burstRounds} rounds, cold and warm`);
      add(
        await phase('burst.cold', () =>
          measureBurst(rig, plan.burstRounds, plan.burstSize, own, running, {
            id: 'burst.cold',
            title: `burst of ${plan.burstSize} parallel run --rm, cold`,
            note: `${plan.burstSize} ctr run --rm at once, wall time to the last exit; each container gets its own shim`,
          }),
        ),
      );
      add(
        await phase('burst.warm', () =>
          measureBurst(rig, plan.burstRounds, plan.burstSize, warm, running, {
            id: 'burst.warm',
            title: `burst of ${plan.burstSize} parallel run --rm, warm`,
            note: `${plan.burstSize} ctr run --rm at once, all in the keeper's group (one running shim serves them all)`,
          }),
        ),
      );
    }
  }
  // Whether or not they all started: whatever of them exists goes now.
  for (const shim of shimsUnderTest) await rig.remove(keepers[shim.key]);
  await rig.settle(none, 'keepers removed');

  if (has('throughput')) {
    log(`stdout throughput: ${plan.throughputRounds} rounds of ${plan.throughputBytes} bytes`);
    add(await phase('stdout', () => measureStdoutThroughput(rig, plan.throughputRounds, plan.throughputBytes, none)));
    const fifo = await phase('stdout.fifo', () => measureFifoLimit(rig, plan.throughputRounds, plan.throughputBytes));
    if (fifo !== undefined) references.push(fifo);
  }
  if (has('memory')) {
    log(`memory at ${plan.memoryCounts.join(', ')} idle containers, container/pod/namespace groupings`);
    add(await phase('memory', () => measureMemory(rig, { counts: plan.memoryCounts, podSize: plan.podSize, settleMs: plan.memorySettleMs })));
  }
  let shimCost: ShimCost | undefined;
  if (has('cost')) {
    const groupNote = `the keeper's daemon (group ${warmGroup}-tsrun), after the keeper, ${has('latency') ? plan.latencyRounds : 0} warm runs and ${has('exec') ? plan.execRounds : 0} execs, read with SIGUSR1`;
    shimCost = shimCostOf(groupTimings, groupNote, await oneContainerDaemonTimings(rig, 'run-tsrun-latency-'));
  }
  return { comparisons, references, shimCost, phaseSeconds };
}

function versionOf(command: string, args: readonly string[], pattern: RegExp): string {
  try {
    const out = execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    return pattern.exec(out)?.[1] ?? firstLine(out);
  } catch {
    return 'unknown';
  }
}

async function main(): Promise<number> {
  let plan: Plan;
  try {
    plan = parsePlan(process.argv.slice(2), join(repoRoot, 'bench', 'results'));
  } catch (error) {
    if (error instanceof PlanError) {
      process.stderr.write(`bench: ${error.message}\n`);
      return 2;
    }
    throw error;
  }
  if (process.getuid?.() !== 0) {
    process.stderr.write('bench: run as root: containerd and runc need it (sudo npm run bench)\n');
    return 2;
  }
  if (!existsSync(join(repoRoot, 'bin', 'containerd-shim-tsrun-v1'))) {
    process.stderr.write('bench: bin/containerd-shim-tsrun-v1 is missing: run `npm run build` first\n');
    return 2;
  }

  const startedAt = new Date();
  const loadAverageStart = loadavg()[0] ?? 0;
  log(`mode ${plan.mode}, phases ${[...plan.phases].join(', ')}`);
  const rig = await createRig();
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => (closing ??= rig.close());
  const onSignal = (signal: NodeJS.Signals): void => {
    log(`${signal}: removing everything the bench started`);
    void close().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  let measured: Measured;
  let containerdVersion = 'unknown';
  try {
    containerdVersion = await rig.containerd.ctr.serverVersion();
    measured = await measureAll(rig, plan);
  } finally {
    log('cleaning up');
    await close();
  }

  const machine: MachineInfo = {
    cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
    cpus: cpus().length,
    memoryMiB: Math.round(totalmem() / 1024 / 1024),
    kernel: release(),
    containerd: containerdVersion,
    runc: versionOf('runc', ['--version'], /runc version (\S+)/),
    node: process.version,
    loadAverageStart,
    loadAverageEnd: loadavg()[0] ?? 0,
  };
  const results: BenchResults = {
    mode: plan.mode,
    startedAt: startedAt.toISOString(),
    durationSeconds: (Date.now() - startedAt.getTime()) / 1000,
    machine,
    settings: { ...plan, phases: [...plan.phases] },
    phaseSeconds: measured.phaseSeconds,
    comparisons: measured.comparisons,
    references: measured.references,
    shimCost: measured.shimCost,
    notes: rig.notes,
  };

  process.stdout.write(renderMarkdown(results));
  await mkdir(plan.outDir, { recursive: true });
  const stem = join(plan.outDir, `${results.startedAt.replace(/[:.]/g, '-')}-${plan.mode}`);
  await writeFile(`${stem}.json`, `${JSON.stringify(results, null, 2)}\n`);
  await writeFile(`${stem}.svg`, renderRatioChart(chartBars(results), { title: `tsrun / containerd-shim-runc-v2 (${plan.mode})`, footer: describeMachine(machine) }));
  log(`wrote ${stem}.json and ${stem}.svg in ${Math.round(results.durationSeconds)} s`);
  return 0;
}

process.exitCode = await main();
