/**
 * node:test wiring for a private containerd: one instance per test file (containerd starts
 * in well under a second, but a file's tests share it to stay fast), cleaned up in an
 * `after` hook that runs even when a test or the start itself failed half-way.
 */
import { after, afterEach, before } from 'node:test';
import { startContainerd, type ContainerdInstance, type ContainerdOptions } from './containerd.js';
import { importTestImages } from './image.js';

/** Options of {@link useContainerd}. */
export interface FixtureOptions extends ContainerdOptions {
  /**
   * Import the test images after start: `true` imports them into the instance's namespace
   * (and `k8s.io` when CRI is enabled); a list names the namespaces.
   */
  readonly images?: boolean | readonly string[];
}

/** Whether a hook's context says its test failed (`passed` exists at run time since Node 20.12). */
function failed(context: unknown): boolean {
  return typeof context === 'object' && context !== null && 'passed' in context && context.passed === false;
}

function nameOf(context: unknown): string {
  return typeof context === 'object' && context !== null && 'name' in context && typeof context.name === 'string' ? context.name : '?';
}

/**
 * Registers before/afterEach/after hooks in the current file (or suite) and returns a getter
 * for the instance. A failed test keeps containerd's log (its path is printed at cleanup).
 *
 * @returns a function that gives the running instance.
 * @throws (the getter) Error when called before the `before` hook ran or after it failed.
 */
export function useContainerd(options: FixtureOptions = {}): () => ContainerdInstance {
  let instance: ContainerdInstance | undefined;
  before(async () => {
    instance = await startContainerd(options);
    const namespaces =
      options.images === true ? [instance.namespace, ...(options.cri === undefined ? [] : ['k8s.io'])] : options.images === false || options.images === undefined ? [] : options.images;
    for (const namespace of namespaces) await importTestImages(instance.ctr, { namespace });
  });
  afterEach((context) => {
    if (instance !== undefined && failed(context)) instance.keepLog(`test '${nameOf(context)}' failed`);
  });
  after(async () => {
    await instance?.cleanup();
  });
  return () => {
    if (instance === undefined) throw new Error('the private containerd is not running: its before hook has not run or failed');
    return instance;
  };
}
