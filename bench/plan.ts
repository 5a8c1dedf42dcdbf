/**
 * How much the bench measures in each mode, from the command line.
 *
 *   node build/bench/run.js            full: about 10 minutes on 2 cores
 *   node build/bench/run.js --quick    a quick look: under 5 minutes (memory at 1 and 10 only)
 *   node build/bench/run.js --smoke    one iteration of everything (CI: proves it still works)
 *   --only=latency,burst,exec,throughput,memory,cost   a subset of phases
 *   --out=DIR                          where results go (default: the repository's bench/results)
 */

/** The measurement phases, in the order they run. */
export const phases = ['latency', 'exec', 'cost', 'burst', 'throughput', 'memory'] as const;
export type Phase = (typeof phases)[number];

/** Everything the measurements read. */
export interface Plan {
  readonly mode: 'full' | 'quick' | 'smoke';
  readonly phases: ReadonlySet<Phase>;
  /** Interleaved rounds (one sample per shim each) of each start-to-exit latency. */
  readonly latencyRounds: number;
  /** Containers started at once in a burst, and how many bursts per shim. */
  readonly burstSize: number;
  readonly burstRounds: number;
  readonly execRounds: number;
  /** Bytes a container writes to stdout, and how many runs per shim. */
  readonly throughputBytes: number;
  readonly throughputRounds: number;
  /** Running container counts at which memory is taken. */
  readonly memoryCounts: readonly number[];
  /** Containers per pod in the `pod` grouping. */
  readonly podSize: number;
  /** Idle time before memory is read, so start-up garbage is collected or at least settled. */
  readonly memorySettleMs: number;
  /** Where results are written. */
  readonly outDir: string;
}

/** A command line the bench does not understand. */
export class PlanError extends Error {
  override readonly name = 'PlanError';
}

const MiB = 1024 * 1024;

/**
 * The plan for a command line.
 * @throws PlanError on an unknown option or phase; the message lists what is accepted.
 */
export function parsePlan(argv: readonly string[], defaultOutDir: string): Plan {
  let mode: Plan['mode'] = 'full';
  let only: Set<Phase> | undefined;
  let outDir = defaultOutDir;
  for (const arg of argv) {
    const [key = '', value = ''] = arg.split(/=(.*)/s);
    if (arg === '--quick') mode = 'quick';
    else if (arg === '--smoke') mode = 'smoke';
    else if (key === '--out' && value !== '') outDir = value;
    else if (key === '--only' && value !== '') {
      only = new Set();
      for (const name of value.split(',')) {
        const phase = phases.find((p) => p === name);
        if (phase === undefined) throw new PlanError(`--only: unknown phase '${name}': use a comma-separated list of ${phases.join(', ')}`);
        only.add(phase);
      }
    } else {
      throw new PlanError(`unknown option '${arg}': use --quick, --smoke, --only=${phases.join(',')} or --out=DIR`);
    }
  }
  const selected: ReadonlySet<Phase> = only ?? new Set(phases);
  switch (mode) {
    case 'full':
      return {
        mode, phases: selected, outDir, podSize: 5,
        latencyRounds: 40, burstSize: 20, burstRounds: 8, execRounds: 60,
        throughputBytes: 256 * MiB, throughputRounds: 8,
        memoryCounts: [1, 10, 50], memorySettleMs: 3000,
      };
    case 'quick':
      return {
        mode, phases: selected, outDir, podSize: 5,
        latencyRounds: 7, burstSize: 20, burstRounds: 1, execRounds: 15,
        throughputBytes: 256 * MiB, throughputRounds: 2,
        memoryCounts: [1, 10], memorySettleMs: 1000,
      };
    case 'smoke':
      return {
        mode, phases: selected, outDir, podSize: 5,
        latencyRounds: 1, burstSize: 20, burstRounds: 1, execRounds: 1,
        throughputBytes: 16 * MiB, throughputRounds: 1,
        memoryCounts: [1], memorySettleMs: 200,
      };
  }
}
