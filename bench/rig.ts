/**
 * The bench rig: one private containerd (integration/harness) with both shims registered,
 * the busybox test image, and the `ctr` invocations every measurement shares, so that the
 * two shims are driven by the very same commands and differ only in `--runtime` (and in
 * the annotation that names a group, which each shim spells its own way).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  BUSYBOX_IMAGE,
  importTestImages,
  startContainerd,
  TSRUN_BIN_DIR,
  type ContainerdInstance,
  type CtrResult,
} from '../integration/harness/index.js';
import type { ShimKey } from './results-model.js';
import { shimProcesses, waitForQuietShims, waitForShimsToExit } from './shim-processes.js';

/** One of the two shims under test. */
export interface ShimUnderTest {
  readonly key: ShimKey;
  /** containerd's runtime name (`ctr run --runtime`). */
  readonly runtime: string;
  /** How tables name it. */
  readonly label: string;
  /** The OCI annotation that puts containers in one shim process. */
  readonly groupAnnotation: string;
}

/** tsrun and Debian's Go shim. Order matters: every interleaved loop runs tsrun first. */
export const shimsUnderTest: readonly ShimUnderTest[] = [
  { key: 'tsrun', runtime: 'io.containerd.tsrun.v1', label: 'tsrun', groupAnnotation: 'io.containerd.tsrun.v1.group' },
  { key: 'runcV2', runtime: 'io.containerd.runc.v2', label: 'runc-v2', groupAnnotation: 'io.containerd.runc.v2.group' },
];

/** The annotation containerd's CRI plugin puts on every container of a pod; both shims group on it. */
export const sandboxIdAnnotation = 'io.kubernetes.cri.sandbox-id';

/**
 * Which shim process a new container lands in.
 * - `own`: no annotation: one shim per container (tsrun's default `container` policy;
 *   the Go shim's only default).
 * - `group`: the shim's group annotation (`io.containerd.tsrun.v1.group` /
 *   `io.containerd.runc.v2.group`): joins that group's running shim. The name is
 *   suffixed with the shim's key: containerd 1.6's Go shim and tsrun both derive the
 *   socket path from sha256(address/namespace/group), so the same group name under both
 *   runtimes is one socket, and whichever shim binds it first serves the other's
 *   containers too (`start` finds a live socket and hands its address to containerd).
 * - `pod`: the CRI sandbox-id annotation, as CRI sets it; tsrun also gets
 *   `GroupPolicy = "pod"` through `--runtime-config-path`.
 * - `namespace`: tsrun gets `GroupPolicy = "namespace"`; the Go shim has no such policy, so
 *   it gets one group annotation for the whole namespace, which is the same placement.
 */
export type Placement =
  | { readonly kind: 'own' }
  | { readonly kind: 'group'; readonly group: string }
  | { readonly kind: 'pod'; readonly sandboxId: string }
  | { readonly kind: 'namespace' };

/** How one `ctr run --rm` went. */
export interface RunOutcome {
  readonly ok: boolean;
  readonly ms: number;
  /** stderr of a failed run, first line. */
  readonly error: string;
}

/** A long-running bench fixture. Create with {@link createRig}; always {@link Rig.close}. */
export interface Rig {
  readonly containerd: ContainerdInstance;
  /** The image every container runs. */
  readonly image: string;
  /** Private temp dir (policy TOML files, fifos), removed by close(). */
  readonly tmpDir: string;
  /** Things the report should mention (a shim that did not exit, a failed cleanup). */
  readonly notes: string[];
  /** A fresh container id, unique in this run. */
  nextId(prefix: string): string;
  /** `ctr run` arguments (without the leading `run`) for one container of `shim`. */
  runArgs(shim: ShimUnderTest, placement: Placement, id: string, flags: readonly string[], command: readonly string[]): string[];
  /**
   * `ctr run --rm ... <command>` to its exit; the duration is ctr's whole run. The
   * container id is `run-<shim>-<phase>-<n>` (tsrun's daemon logs carry it, which is how
   * the shim cost phase finds the daemons of one phase).
   */
  runToExit(shim: ShimUnderTest, placement: Placement, phase: string, command: readonly string[], options?: { readonly timeoutMs?: number }): Promise<RunOutcome>;
  /** Starts an idle container (`sleep`, no stdio) and returns once its task runs. @throws CtrError */
  startIdle(shim: ShimUnderTest, placement: Placement, id: string): Promise<void>;
  /** Kills and removes a container; failures go to notes. */
  remove(id: string): Promise<void>;
  /**
   * Pids of the shim processes of our containerd that stay (daemons, tsrun's manager and
   * spares), leaving out actions and {@link stuck} ones: what a later {@link settle} expects.
   */
  persistentPids(): Promise<Set<number>>;
  /**
   * Waits until the shim processes outside `expected` have exited (tsrun's manager and
   * spares may stay, unless `everything`), then until every shim process is quiet (no CPU
   * used). A process left after 15 s goes to notes (a shim that does not exit after its
   * last container is a bug) and into {@link stuck}, so later waits do not wait for it.
   */
  settle(expected: ReadonlySet<number>, what: string, options?: { readonly everything?: boolean }): Promise<void>;
  /**
   * Stops tsrun's manager (SIGTERM; its idle spares exit with it), so that the next start
   * finds no tsrun process at all. Nothing to do when none runs.
   */
  stopTsrunInfrastructure(): Promise<void>;
  /** Shim processes that outlived their containers: later waits and memory readings ignore them. */
  readonly stuck: ReadonlySet<number>;
  /** Stops containerd and removes everything the bench made. Never throws. */
  close(): Promise<void>;
}

/** The idle command of long-running containers. */
export const idleCommand: readonly string[] = ['sleep', '1000000'];

/**
 * Starts a private containerd that finds tsrun in the repository's bin/ and imports the
 * busybox test image.
 * @throws Error when containerd does not start or the image cannot be imported (everything
 *   already made is removed first).
 */
export async function createRig(): Promise<Rig> {
  const tmpDir = await mkdtemp(join(tmpdir(), 'tsrun-bench-'));
  let containerd: ContainerdInstance | undefined;
  try {
    containerd = await startContainerd({ extraPath: [TSRUN_BIN_DIR] });
    await importTestImages(containerd.ctr, { timeoutMs: 120_000 });
    const podConfig = join(tmpDir, 'pod.toml');
    const namespaceConfig = join(tmpDir, 'namespace.toml');
    await writeFile(podConfig, 'GroupPolicy = "pod"\n');
    await writeFile(namespaceConfig, 'GroupPolicy = "namespace"\n');
    return new BenchRig(containerd, tmpDir, podConfig, namespaceConfig);
  } catch (error) {
    await containerd?.cleanup();
    await rm(tmpDir, { recursive: true, force: true });
    throw error;
  }
}

class BenchRig implements Rig {
  readonly containerd: ContainerdInstance;
  readonly image = BUSYBOX_IMAGE;
  readonly tmpDir: string;
  readonly notes: string[] = [];
  readonly stuck = new Set<number>();
  readonly #podConfig: string;
  /** Settles after which the shims did not become quiet within 5 s. */
  #noisy = 0;
  readonly #namespaceConfig: string;
  #counter = 0;

  constructor(containerd: ContainerdInstance, tmpDir: string, podConfig: string, namespaceConfig: string) {
    this.containerd = containerd;
    this.tmpDir = tmpDir;
    this.#podConfig = podConfig;
    this.#namespaceConfig = namespaceConfig;
  }

  nextId(prefix: string): string {
    this.#counter++;
    return `${prefix}-${this.#counter}`;
  }

  runArgs(shim: ShimUnderTest, placement: Placement, id: string, flags: readonly string[], command: readonly string[]): string[] {
    const args = ['run', ...flags, '--runtime', shim.runtime];
    switch (placement.kind) {
      case 'own':
        break;
      case 'group':
        args.push('--annotation', `${shim.groupAnnotation}=${placement.group}-${shim.key}`);
        break;
      case 'pod':
        args.push('--annotation', `${sandboxIdAnnotation}=${placement.sandboxId}`);
        if (shim.key === 'tsrun') args.push('--runtime-config-path', this.#podConfig);
        break;
      case 'namespace':
        if (shim.key === 'tsrun') args.push('--runtime-config-path', this.#namespaceConfig);
        else args.push('--annotation', `${shim.groupAnnotation}=all-${this.containerd.namespace}-${shim.key}`);
        break;
    }
    return [...args, this.image, id, ...command];
  }

  async runToExit(
    shim: ShimUnderTest,
    placement: Placement,
    phase: string,
    command: readonly string[],
    options: { readonly timeoutMs?: number } = {},
  ): Promise<RunOutcome> {
    const id = this.nextId(`run-${shim.key}-${phase}`);
    const result = await this.containerd.ctr.run(this.runArgs(shim, placement, id, ['--rm'], command), { timeoutMs: options.timeoutMs ?? 60_000 });
    if (result.code === 0) return { ok: true, ms: result.durationMs, error: '' };
    // A failed run may leave its container behind; it must not count against the next one.
    await this.remove(id);
    return { ok: false, ms: result.durationMs, error: describeFailure(result) };
  }

  async startIdle(shim: ShimUnderTest, placement: Placement, id: string): Promise<void> {
    await this.containerd.ctr.ok(this.runArgs(shim, placement, id, ['-d', '--null-io'], idleCommand), { timeoutMs: 120_000 });
  }

  async remove(id: string): Promise<void> {
    try {
      await this.containerd.ctr.removeContainer(id, { timeoutMs: 60_000 });
    } catch (error) {
      this.notes.push(`could not remove container ${id}: ${error instanceof Error ? error.message.split('\n')[0] ?? '' : String(error)}`);
    }
  }

  async persistentPids(): Promise<Set<number>> {
    return new Set((await shimProcesses(this.containerd.address)).filter((p) => p.role !== 'action' && !this.stuck.has(p.pid)).map((p) => p.pid));
  }

  async settle(expected: ReadonlySet<number>, what: string, options: { readonly everything?: boolean } = {}): Promise<void> {
    const left = await waitForShimsToExit(this.containerd.address, new Set([...expected, ...this.stuck]), options);
    if (left.length > 0) {
      for (const p of left) this.stuck.add(p.pid);
      this.notes.push(
        `${what}: shim processes still running 15 s after their containers were gone (ignored from here on): ` +
          left.map((p) => `${p.pid} (${p.shim} ${p.role} -id ${p.id ?? '?'})`).join(', '),
      );
    }
    if (!(await waitForQuietShims(this.containerd.address))) this.#noisy++;
  }

  async stopTsrunInfrastructure(): Promise<void> {
    for (const p of await shimProcesses(this.containerd.address)) {
      if (p.shim !== 'tsrun' || p.role !== 'manager') continue;
      try {
        process.kill(p.pid, 'SIGTERM');
      } catch {
        // Already gone.
      }
    }
  }

  async close(): Promise<void> {
    if (this.#noisy > 0) this.notes.push(`${this.#noisy} time(s) the shim processes still used CPU 5 s after a sample: the next sample ran beside them`);
    const report = await this.containerd.cleanup();
    for (const problem of report.problems) this.notes.push(`cleanup: ${problem}`);
    await rm(this.tmpDir, { recursive: true, force: true });
  }
}

function describeFailure(result: CtrResult): string {
  const how = result.timedOut ? 'timed out' : result.code === null ? `killed by ${result.signal ?? 'a signal'}` : `exit ${result.code}`;
  const stderr = result.stderr.trim().split('\n')[0] ?? '';
  return `ctr ${how}${stderr === '' ? '' : `: ${stderr.slice(0, 300)}`}`;
}
