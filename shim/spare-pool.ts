/**
 * The manager's side of spare daemons (spare.ts has the spare's side and the channel
 * protocol): keeps one spare booted, hands a new group's listening socket to it, and
 * boots the next one. Spares are the manager's children, reaped by its process monitor.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { setPriority } from 'node:os';
import { performance } from 'node:perf_hooks';
import type { Logger, MonitoredChild, ProcessMonitor } from '../core/index.js';
import type { Native } from '../native/facade.js';
import { daemonArgs, type DaemonCommand, type DaemonSpec, type LaunchedDaemon } from './daemon-launcher.js';
import { Channel, MAX_SPARE_MESSAGE_BYTES, type SpareMessage } from './spare-channel.js';

/** Whether this process may raise priorities again (CAP_SYS_NICE, bit 23, in its effective set). */
export function canRaisePriority(): boolean {
  try {
    const line = readFileSync('/proc/self/status', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('CapEff:'));
    if (line === undefined) return false;
    return (BigInt(`0x${line.slice('CapEff:'.length).trim()}`) & (1n << 23n)) !== 0n;
  } catch {
    return false;
  }
}

/**
 * Nice 0 again for every thread of process `pid` (Linux nice values are per thread, and
 * threads inherit their creator's). Raising a priority needs CAP_SYS_NICE (see
 * {@link canRaisePriority}); a thread that ended meanwhile, or a refusal, is skipped.
 */
export function restoreNormalPriority(pid: number): void {
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return;
  }
  for (const tid of tids) {
    try {
      setPriority(Number(tid), 0);
    } catch {
      // See above.
    }
  }
}

/** Options of {@link createSparePool}. */
export interface SparePoolOptions {
  readonly native: Native;
  /** The manager's process monitor: it reaps spares, adopted or not. */
  readonly monitor: ProcessMonitor;
  /** The spare's full command (`node main.js -spare -address <a>`). */
  readonly command: DaemonCommand;
  /** The spare's environment before adoption, `KEY=value` each. */
  readonly env: readonly string[];
  readonly logger: Logger;
  /** How long an adopted spare may take to report "serving" (2 s). */
  readonly adoptTimeoutMs?: number;
  /** How long a spare may take to report "ready" before it is killed and another booted (30 s). */
  readonly bootTimeoutMs?: number;
  /**
   * The nice value a spare boots at, so that its boot (about 0.2 s of CPU) yields to the
   * container being started meanwhile; it returns to 0 when adopted. Undefined: no change.
   * Only set it when spares can raise their priority again ({@link canRaisePriority}).
   */
  readonly bootNice?: number;
  /**
   * How long after an adoption the next spare starts booting (300 ms): right away, its
   * boot competes for this 2-core box with the start of the container whose group just
   * adopted the previous spare (measured with `ctr run --rm` against runc-v2: the new-group
   * ratio went from about 1.45 to 1.3 with 300 ms and 1.2 with 1 s; a longer delay leaves
   * more quick successive new groups without a spare).
   */
  readonly replaceDelayMs?: number;
  /** How long a `start` waits for a spare still booting before it spawns a daemon instead (2 s). */
  readonly awaitBootMs?: number;
  /**
   * A spare already booting, started by someone else: the launcher forks the manager's
   * first spare beside it, so that the two boot at once (native/launcher/PROTOCOL.md).
   * `pid` must be this process's child; `channelFd` is our end of its channel, which
   * the pool owns from now on. {@link SparePool.start} takes it instead of booting one.
   */
  readonly first?: { readonly pid: number; readonly channelFd: number };
}

/** See {@link SparePoolOptions.awaitBootMs}. */
export const DEFAULT_AWAIT_BOOT_MS = 2000;

/** See {@link SparePoolOptions.replaceDelayMs}. */
export const DEFAULT_REPLACE_DELAY_MS = 300;

/** The one pre-booted spare a manager keeps. */
export interface SparePool {
  /** Boots the first spare (in the background). */
  start(): void;
  /**
   * Hands the group's socket to the ready spare and resolves once it serves; a spare
   * still booting is waited for (bounded, one caller at a time). Resolves undefined,
   * never rejects, when there is no spare (between boots, or it died), another caller
   * waits for the booting one, or the adoption failed: the caller then spawns a daemon.
   * A new spare boots afterwards.
   */
  adopt(spec: DaemonSpec): Promise<LaunchedDaemon | undefined>;
  /** The pid of the spare ready for adoption, if any (diagnostics and tests). */
  readonly readyPid: number | undefined;
  /** Kills an idle or booting spare and boots no more. Adopted spares are daemons and left alone. Idempotent. */
  close(): void;
}

/** Creates the pool; nothing runs until {@link SparePool.start}. */
export function createSparePool(options: SparePoolOptions): SparePool {
  return new Pool(options);
}

/** How an adoption ended: serving, or why not. */
type AdoptOutcome = { readonly ok: true } | { readonly ok: false; readonly reason: string };

interface Spare {
  readonly child: MonitoredChild;
  readonly channel: Channel;
  state: 'booting' | 'ready' | 'adopting' | 'adopted' | 'gone';
  exited: boolean;
  bootedAt: number;
  /** Resolves the adoption waiting for this spare's answer. */
  answer: ((outcome: AdoptOutcome) => void) | undefined;
  /** A `start` waits for this booting spare (one at most; others spawn a daemon). */
  awaited: boolean;
  /** Wakes that `start` once the spare is ready or gone. */
  settled: (() => void) | undefined;
}

class Pool implements SparePool {
  readonly #options: SparePoolOptions;
  /** The spare booting or ready; undefined while none is (between boots, or closed). */
  #current: Spare | undefined;
  #closed = false;
  #started = false;
  /** Spares in a row that died or failed before serving: the next boot waits longer. */
  #failures = 0;
  #retryTimer: NodeJS.Timeout | undefined;

  constructor(options: SparePoolOptions) {
    this.#options = options;
  }

  get readyPid(): number | undefined {
    return this.#current?.state === 'ready' ? this.#current.child.pid : undefined;
  }

  start(): void {
    if (this.#started) return;
    this.#started = true;
    const first = this.#options.first;
    if (first === undefined) {
      this.#boot();
      return;
    }
    let child: MonitoredChild;
    try {
      child = this.#options.monitor.adopt(first.pid);
    } catch (error) {
      this.#options.native.close(first.channelFd);
      this.#options.logger.warn({ err: error, sparePid: first.pid }, 'could not watch the spare the launcher started: booting one');
      this.#boot();
      return;
    }
    // Not niced: on the very first start a `start` is already waiting for it.
    this.#track(child, first.channelFd);
  }

  async adopt(spec: DaemonSpec): Promise<LaunchedDaemon | undefined> {
    const message: SpareMessage = { kind: 'adopt', args: daemonArgs(spec.flags), env: spec.env, cwd: spec.cwd };
    if (Buffer.byteLength(JSON.stringify(message)) + 1 > MAX_SPARE_MESSAGE_BYTES) return undefined;
    const spare = this.#current;
    if (spare === undefined || spare.awaited) return undefined;
    if (spare.state === 'booting') {
      // A booting spare is always further along than a daemon spawned now would be (the
      // very first start, or new groups in quick succession): wait for it, at full priority,
      // instead of booting a second Node beside it. One start waits; the others spawn.
      spare.awaited = true;
      this.#urge(spare);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.#options.awaitBootMs ?? DEFAULT_AWAIT_BOOT_MS);
        spare.settled = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      spare.settled = undefined;
      spare.awaited = false;
    }
    if (spare.state !== 'ready' || this.#current !== spare) return undefined;
    this.#current = undefined;
    spare.state = 'adopting';
    const { logger } = this.#options;
    const started = performance.now();
    const outcome = await new Promise<AdoptOutcome>((resolve) => {
      const timer = setTimeout(() => {
        resolve({ ok: false, reason: `no answer within ${this.#options.adoptTimeoutMs ?? 2000} ms` });
      }, this.#options.adoptTimeoutMs ?? 2000);
      spare.answer = (answer) => {
        clearTimeout(timer);
        resolve(answer);
      };
      try {
        spare.channel.send(message, [spec.listenFd]);
      } catch (error) {
        spare.answer({ ok: false, reason: `the spare is gone: ${messageOf(error)}` });
      }
    });
    spare.answer = undefined;
    spare.channel.close();
    if (!outcome.ok) {
      logger.warn({ sparePid: spare.child.pid, reason: outcome.reason }, 'spare adoption failed: spawning a daemon instead');
      this.#kill(spare);
      spare.state = 'gone';
      this.#failures++;
      this.#scheduleBoot();
      return undefined;
    }
    spare.state = 'adopted';
    this.#failures = 0;
    this.#scheduleBoot(this.#options.replaceDelayMs ?? DEFAULT_REPLACE_DELAY_MS);
    logger.debug({ sparePid: spare.child.pid, id: spec.flags.id, ms: performance.now() - started }, 'spare adopted a group');
    return {
      pid: spare.child.pid,
      kill: () => {
        this.#kill(spare);
      },
      release: () => {
        // The monitor holds its pidfd and reaps it when it exits.
      },
    };
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    // A first spare never taken: closing its channel makes it exit.
    if (!this.#started && this.#options.first !== undefined) this.#options.native.close(this.#options.first.channelFd);
    if (this.#retryTimer !== undefined) clearTimeout(this.#retryTimer);
    const spare = this.#current;
    this.#current = undefined;
    if (spare !== undefined) this.#retire(spare);
  }

  #scheduleBoot(after = 0): void {
    if (this.#closed || this.#current !== undefined || this.#retryTimer !== undefined) return;
    // Crash-looping spares back off: 0, 100 ms, 200 ms, ... up to 30 s.
    const delay = Math.max(after, this.#failures === 0 ? 0 : Math.min(100 * 2 ** (this.#failures - 1), 30_000));
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      this.#boot();
    }, delay);
    this.#retryTimer.unref();
  }

  #boot(): void {
    if (this.#closed || this.#current !== undefined) return;
    const { native, monitor, command, env, logger } = this.#options;
    const [mine, theirs] = native.socketPair();
    let child: MonitoredChild;
    try {
      child = monitor.spawn({ file: command.file, args: command.args, env, cwd: '/', fds: [-1, -1, -1, theirs], setsid: true });
    } catch (error) {
      native.close(mine);
      logger.warn({ err: error }, 'could not spawn a spare daemon');
      this.#failures++;
      this.#scheduleBoot();
      return;
    } finally {
      native.close(theirs);
    }
    if (this.#options.bootNice !== undefined) {
      try {
        // Its main thread, before it starts any other: those inherit the value.
        setPriority(child.pid, this.#options.bootNice);
      } catch {
        // Gone already; the channel reports it.
      }
    }
    this.#track(child, mine);
  }

  /** Makes a booting spare (its process and our end of its channel) the current one. */
  #track(child: MonitoredChild, mine: number): void {
    const { native, logger } = this.#options;
    const spare: Spare = {
      child,
      state: 'booting',
      exited: false,
      answer: undefined,
      awaited: false,
      settled: undefined,
      bootedAt: performance.now(),
      channel: new Channel(
        native,
        mine,
        (message, fds) => {
          for (const fd of fds) native.close(fd);
          this.#onMessage(spare, message);
        },
        (why) => {
          this.#onEnd(spare, `channel ${why}`);
        },
      ),
    };
    this.#current = spare;
    const bootTimeoutMs = this.#options.bootTimeoutMs ?? 30_000;
    const bootTimer = setTimeout(() => {
      if (spare.state === 'booting') this.#onEnd(spare, `not ready within ${bootTimeoutMs} ms`);
    }, bootTimeoutMs);
    bootTimer.unref();
    void child.exited.then((status) => {
      spare.exited = true;
      clearTimeout(bootTimer);
      logger.debug({ sparePid: child.pid, status, state: spare.state }, 'spare or adopted daemon exited');
      this.#onEnd(spare, 'exited');
    });
  }

  #onMessage(spare: Spare, message: SpareMessage): void {
    switch (message.kind) {
      case 'ready':
        if (spare.state !== 'booting') return;
        spare.state = 'ready';
        this.#failures = 0;
        this.#options.logger.debug({ sparePid: spare.child.pid, bootMs: Math.round(performance.now() - spare.bootedAt) }, 'spare ready');
        spare.settled?.();
        return;
      case 'serving':
        spare.answer?.({ ok: true });
        return;
      case 'failed':
        spare.answer?.({ ok: false, reason: `the spare failed: ${message.error}` });
        return;
      case 'adopt':
        // Only the manager adopts; a spare saying so is confused.
        this.#onEnd(spare, 'the spare sent an adopt message');
        return;
    }
  }

  /** The spare's channel ended or the process exited: forget it (if current) and boot another. */
  #onEnd(spare: Spare, why: string): void {
    if (spare.state === 'adopting') {
      spare.answer?.({ ok: false, reason: why });
      return;
    }
    if (spare.state === 'adopted' || spare.state === 'gone') return;
    this.#options.logger.warn({ sparePid: spare.child.pid, state: spare.state, why }, 'spare lost before adoption');
    if (spare.state === 'booting') this.#failures++;
    spare.state = 'gone';
    spare.settled?.();
    this.#retire(spare);
    if (this.#current === spare) this.#current = undefined;
    this.#scheduleBoot();
  }

  /** Back to nice 0 for every thread of a booting spare a `start` now waits for. */
  #urge(spare: Spare): void {
    if (this.#options.bootNice === undefined) return;
    restoreNormalPriority(spare.child.pid);
  }

  /** Closes the channel (an idle spare exits on end of file) and kills the process. */
  #retire(spare: Spare): void {
    spare.state = 'gone';
    spare.channel.close();
    this.#kill(spare);
  }

  #kill(spare: Spare): void {
    if (spare.exited) return;
    try {
      this.#options.native.pidfdSendSignal(spare.child.pidfd, 9);
    } catch {
      // Exited meanwhile; the monitor reaps it.
    }
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
