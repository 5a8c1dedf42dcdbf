/**
 * The per-call timings tsrun daemons log (shim/timings.ts), read back from containerd's
 * log. containerd 1.6 copies each shim's `log` fifo into its own stderr verbatim, so a
 * daemon's pino line appears there as one JSON object per line, beside containerd's own
 * logfmt lines:
 *
 *   {"level":"info",...,"pid":123,"group":"g","timings":{"Create":{"count":1,"p50":..,"ownP50":..}},"msg":"daemon exiting"}
 *
 * Two messages carry timings: "daemon exiting" (once, when a daemon stops) and
 * "diagnostic report" (on SIGUSR1, with a whole `process.report` beside them).
 */
/**
 * One method's timings in ms: the whole handling time (p50/p99/max) and, from daemons
 * that record it, the shim's own part, without the time spent waiting for runc
 * (ownP50/ownP99/ownMax). Older daemons log no own part.
 */
export interface CallTiming {
  readonly count: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
  readonly ownP50?: number;
  readonly ownP99?: number;
  readonly ownMax?: number;
}

/** Timings per Task method. */
export type CallTimings = Readonly<Record<string, CallTiming>>;

/** The two log messages that carry a daemon's timings. */
export type TimingMessage = 'daemon exiting' | 'diagnostic report';

/** One daemon's timings as one log line gave them. */
export interface DaemonTimings {
  readonly message: TimingMessage;
  readonly pid: number;
  readonly group: string;
  readonly namespace: string;
  readonly time: string;
  readonly timings: CallTimings;
}

/**
 * Every timing line in a containerd log, in log order. Lines that are not tsrun daemon
 * JSON, or whose timings are malformed, are skipped: the log also holds containerd's own
 * lines and other shims' output.
 */
export function parseDaemonTimings(log: string): DaemonTimings[] {
  const found: DaemonTimings[] = [];
  for (const line of log.split('\n')) {
    if (!line.startsWith('{') || !line.includes('"timings"')) continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      continue;
    }
    const parsed = asDaemonTimings(value);
    if (parsed !== undefined) found.push(parsed);
  }
  return found;
}

function asDaemonTimings(value: unknown): DaemonTimings | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const record = value as Record<string, unknown>;
  const message = record['msg'];
  if (message !== 'daemon exiting' && message !== 'diagnostic report') return undefined;
  const timings = asTimingSummary(record['timings']);
  if (timings === undefined || typeof record['pid'] !== 'number') return undefined;
  return {
    message,
    pid: record['pid'],
    group: typeof record['group'] === 'string' ? record['group'] : '',
    namespace: typeof record['namespace'] === 'string' ? record['namespace'] : '',
    time: typeof record['time'] === 'string' ? record['time'] : '',
    timings,
  };
}

function asTimingSummary(value: unknown): CallTimings | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const out: Record<string, CallTiming> = {};
  for (const [method, entry] of Object.entries(value as Record<string, unknown>)) {
    if (typeof entry !== 'object' || entry === null) return undefined;
    const { count, p50, p99, max, ownP50, ownP99, ownMax } = entry as Record<string, unknown>;
    if (typeof count !== 'number' || typeof p50 !== 'number' || typeof p99 !== 'number' || typeof max !== 'number') return undefined;
    const own = typeof ownP50 === 'number' && typeof ownP99 === 'number' && typeof ownMax === 'number' ? { ownP50, ownP99, ownMax } : {};
    out[method] = { count, p50, p99, max, ...own };
  }
  return out;
}
