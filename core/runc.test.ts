// The OCI runtime driver's invocations, against scripted runtimes: what it reads of a
// runtime's stdout and stderr, and that it never waits for more than the runtime itself.
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { loadNative } from '../native/index.js';
import { openFdCount, until } from '../native/testing-support.js';
import { RuntimeError } from './errors.js';
import { createProcessMonitor } from './process-monitor.js';
import { createOciRuntime, type OciRuntime } from './runc.js';
import { testRuntimeSettings } from './test-bundle.js';
import { createTestLogger } from './test-logger.js';

const native = loadNative();


/** A driver whose runtime binary is `script` (a /bin/sh script body in the bundle dir, `$(dirname "$0")`). */
function scripted(t: TestContext, script: string): { runtime: OciRuntime; dir: string } {
  const dir = mkdtempSync(join(tmpdir(), 'tsrun-runc-test-'));
  const binary = join(dir, 'fake-runc');
  writeFileSync(binary, `#!/bin/sh\n${script}\n`);
  chmodSync(binary, 0o755);
  const monitor = createProcessMonitor(native, createTestLogger());
  t.after(() => {
    monitor.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const runtime = createOciRuntime({
    settings: testRuntimeSettings({ binaryName: binary, root: '/run/tsrun-test-runc-root' }),
    namespace: 'test',
    containerId: 'c1',
    bundle: dir,
    monitor,
    native,
    logger: createTestLogger(),
  });
  return { runtime, dir };
}

describe('OCI runtime invocations', () => {
  test('stdout is read while the runtime runs: 256 KiB on stderr first (four pipes full) does not block it', async (t) => {
    const { runtime } = scripted(t, `head -c 262144 /dev/zero >&2; echo '[12,34]'`);
    const fdsBefore = openFdCount();
    assert.deepEqual(await runtime.ps(), [12, 34]);
    assert.equal(openFdCount(), fdsBefore, 'both pipes are closed');
  });

  test("a failing runtime's stderr is its error, when its log has none", async (t) => {
    const { runtime } = scripted(t, `echo "container c1 is on fire" >&2; exit 3`);
    await assert.rejects(runtime.start(), (error: unknown) => {
      assert.ok(error instanceof RuntimeError);
      assert.equal(error.message, "runc start of container 'c1' failed: container c1 is on fire");
      return true;
    });
  });

  test("the runtime's JSON log error wins over its stderr", async (t) => {
    const { runtime } = scripted(
      t,
      `echo '{"level":"error","msg":"the real reason","time":"2026-11-23T00:00:00Z"}' >> "$(dirname "$0")/log.json"; echo noise >&2; exit 1`,
    );
    await assert.rejects(runtime.kill(15, false), /runc kill of container 'c1' failed: the real reason$/);
  });

  test('an answer does not wait for a child of the runtime that keeps its stdout open', async (t) => {
    // A hook's stray child, say: the runtime exits at once, its child holds stdout for 20 s.
    const { runtime, dir } = scripted(t, `sleep 20 & echo $! > "$(dirname "$0")/child.pid"; exit 0`);
    await runtime.start();
    const child = Number(readFileSync(join(dir, 'child.pid'), 'utf8'));
    t.after(() => {
      try {
        process.kill(child, 'SIGKILL');
      } catch {
        // Gone already.
      }
    });
    // Answered while the child still runs (and holds the pipe): nothing waited for its end of file.
    assert.ok(processExists(child), 'the runtime call returned before its stray child ended');
    process.kill(child, 'SIGKILL');
    await until(() => !processExists(child), 'the stray child to go');
  });
});

function processExists(pid: number): boolean {
  try {
    const state = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0];
    return state !== undefined && state !== 'Z';
  } catch {
    return false;
  }
}
