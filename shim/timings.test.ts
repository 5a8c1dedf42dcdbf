import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createCallTimings } from './timings.js';

test('timings separate the shim own time from the time spent waiting for the OCI runtime', () => {
  const timings = createCallTimings(4);
  for (let i = 1; i <= 6; i++) timings.record('Create', 100 + i, 90);
  timings.record('State', 0.5, 0);
  const summary = timings.summary();
  const create = summary['Create'];
  assert.ok(create !== undefined);
  assert.equal(create.count, 6);
  // Only the last 4 samples are kept: 103..106.
  assert.equal(create.max, 106);
  assert.equal(create.ownMax, 16);
  assert.equal(create.ownP50, 15);
  assert.deepEqual(summary['State'], { count: 1, p50: 0.5, p99: 0.5, max: 0.5, ownP50: 0.5, ownP99: 0.5, ownMax: 0.5 });
});
