/**
 * The bench's human output: Markdown tables of the comparisons (medians, spread, ratio),
 * the physical limits, the shim's own cost per Task call, and the notes; and the bars
 * of the SVG chart.
 */
import type { BenchResults, Comparison, MachineInfo } from './results-model.js';
import type { Summary } from './stats.js';
import { formatRatio, type ChartBar } from './svg-chart.js';

/** A number with about three significant digits (no exponent), '-' when not finite. */
export function formatNumber(value: number): string {
  if (!Number.isFinite(value)) return '-';
  const abs = Math.abs(value);
  if (abs >= 100) return value.toFixed(0);
  if (abs >= 10) return value.toFixed(1);
  return value.toFixed(2);
}

function cell(summary: Summary | undefined, failures: number): string {
  const failed = failures > 0 ? ` (${failures} failed)` : '';
  if (summary === undefined) return `n/a${failed}`;
  const spread = summary.n > 1 ? ` (${formatNumber(summary.p25)}-${formatNumber(summary.p75)})` : '';
  return `${formatNumber(summary.median)}${spread}${failed}`;
}

function escapeCell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

/** One line naming the machine and software. */
export function describeMachine(machine: MachineInfo): string {
  return (
    `${machine.cpus} vCPU ${machine.cpuModel}, ${Math.round(machine.memoryMiB / 1024)} GiB, kernel ${machine.kernel}, ` +
    `containerd ${machine.containerd}, runc ${machine.runc}, node ${machine.node}, ` +
    `load average ${machine.loadAverageStart.toFixed(1)} -> ${machine.loadAverageEnd.toFixed(1)}`
  );
}

function comparisonRow(c: Comparison): string {
  const n = Math.max(c.tsrun?.n ?? 0, c.runcV2?.n ?? 0);
  return `| ${escapeCell(c.title)} | ${c.unit}, ${c.better} is better | ${cell(c.tsrun, c.failures.tsrun)} | ${cell(c.runcV2, c.failures.runcV2)} | **${formatRatio(c.ratio)}** | ${n} |`;
}

/** The whole Markdown report. */
export function renderMarkdown(results: BenchResults): string {
  const lines: string[] = [
    `## tsrun vs containerd-shim-runc-v2 (${results.mode}, ${results.startedAt}, ${Math.round(results.durationSeconds)} s)`,
    '',
    `Machine: ${describeMachine(results.machine)}.`,
    '',
    'Medians, with the 25th-75th percentile range in parentheses; ratio = tsrun median / runc-v2 median.',
    '',
    '| measurement | unit | tsrun | runc-v2 | tsrun / runc-v2 | n per shim |',
    '|---|---|---:|---:|---:|---:|',
    ...results.comparisons.map(comparisonRow),
  ];
  if (results.references.length > 0) {
    lines.push('', '| physical limit | unit | value | tsrun share | runc-v2 share |', '|---|---|---:|---:|---:|');
    for (const ref of results.references) {
      const stdout = results.comparisons.find((c) => c.id === 'stdout');
      const share = (s: Summary | undefined): string =>
        ref.summary === undefined || s === undefined ? '-' : `${((100 * s.median) / ref.summary.median).toFixed(0)}%`;
      lines.push(`| ${escapeCell(ref.title)} | ${ref.unit} | ${cell(ref.summary, 0)} | ${share(stdout?.tsrun)} | ${share(stdout?.runcV2)} |`);
    }
  }
  const notes = results.comparisons.filter((c) => c.note !== undefined || c.errors !== undefined);
  if (notes.length > 0) {
    lines.push('', 'Setup per measurement:', '');
    for (const c of notes) {
      const errors = Object.entries(c.errors ?? {}).map(([shim, error]) => `${shim} failed: ${error}`);
      lines.push(`- ${c.title}: ${[c.note ?? '', ...errors].filter((t) => t !== '').join('; ')}`);
    }
  }
  const cost = results.shimCost;
  if (cost !== undefined) {
    const ms = (value: number | undefined): string => (value === undefined ? '-' : formatNumber(value));
    lines.push('', `### Shim cost per Task call (ms)`, '', `${cost.label}.`, '');
    lines.push(
      `| Task call | group daemon: calls | handling p50 | handling p99 | own p50 | own p99 | one-container daemons (${cost.oneContainerDaemonCount}): handling p50, median (p25-p75) | own p50, median (p25-p75) |`,
      '|---|---:|---:|---:|---:|---:|---:|---:|',
    );
    const methods = [...new Set([...Object.keys(cost.groupDaemon ?? {}), ...Object.keys(cost.oneContainerDaemons)])].sort();
    for (const method of methods) {
      const g = cost.groupDaemon?.[method];
      const o = cost.oneContainerDaemons[method];
      lines.push(
        `| ${method} | ${g?.count ?? '-'} | ${ms(g?.p50)} | ${ms(g?.p99)} | ${ms(g?.ownP50)} | ${ms(g?.ownP99)} | ${cell(o?.handling, 0)} | ${cell(o?.own, 0)} |`,
      );
    }
    lines.push('', `Group daemon: ${cost.groupDaemonNote}.`);
  }
  const phases = Object.entries(results.phaseSeconds);
  if (phases.length > 0) lines.push('', `Phase wall times: ${phases.map(([name, seconds]) => `${name} ${seconds} s`).join(', ')}.`);
  if (results.notes.length > 0) {
    lines.push('', 'Notes:', '', ...results.notes.map((n) => `- ${escapeCell(n)}`));
  }
  return `${lines.join('\n')}\n`;
}

/** One chart bar per comparison that has a ratio. */
export function chartBars(results: BenchResults): ChartBar[] {
  return results.comparisons.map((c) => ({ label: c.title, ratio: c.ratio, better: c.better }));
}
