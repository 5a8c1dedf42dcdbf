/**
 * The statistics the side-by-side bench reports: medians with their spread, and ratios
 * of medians. Only robust ones: this 2-core machine is shared, so one slow sample must
 * not move a result (a mean would).
 */

/** A set of samples, summarised. */
export interface Summary {
  /** How many samples. */
  readonly n: number;
  readonly median: number;
  /** 25th and 75th percentiles: the spread a reader should look at. */
  readonly p25: number;
  readonly p75: number;
  readonly min: number;
  readonly max: number;
}

/**
 * The q-quantile (0..1) of samples, interpolating linearly between the two nearest
 * ranks (the "R-7" definition spreadsheets and numpy use by default).
 * @throws RangeError when there are no samples or q is outside 0..1.
 */
export function quantile(samples: readonly number[], q: number): number {
  if (samples.length === 0) throw new RangeError('quantile of no samples: measure at least once');
  if (!(q >= 0 && q <= 1)) throw new RangeError(`quantile ${q} is outside 0..1`);
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = q * (sorted.length - 1);
  const low = Math.floor(rank);
  const high = Math.ceil(rank);
  const a = sorted[low] ?? Number.NaN;
  const b = sorted[high] ?? Number.NaN;
  return a + (b - a) * (rank - low);
}

/** The median of samples. @throws RangeError when there are none. */
export function median(samples: readonly number[]): number {
  return quantile(samples, 0.5);
}

/** Summarises samples; undefined when there are none (every run failed). */
export function summarize(samples: readonly number[]): Summary | undefined {
  if (samples.length === 0) return undefined;
  return {
    n: samples.length,
    median: median(samples),
    p25: quantile(samples, 0.25),
    p75: quantile(samples, 0.75),
    min: Math.min(...samples),
    max: Math.max(...samples),
  };
}

/**
 * tsrun's median over runc-v2's: the number the bench is about. NaN when either side
 * has no samples or runc-v2's median is 0 (nothing to compare against).
 */
export function ratioOfMedians(tsrun: Summary | undefined, runcV2: Summary | undefined): number {
  if (tsrun === undefined || runcV2 === undefined || runcV2.median === 0) return Number.NaN;
  return tsrun.median / runcV2.median;
}
