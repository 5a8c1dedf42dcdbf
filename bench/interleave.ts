/**
 * Interleaved sampling: tsrun, runc-v2, tsrun, runc-v2, ... so that whatever else the
 * machine does during the bench (other builds, page cache, thermal state) lands on both
 * shims alike, and a comparison is a ratio of medians of samples taken side by side.
 */
import type { Better, Comparison, ShimKey } from './results-model.js';
import { shimsUnderTest, type ShimUnderTest } from './rig.js';
import { ratioOfMedians, summarize } from './stats.js';

/** One sample: a value, or the reason there is none. */
export type Sample = { readonly ok: true; readonly value: number } | { readonly ok: false; readonly error: string };

/** Samples of both shims as they accumulate. */
export interface SampleSet {
  readonly values: Record<ShimKey, number[]>;
  readonly failures: Record<ShimKey, number>;
  readonly errors: Partial<Record<ShimKey, string>>;
}

/** An empty {@link SampleSet}. */
export function createSampleSet(): SampleSet {
  return { values: { tsrun: [], runcV2: [] }, failures: { tsrun: 0, runcV2: 0 }, errors: {} };
}

/** Adds one sample of `shim`; a failed one is counted and its first error kept. */
export function addSample(set: SampleSet, shim: ShimKey, sample: Sample): void {
  if (sample.ok) {
    set.values[shim].push(sample.value);
    return;
  }
  set.failures[shim]++;
  set.errors[shim] ??= sample.error;
}

/**
 * Takes `rounds` samples of each shim, alternating tsrun and runc-v2.
 * @param take measures one sample of `shim` (round `round`); it reports failures as
 *   samples rather than throwing. A throw is recorded as a failed sample too.
 */
export async function interleave(rounds: number, take: (shim: ShimUnderTest, round: number) => Promise<Sample>, into: SampleSet = createSampleSet()): Promise<SampleSet> {
  for (let round = 0; round < rounds; round++) {
    for (const shim of shimsUnderTest) {
      let sample: Sample;
      try {
        sample = await take(shim, round);
      } catch (error) {
        sample = { ok: false, error: error instanceof Error ? (error.message.split('\n')[0] ?? '') : String(error) };
      }
      addSample(into, shim.key, sample);
    }
  }
  return into;
}

/** What a {@link Comparison} is about, before its numbers. */
export interface ComparisonMeta {
  readonly id: string;
  readonly title: string;
  readonly unit: string;
  readonly better: Better;
  readonly note?: string;
}

/** The comparison of a sample set: summaries, ratio of medians, failures. */
export function toComparison(meta: ComparisonMeta, set: SampleSet): Comparison {
  const tsrun = summarize(set.values.tsrun);
  const runcV2 = summarize(set.values.runcV2);
  const errors = set.errors.tsrun === undefined && set.errors.runcV2 === undefined ? {} : { errors: { ...set.errors } };
  return {
    ...meta,
    tsrun,
    runcV2,
    ratio: ratioOfMedians(tsrun, runcV2),
    failures: { ...set.failures },
    samples: { tsrun: [...set.values.tsrun], runcV2: [...set.values.runcV2] },
    ...errors,
  };
}
