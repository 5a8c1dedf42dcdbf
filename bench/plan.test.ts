import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parsePlan, PlanError, phases } from './plan.js';

test('modes scale the work down, all phases by default', () => {
  const full = parsePlan([], '/out');
  const quick = parsePlan(['--quick'], '/out');
  const smoke = parsePlan(['--smoke'], '/out');
  assert.deepEqual([full.mode, quick.mode, smoke.mode], ['full', 'quick', 'smoke']);
  assert.ok(full.latencyRounds > quick.latencyRounds && quick.latencyRounds > smoke.latencyRounds);
  assert.equal(smoke.latencyRounds, 1);
  assert.deepEqual([...full.phases], [...phases]);
  assert.deepEqual(full.memoryCounts, [1, 10, 50]);
  assert.equal(full.throughputBytes, 256 * 1024 * 1024);
  assert.equal(full.outDir, '/out');
});

test('--only and --out', () => {
  const plan = parsePlan(['--quick', '--only=memory,exec', '--out=/tmp/x=y'], '/out');
  assert.deepEqual([...plan.phases].sort(), ['exec', 'memory']);
  assert.equal(plan.outDir, '/tmp/x=y');
});

test('unknown options and phases are refused with what is accepted', () => {
  assert.throws(() => parsePlan(['--fast'], '/out'), (e: unknown) => e instanceof PlanError && /--quick, --smoke/.test(e.message));
  assert.throws(() => parsePlan(['--only=latency,speed'], '/out'), (e: unknown) => e instanceof PlanError && /unknown phase 'speed'/.test(e.message));
});
