import assert from 'node:assert/strict';
import { test } from 'node:test';
import { escapeXml, formatRatio, renderRatioChart, tsrunIsBetter } from './svg-chart.js';

test('direction of better', () => {
  assert.equal(tsrunIsBetter(0.5, 'lower'), true);
  assert.equal(tsrunIsBetter(2, 'lower'), false);
  assert.equal(tsrunIsBetter(0.5, 'higher'), false);
  assert.equal(tsrunIsBetter(2, 'higher'), true);
});

test('ratios format for humans, missing ones as n/a', () => {
  assert.equal(formatRatio(1.234), '1.23x');
  assert.equal(formatRatio(12.34), '12.3x');
  assert.equal(formatRatio(Number.NaN), 'n/a');
  assert.equal(formatRatio(0), 'n/a');
});

test('the chart is one svg with a bar per valid ratio, colored by direction, labels escaped', () => {
  const svg = renderRatioChart(
    [
      { label: 'start <cold> & "warm"', ratio: 4, better: 'lower' },
      { label: 'throughput', ratio: 1.5, better: 'higher' },
      { label: 'failed', ratio: Number.NaN, better: 'lower' },
    ],
    { title: 'tsrun / runc-v2', footer: '2 vCPU' },
  );
  assert.ok(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"'));
  assert.ok(svg.trimEnd().endsWith('</svg>'));
  assert.equal((svg.match(/<rect /g) ?? []).length, 1 + 2, 'background plus two bars');
  assert.ok(svg.includes('fill="#c62828"') && svg.includes('fill="#2e7d32"'));
  assert.ok(svg.includes('start &lt;cold&gt; &amp; &quot;warm&quot;'));
  assert.ok(!svg.includes('<cold>'));
  assert.ok(svg.includes('>n/a<'));
  assert.equal(escapeXml(`a'b`), 'a&#39;b');
});

test('a bar of 4x and one of 0.25x are equally long, on opposite sides of 1', () => {
  const svg = renderRatioChart(
    [
      { label: 'a', ratio: 4, better: 'lower' },
      { label: 'b', ratio: 0.25, better: 'lower' },
    ],
    { title: 't', footer: 'f' },
  );
  const bars = [...svg.matchAll(/<rect x="([\d.]+)" y="[\d.]+" width="([\d.]+)"/g)];
  assert.equal(bars.length, 2);
  assert.equal(bars[0]![2], bars[1]![2]);
  assert.ok(Number(bars[1]![1]) < Number(bars[0]![1]));
});
