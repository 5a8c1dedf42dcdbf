import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { median, quantile, ratioOfMedians, summarize } from './stats.js';

test('median of an odd and an even count', () => {
  assert.equal(median([5, 1, 3]), 3);
  assert.equal(median([4, 1, 3, 2]), 2.5);
});

test('quantile interpolates between ranks (R-7)', () => {
  assert.equal(quantile([10, 20, 30, 40, 50], 0.25), 20);
  assert.equal(quantile([1, 2], 0.25), 1.25);
  assert.equal(quantile([7], 0.99), 7);
});

test('quantile refuses no samples and a q outside 0..1', () => {
  assert.throws(() => quantile([], 0.5), RangeError);
  assert.throws(() => quantile([1], 1.5), RangeError);
  assert.throws(() => quantile([1], Number.NaN), RangeError);
});

test('summaries stay ordered and inside the samples', () => {
  fc.assert(
    fc.property(fc.array(fc.double({ min: -1e6, max: 1e6, noNaN: true }), { minLength: 1, maxLength: 50 }), (samples) => {
      const s = summarize(samples);
      assert.ok(s !== undefined);
      assert.equal(s.n, samples.length);
      assert.ok(s.min <= s.p25 && s.p25 <= s.median && s.median <= s.p75 && s.p75 <= s.max);
    }),
  );
});

test('no samples give no summary and a NaN ratio', () => {
  assert.equal(summarize([]), undefined);
  assert.ok(Number.isNaN(ratioOfMedians(undefined, summarize([1]))));
  assert.ok(Number.isNaN(ratioOfMedians(summarize([1]), summarize([0]))));
});

test('the ratio is tsrun median over runc-v2 median', () => {
  assert.equal(ratioOfMedians(summarize([30, 10, 20]), summarize([5, 10, 15])), 2);
});
