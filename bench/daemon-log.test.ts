import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createCallTimings } from '../shim/timings.js';
import { parseDaemonTimings, type CallTimings } from './daemon-log.js';

const exiting =
  '{"level":"info","time":"2026-11-23T13:34:37.097Z","pid":26417,"runtime":"io.containerd.tsrun.v1","namespace":"ns","group":"run-tsrun-latency-cold-3",' +
  '"timings":{"Create":{"count":1,"p50":100.107,"p99":100.107,"max":100.107},"Wait":{"count":1,"p50":26.371,"p99":26.371,"max":26.371}},"msg":"daemon exiting"}';
const report =
  '{"level":"info","time":"2026-11-23T13:34:40.169Z","pid":26731,"namespace":"ns","group":"keeper-tsrun","report":{"header":{"timings":"not these"}},' +
  '"timings":{"Exec":{"count":3,"p50":0.9,"p99":1.5,"max":1.5,"ownP50":0.4,"ownP99":0.7,"ownMax":0.7}},"msg":"diagnostic report"}';

test('reads both timing messages from a containerd log, with and without the own part, skipping everything else', () => {
  const log = [
    'time="2026-11-23T13:34:36Z" level=info msg="loading plugin" timings=none',
    exiting,
    '{"level":"info","pid":26417,"msg":"daemon serving"}',
    '{"not json',
    report,
    '',
  ].join('\n');
  const found = parseDaemonTimings(log);
  assert.equal(found.length, 2);
  assert.deepEqual(found[0], {
    message: 'daemon exiting',
    pid: 26417,
    group: 'run-tsrun-latency-cold-3',
    namespace: 'ns',
    time: '2026-11-23T13:34:37.097Z',
    timings: { Create: { count: 1, p50: 100.107, p99: 100.107, max: 100.107 }, Wait: { count: 1, p50: 26.371, p99: 26.371, max: 26.371 } },
  });
  assert.equal(found[1]!.message, 'diagnostic report');
  assert.deepEqual(found[1]!.timings, { Exec: { count: 3, p50: 0.9, p99: 1.5, max: 1.5, ownP50: 0.4, ownP99: 0.7, ownMax: 0.7 } });
});

test('a line with malformed timings is skipped, not half-read', () => {
  const bad = '{"pid":1,"timings":{"Create":{"count":"1","p50":1,"p99":1,"max":1}},"msg":"daemon exiting"}';
  const otherMessage = '{"pid":1,"timings":{},"msg":"something else"}';
  assert.deepEqual(parseDaemonTimings(`${bad}\n${otherMessage}`), []);
});

test('what the daemon logs today reads back whole (shim/timings.ts and this parser agree)', () => {
  const timings = createCallTimings();
  timings.record('Create', 80, 60);
  timings.record('Create', 90, 65);
  timings.record('State', 0.2, 0);
  // Typed: a field renamed in shim/timings.ts stops this file from compiling.
  const logged: CallTimings = timings.summary();
  const line = JSON.stringify({ level: 'info', pid: 7, group: 'g', timings: logged, msg: 'daemon exiting' });
  assert.deepEqual(parseDaemonTimings(line)[0]?.timings, logged);
  assert.ok(logged['Create']?.ownP50 !== undefined);
});
