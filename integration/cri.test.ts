/**
 * Kubernetes' path end to end: containerd 1.6's CRI plugin, driven through the CRI gRPC API
 * as a kubelet drives it, runs a pod (sandbox + containers) with each runtime handler: the
 * stock `runc` (io.containerd.runc.v2), and `tsrun` (io.containerd.tsrun.v1) once its shim
 * is built (skipped until then, with the reason). The pod is networked by the CNI bridge
 * plugin, its sandbox is the locally built pause image, and its containers run the locally
 * built busybox image.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, test, type TestContext } from 'node:test';
import { BUSYBOX_IMAGE, PAUSE_IMAGE } from './harness/index.js';
import { CriError, type ContainerConfig, type ContainerStatus, type CriClient } from './cri/client.js';
import { bridgePorts, cidrContains } from './cri/cni.js';
import {
  CRI_NAMESPACE,
  RUNC_HANDLER,
  TSRUN_HANDLER,
  netnsPathOf,
  sandboxInfoOf,
  tsrunShimAvailability,
  useCriEnvironment,
  type CriEnvironment,
} from './cri/setup.js';
import { status as grpcStatus } from '@grpc/grpc-js';

/** One line of a CRI container log: `<RFC 3339 nano timestamp> <stream> <P|F> <content>`. */
interface CriLogLine {
  readonly time: Date;
  readonly stream: 'stdout' | 'stderr';
  /** F: the line is complete; P: a partial line, continued on the next. */
  readonly tag: 'F' | 'P';
  readonly content: string;
}

function parseCriLog(text: string): CriLogLine[] {
  return text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => {
      const match = /^(\S+) (stdout|stderr) (F|P) (.*)$/.exec(line);
      if (match === null) throw new Error(`not a CRI log line: ${JSON.stringify(line)}`);
      const [, time = '', stream, tag, content = ''] = match;
      return { time: new Date(time), stream: stream === 'stdout' ? 'stdout' : 'stderr', tag: tag === 'F' ? 'F' : 'P', content };
    });
}

/** Polls ContainerStatus until `done` holds. @throws AssertionError with the last status after `timeoutMs`. */
async function waitForStatus(cri: CriClient, id: string, done: (s: ContainerStatus) => boolean, timeoutMs = 15_000): Promise<ContainerStatus> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { status } = await cri.runtime.containerStatus({ container_id: id });
    assert.ok(status !== null, `ContainerStatus of ${id} answered without a status`);
    if (done(status)) return status;
    if (Date.now() > deadline) assert.fail(`container ${id} did not reach the expected state within ${timeoutMs} ms; last: ${status.state} exit ${status.exit_code} ${status.reason}`);
    await sleep(50);
  }
}

/** Waits until `check` holds, for host-side effects that follow a CRI call asynchronously. */
async function eventually(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`${what} within ${timeoutMs} ms`);
    await sleep(50);
  }
}

/** The shim address containerd recorded for a task (`<state>/io.containerd.runtime.v2.task/<ns>/<id>/address`). */
function shimAddress(env: CriEnvironment, id: string): string {
  return readFileSync(join(env.containerd.state, 'io.containerd.runtime.v2.task', CRI_NAMESPACE, id, 'address'), 'utf8').trim();
}

/** Step timings for the test's diagnostics. */
function stopwatch(t: TestContext): (step: string) => void {
  let last = performance.now();
  const start = last;
  return (step) => {
    const now = performance.now();
    t.diagnostic(`${step}: ${Math.round(now - last)} ms (total ${Math.round(now - start)} ms)`);
    last = now;
  };
}

const tsrun = tsrunShimAvailability();

describe('containerd 1.6 CRI plugin through the CRI gRPC API', () => {
  const env = useCriEnvironment({ tsrun: { groupPolicy: 'pod' } });

  test('Version names containerd and CRI v1', async () => {
    const version = await env().cri.runtime.version();
    assert.equal(version.runtime_name, 'containerd');
    assert.match(version.runtime_version, /^1\.6\./);
    assert.equal(version.runtime_api_version, 'v1');
  });

  test('ImageService lists the imported images; ImageStatus of an absent image is null, not an error', async () => {
    const { images } = env().cri;
    const tags = (await images.listImages()).flatMap((image) => image.repo_tags);
    assert.ok(tags.includes(BUSYBOX_IMAGE), `ListImages: ${tags.join(', ')}`);
    assert.ok(tags.includes(PAUSE_IMAGE), `ListImages: ${tags.join(', ')}`);
    const status = await images.imageStatus({ image: BUSYBOX_IMAGE });
    assert.ok(status.image !== null);
    assert.match(status.image.id, /^sha256:[0-9a-f]{64}$/);
    assert.ok(Number(status.image.size) > 0);
    assert.equal((await images.imageStatus({ image: 'docker.io/tsrun/absent:test' })).image, null);
  });

  test('an unknown runtime handler is refused with the handler named', async () => {
    const { cri } = env();
    await assert.rejects(cri.runtime.runPodSandbox({ config: env().podConfig('nohandler'), runtime_handler: 'no-such-handler' }), (error: unknown) => {
      assert.ok(error instanceof CriError);
      assert.match(error.message, /no-such-handler/);
      return true;
    });
  });

  for (const handler of [RUNC_HANDLER, TSRUN_HANDLER]) {
    const skip = handler === TSRUN_HANDLER && !tsrun.available ? tsrun.reason : false;

    test(`handler ${handler}: run a pod, a container that exits 3 with its log, ExecSync, stop, remove`, { skip, timeout: 90_000 }, async (t) => {
      const { cri, containerd, network } = env();
      const lap = stopwatch(t);
      const sandboxConfig = env().podConfig(`pod-${handler}`);
      const logDirectory = sandboxConfig.log_directory ?? '';
      const started = Date.now();

      // --- The pod sandbox.
      const { pod_sandbox_id: podId } = await cri.runtime.runPodSandbox({ config: sandboxConfig, runtime_handler: handler });
      lap('RunPodSandbox');
      try {
        const { status: pod, info } = await cri.runtime.podSandboxStatus({ pod_sandbox_id: podId, verbose: true });
        assert.ok(pod !== null);
        assert.equal(pod.state, 'SANDBOX_READY');
        assert.equal(pod.runtime_handler, handler);
        assert.ok(pod.network !== null && cidrContains(network.subnet, pod.network.ip), `pod IP ${pod.network?.ip ?? '(none)'} is not in ${network.subnet}`);
        assert.equal(sandboxInfoOf(info).runtimeType, env().handlers[handler], `handler ${handler} runs its runtime type`);
        const netns = netnsPathOf(info);
        assert.ok(netns?.startsWith(`${containerd.state}/`), `the pod's netns ${netns ?? '(none)'} is under containerd's private state dir`);
        assert.equal((await bridgePorts(network.bridge)).length, 1, `one veth on ${network.bridge}`);
        assert.deepEqual(
          (await cri.runtime.listPodSandbox({ id: podId })).map((p) => [p.id, p.state, p.runtime_handler]),
          [[podId, 'SANDBOX_READY', handler]],
        );

        // --- A container that prints, then exits 3.
        const oneshotConfig: ContainerConfig = {
          metadata: { name: 'oneshot', attempt: 0 },
          image: { image: BUSYBOX_IMAGE },
          command: ['sh', '-c', 'echo hello from cri; sleep 1; exit 3'],
          log_path: 'oneshot/0.log',
        };
        const { container_id: oneshot } = await cri.runtime.createContainer({ pod_sandbox_id: podId, config: oneshotConfig, sandbox_config: sandboxConfig });
        lap('CreateContainer oneshot');
        assert.equal((await waitForStatus(cri, oneshot, () => true)).state, 'CONTAINER_CREATED');
        await cri.runtime.startContainer({ container_id: oneshot });
        lap('StartContainer oneshot');
        const exited = await waitForStatus(cri, oneshot, (s) => s.state === 'CONTAINER_EXITED');
        lap('oneshot exited');
        assert.equal(exited.exit_code, 3);
        assert.equal(exited.reason, 'Error');
        assert.ok(BigInt(exited.finished_at) >= BigInt(exited.started_at) + 900_000_000n, 'it ran at least its 1 s sleep');
        assert.equal(exited.log_path, join(logDirectory, 'oneshot/0.log'));

        const log = parseCriLog(readFileSync(exited.log_path, 'utf8'));
        assert.deepEqual(log.map((l) => [l.stream, l.tag, l.content]), [['stdout', 'F', 'hello from cri']]);
        const [line] = log;
        assert.ok(line !== undefined && line.time.getTime() >= started - 1_000 && line.time.getTime() <= Date.now(), `log timestamp ${line?.time.toISOString() ?? ''}`);

        // --- A long-running container to exec into.
        const sleeperConfig: ContainerConfig = {
          metadata: { name: 'sleeper', attempt: 0 },
          image: { image: BUSYBOX_IMAGE },
          command: ['sh', '-c', 'trap "exit 0" TERM; while :; do sleep 3600 & wait $!; done'],
          log_path: 'sleeper/0.log',
        };
        const { container_id: sleeper } = await cri.runtime.createContainer({ pod_sandbox_id: podId, config: sleeperConfig, sandbox_config: sandboxConfig });
        await cri.runtime.startContainer({ container_id: sleeper });
        await waitForStatus(cri, sleeper, (s) => s.state === 'CONTAINER_RUNNING');
        lap('sleeper running');

        const exec = await cri.runtime.execSync({ container_id: sleeper, cmd: ['sh', '-c', 'echo hi; exit 2'], timeout: 10 });
        lap('ExecSync');
        assert.equal(exec.stdout.toString(), 'hi\n');
        assert.equal(exec.stderr.toString(), '');
        assert.equal(exec.exit_code, 2);
        const stderr = await cri.runtime.execSync({ container_id: sleeper, cmd: ['sh', '-c', 'echo oops >&2'], timeout: 10 });
        assert.deepEqual([stderr.stdout.toString(), stderr.stderr.toString(), stderr.exit_code], ['', 'oops\n', 0]);

        // The pod's network as its containers see it: CNI's eth0 address, and the loopback
        // network containerd adds itself.
        const ip = await cri.runtime.execSync({ container_id: sleeper, cmd: ['sh', '-c', 'ip -4 -o addr show dev eth0; ip -4 -o addr show dev lo'], timeout: 10 });
        assert.equal(ip.exit_code, 0, ip.stderr.toString());
        assert.match(ip.stdout.toString(), new RegExp(`eth0\\s+inet ${pod.network.ip.replaceAll('.', '\\.')}/24`));
        assert.match(ip.stdout.toString(), /lo\s+inet 127\.0\.0\.1\/8/);

        // One shim per pod: the runc shim groups on io.kubernetes.cri.sandbox-id, and so does
        // tsrun. (oneshot's bundle, with its address file, went when CRI deleted its task.)
        assert.equal(shimAddress(env(), sleeper), shimAddress(env(), podId));
        const shimSocket = shimAddress(env(), podId).replace(/^unix:\/\//, '');
        assert.ok(existsSync(shimSocket), `shim socket ${shimSocket}`);

        assert.deepEqual(
          (await cri.runtime.listContainers({ pod_sandbox_id: podId })).map((c) => [c.metadata?.name, c.state]).sort(),
          [['oneshot', 'CONTAINER_EXITED'], ['sleeper', 'CONTAINER_RUNNING']],
        );

        // --- Stop: SIGTERM, the trap exits 0 well before the 10 s grace period.
        const stopStarted = Date.now();
        await cri.runtime.stopContainer({ container_id: sleeper, timeout: 10 });
        lap('StopContainer');
        assert.ok(Date.now() - stopStarted < 5_000, 'the container honoured SIGTERM');
        const stopped = await waitForStatus(cri, sleeper, (s) => s.state === 'CONTAINER_EXITED');
        assert.deepEqual([stopped.exit_code, stopped.reason], [0, 'Completed']);

        for (const id of [oneshot, sleeper]) await cri.runtime.removeContainer({ container_id: id });
        lap('RemoveContainer x2');
        assert.deepEqual(await cri.runtime.listContainers({ pod_sandbox_id: podId }), []);
        await assert.rejects(cri.runtime.containerStatus({ container_id: oneshot }), (e: unknown) => e instanceof CriError && e.code === grpcStatus.NOT_FOUND);

        // --- The sandbox.
        await cri.runtime.stopPodSandbox({ pod_sandbox_id: podId });
        lap('StopPodSandbox');
        const { status: stoppedPod } = await cri.runtime.podSandboxStatus({ pod_sandbox_id: podId });
        assert.equal(stoppedPod?.state, 'SANDBOX_NOTREADY');
        assert.deepEqual(await bridgePorts(network.bridge), [], 'CNI DEL removed the veth');
        await cri.runtime.removePodSandbox({ pod_sandbox_id: podId });
        lap('RemovePodSandbox');
        await assert.rejects(cri.runtime.podSandboxStatus({ pod_sandbox_id: podId }), (e: unknown) => e instanceof CriError && e.code === grpcStatus.NOT_FOUND);
        assert.deepEqual(await cri.runtime.listPodSandbox({ id: podId }), []);
        assert.ok(netns === undefined || !existsSync(netns), `netns ${netns ?? ''} removed`);
        await eventually(`the pod's shim is gone (socket ${shimSocket})`, () => !existsSync(shimSocket));
        lap('shim gone');
      } finally {
        // A failed step must not leave this pod to the next handler's test.
        await cri.runtime.stopPodSandbox({ pod_sandbox_id: podId }).catch(() => undefined);
        await cri.runtime.removePodSandbox({ pod_sandbox_id: podId }).catch(() => undefined);
      }
    });
  }
});
