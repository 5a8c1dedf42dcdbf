/**
 * Per-method timings of the Task calls the daemon handled, so the shim's own cost
 * is visible (SIGUSR1 report, the exit log line, bench/): the whole handling time
 * and the shim's own part, which excludes the time spent waiting for the OCI
 * runtime. Bounded: a ring of the last samples per method.
 */

/** Per method: count, and p50/p99/max in ms of the whole call and of the shim's own part. */
export type TimingSummary = Record<
  string,
  { count: number; p50: number; p99: number; max: number; ownP50: number; ownP99: number; ownMax: number }
>;

export interface CallTimings {
  /** One handled call: `ms` in all, `runtimeMs` of it waiting for the OCI runtime. */
  record(method: string, ms: number, runtimeMs: number): void;
  summary(): TimingSummary;
}

interface Samples {
  readonly total: number[];
  readonly own: number[];
  count: number;
}

/** Keeps the last `keep` samples per method. */
export function createCallTimings(keep = 1024): CallTimings {
  const samples = new Map<string, Samples>();
  return {
    record(method, ms, runtimeMs) {
      let entry = samples.get(method);
      if (entry === undefined) {
        entry = { total: [], own: [], count: 0 };
        samples.set(method, entry);
      }
      entry.total[entry.count % keep] = ms;
      entry.own[entry.count % keep] = Math.max(0, ms - runtimeMs);
      entry.count++;
    },
    summary() {
      const out: TimingSummary = {};
      for (const [method, entry] of samples) {
        const total = quantiles(entry.total);
        const own = quantiles(entry.own);
        out[method] = { count: entry.count, ...total, ownP50: own.p50, ownP99: own.p99, ownMax: own.max };
      }
      return out;
    },
  };
}

function quantiles(values: readonly number[]): { p50: number; p99: number; max: number } {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number): number => round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0);
  return { p50: at(0.5), p99: at(0.99), max: round(sorted[sorted.length - 1] ?? 0) };
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
