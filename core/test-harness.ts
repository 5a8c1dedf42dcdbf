/**
 * Test harness for the real-runc tests of core/: a fixture (test-bundle.ts), the real
 * native addon (subreaper set), a runtime, and a recorder of every event in emission
 * order. `teardown()` kills and deletes whatever a failed test left behind, closes the
 * runtime and removes the fixture, so tests clean up even when they fail.
 */
import assert from 'node:assert/strict';
import { loadNative } from '../native/index.js';
import type { Native } from '../native/facade.js';
import type { ExecRequest, Runtime, RuntimeEvents, Stdio } from './api.js';
import { createProcessMonitor, exitStatusOf } from './process-monitor.js';
import { createRuntime } from './runtime.js';
import type { BundleOptions, Fixture, TestBundle } from './test-bundle.js';
import { BUSYBOX, createFixture } from './test-bundle.js';
import type { TestLogger } from './test-logger.js';
import { createTestLogger } from './test-logger.js';

/** One recorded event: its name and payload, in emission order. */
export type RecordedEvent = {
  [K in keyof RuntimeEvents]: { readonly type: K; readonly seq: number } & Parameters<RuntimeEvents[K]>[0];
}[keyof RuntimeEvents];

/** A world for one test file. */
export interface Harness {
  readonly fixture: Fixture;
  readonly native: Native;
  readonly runtime: Runtime;
  readonly logger: TestLogger;
  readonly events: RecordedEvent[];
  /** Events of one container, in order. */
  eventsOf(containerId: string): RecordedEvent[];
  /** Builds a bundle and creates the container (not started). */
  create(id: string, options: BundleOptions, stdio?: Partial<Stdio>): Promise<{ bundle: TestBundle; pid: number }>;
  /** create + start. */
  run(id: string, options: BundleOptions, stdio?: Partial<Stdio>): Promise<{ bundle: TestBundle; pid: number }>;
  /** An exec request for `args` with default env and user. */
  execRequest(containerId: string, execId: string, args: readonly string[], stdio?: Partial<Stdio>): ExecRequest;
  /** mkfifo -m 0600 `path` through busybox (Node has no mkfifo), spawned through the one reaper. */
  mkfifo(path: string): Promise<void>;
  /** Resolves with the first event (already recorded or future) matching `predicate`. */
  nextEvent(predicate: (e: RecordedEvent) => boolean, timeoutMs?: number): Promise<RecordedEvent>;
  /** Kills, waits for and deletes every container left; closes the runtime; removes the fixture. */
  teardown(): Promise<void>;
}

const EVENT_NAMES: readonly (keyof RuntimeEvents)[] = [
  'task-create',
  'task-start',
  'task-exit',
  'task-delete',
  'exec-added',
  'exec-started',
  'task-oom',
  'task-paused',
  'task-resumed',
  'task-checkpointed',
];

/**
 * Builds the harness; `options.ioDrainTimeoutMs` as the runtime's. `options.native`
 * replaces the real addon (e.g. a wrapper around it that observes calls); use one
 * Native per test file, as the orphan sweep is per Native.
 */
export function createHarness(name: string, options: { ioDrainTimeoutMs?: number; native?: Native } = {}): Harness {
  const native = options.native ?? loadNative();
  // Container inits and runc's orphans must reparent to us, as they do to the daemon.
  native.setChildSubreaper();
  const fixture = createFixture(name);
  const logger = createTestLogger();
  const runtime = createRuntime({
    native,
    namespace: 'tsrun-test',
    logger,
    ...(options.ioDrainTimeoutMs === undefined ? {} : { ioDrainTimeoutMs: options.ioDrainTimeoutMs }),
  });
  const events: RecordedEvent[] = [];
  const waiters: { predicate: (e: RecordedEvent) => boolean; resolve: (e: RecordedEvent) => void }[] = [];
  let seq = 0;
  for (const type of EVENT_NAMES) {
    runtime.on(type, (payload: object) => {
      const event = { type, seq: seq++, ...payload } as RecordedEvent;
      events.push(event);
      for (const w of [...waiters]) {
        if (w.predicate(event)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(event);
        }
      }
    });
  }

  const harness: Harness = {
    fixture,
    native,
    runtime,
    logger,
    events,
    eventsOf: (containerId) => events.filter((e) => e.containerId === containerId),
    async create(id, bundleOptions, stdio) {
      const bundle = fixture.bundle(id, bundleOptions);
      const rootfs = bundleOptions.mountRootfs === true ? fixture.rootfsMounts() : [];
      const { pid } = await runtime.create(fixture.request(bundle, stdio, rootfs));
      return { bundle, pid };
    },
    async run(id, bundleOptions, stdio) {
      const created = await harness.create(id, bundleOptions, stdio);
      const { pid } = await runtime.start(id);
      return { bundle: created.bundle, pid };
    },
    execRequest(containerId, execId, args, stdio = {}) {
      return {
        containerId,
        execId,
        stdio: { stdin: '', stdout: '', stderr: '', terminal: false, ...stdio },
        spec: { args, env: ['PATH=/bin'], cwd: '/', user: { uid: 0, gid: 0 }, terminal: stdio.terminal ?? false },
      };
    },
    async mkfifo(path) {
      const monitor = createProcessMonitor(native, logger);
      try {
        const child = monitor.spawn({ file: BUSYBOX, args: ['mkfifo', '-m', '0600', path], env: [], fds: [-1, -1, -1] });
        assert.equal(exitStatusOf(await child.exited), 0, `mkfifo ${path}`);
      } finally {
        monitor.close();
      }
    },
    nextEvent(predicate, timeoutMs = 20_000) {
      const found = events.find(predicate);
      if (found !== undefined) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          reject(new Error('timed out waiting for an event'));
        }, timeoutMs);
        waiters.push({
          predicate,
          resolve: (e) => {
            clearTimeout(timer);
            resolve(e);
          },
        });
      });
    },
    async teardown() {
      for (const id of runtime.containerIds()) {
        await runtime.kill(id, '', 9, true).catch(() => undefined);
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          runtime.wait(id).catch(() => undefined),
          new Promise((resolve) => {
            timer = setTimeout(resolve, 5000);
          }),
        ]);
        clearTimeout(timer);
        await runtime.delete(id).catch((err: unknown) => {
          console.error(`teardown: delete of ${id} failed:`, err);
        });
      }
      await runtime.close();
      fixture.cleanup();
    },
  };
  return harness;
}
