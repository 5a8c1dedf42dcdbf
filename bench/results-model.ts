/**
 * What one bench run found, as written to `bench/results/<stamp>-<mode>.json` and
 * rendered as the Markdown table and the SVG chart.
 */
import type { CallTimings } from './daemon-log.js';
import type { Summary } from './stats.js';

/** The two shims compared. */
export type ShimKey = 'tsrun' | 'runcV2';

/** Which direction is good for a measurement (latency: lower; throughput: higher). */
export type Better = 'lower' | 'higher';

/** One measurement taken for both shims, interleaved. */
export interface Comparison {
  /** Stable id, e.g. `latency.cold`, `memory.pod.50`. */
  readonly id: string;
  /** What a reader sees in the table. */
  readonly title: string;
  /** Unit of the summaries, e.g. `ms`, `MiB/s`, `MiB PSS per container`. */
  readonly unit: string;
  readonly better: Better;
  /** Summaries of the successful samples; undefined when every run failed. */
  readonly tsrun: Summary | undefined;
  readonly runcV2: Summary | undefined;
  /** median(tsrun) / median(runc-v2); NaN when either side is missing. */
  readonly ratio: number;
  /** Runs that failed (ctr exited non-zero, short output, ...), left out of the summaries. */
  readonly failures: { readonly tsrun: number; readonly runcV2: number };
  /** Raw samples, in the order they were taken. */
  readonly samples: { readonly tsrun: readonly number[]; readonly runcV2: readonly number[] };
  /** How the two sides were set up, when it is not obvious from the title. */
  readonly note?: string;
  /** First error message per shim, for a reader who wonders why runs failed. */
  readonly errors?: Partial<Record<ShimKey, string>>;
}

/** A number with no runc-v2 twin (the plain fifo limit), shown beside the comparisons. */
export interface Reference {
  readonly id: string;
  readonly title: string;
  readonly unit: string;
  readonly summary: Summary | undefined;
  readonly samples: readonly number[];
  readonly note?: string;
}

/** Per Task call timings recorded by tsrun daemons (shim/timings.ts). */
export interface ShimCost {
  /** What the numbers are: handling time, and own time (handling minus waiting for runc). */
  readonly label: string;
  /** The long-lived group daemon's own summary (from its SIGUSR1 diagnostic report). */
  readonly groupDaemon: CallTimings | undefined;
  /** How many containers that daemon served when the report was taken. */
  readonly groupDaemonNote: string;
  /**
   * One-container daemons (the default `container` policy), from their "daemon exiting"
   * lines: per method, the distribution of each daemon's p50 over all such daemons, of the
   * handling time and (when recorded) of the own time.
   */
  readonly oneContainerDaemons: Readonly<Record<string, { readonly handling: Summary; readonly own: Summary | undefined }>>;
  readonly oneContainerDaemonCount: number;
}

/** The machine and software the numbers came from. */
export interface MachineInfo {
  readonly cpuModel: string;
  readonly cpus: number;
  readonly memoryMiB: number;
  readonly kernel: string;
  readonly containerd: string;
  readonly runc: string;
  readonly node: string;
  /** 1-minute load average when the bench started and ended: a busy machine shows here. */
  readonly loadAverageStart: number;
  readonly loadAverageEnd: number;
}

/** The whole run. */
export interface BenchResults {
  readonly mode: 'full' | 'quick' | 'smoke';
  readonly startedAt: string;
  readonly durationSeconds: number;
  readonly machine: MachineInfo;
  readonly settings: Readonly<Record<string, unknown>>;
  /** Wall time of each phase, for keeping the modes inside their time budgets. */
  readonly phaseSeconds: Readonly<Record<string, number>>;
  readonly comparisons: readonly Comparison[];
  readonly references: readonly Reference[];
  readonly shimCost: ShimCost | undefined;
  /** Things a reader should know (a daemon that did not exit, a phase that failed). */
  readonly notes: readonly string[];
}
