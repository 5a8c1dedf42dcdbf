/**
 * The CRI environment's pure parts, and its cleanup for real: a pod left running by a test
 * that stopped half-way, with containerd alive or SIGKILLed, leaves nothing on the host.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { parse } from 'smol-toml';
import { BUSYBOX_IMAGE, mountsUnder } from '../harness/index.js';
import { bridgePorts, CNI_CACHE_DIR, linkExists } from './cni.js';
import {
  CRI_RUNC_ROOT,
  netnsPathOf,
  renderTsrunSettings,
  RUNC_HANDLER,
  startCriEnvironment,
  TSRUN_RUNTIME_TYPE,
  tsrunRuntime,
  tsrunShimAvailability,
  type CriEnvironment,
} from './setup.js';

test('tsrun settings are TOML with the keys shim/settings.ts reads', () => {
  assert.deepEqual({ ...parse(renderTsrunSettings({ groupPolicy: 'pod', logLevel: 'debug' })) }, { GroupPolicy: 'pod', LogLevel: 'debug' });
  assert.deepEqual({ ...parse(renderTsrunSettings({})) }, {});
});

test('the tsrun handler passes its settings file as ConfigPath (containerd 1.6 drops other keys)', () => {
  assert.deepEqual(tsrunRuntime('/tmp/a/tsrun.toml'), { runtimeType: TSRUN_RUNTIME_TYPE, options: { ConfigPath: '/tmp/a/tsrun.toml' } });
});

test('netnsPathOf reads the network namespace from verbose sandbox info', () => {
  const spec = { linux: { namespaces: [{ type: 'pid' }, { type: 'network', path: '/run/x/netns/cni-1' }] } };
  assert.equal(netnsPathOf({ info: JSON.stringify({ pid: 1, runtimeSpec: spec }) }), '/run/x/netns/cni-1');
  assert.equal(netnsPathOf({ info: JSON.stringify({ runtimeSpec: { linux: { namespaces: [{ type: 'network' }] } } }) }), undefined, 'host network');
  assert.equal(netnsPathOf({}), undefined);
});

test('tsrunShimAvailability says why a shim cannot be used', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tsrun-shimcheck-'));
  try {
    const missing = tsrunShimAvailability(join(dir, 'absent'));
    assert.ok(!missing.available && /tsrun shim not built: .*absent does not exist/.test(missing.reason));

    const broken = join(dir, 'broken');
    writeFileSync(broken, '#!/bin/sh\necho "cannot find module" >&2\nexit 1\n', { mode: 0o755 });
    const failing = tsrunShimAvailability(broken);
    assert.ok(!failing.available && /-v exited with code 1: cannot find module/.test(failing.reason));

    const fine = join(dir, 'fine');
    writeFileSync(fine, '#!/bin/sh\n[ "$1" = -v ] && echo "tsrun 0.1.0"\n', { mode: 0o755 });
    assert.deepEqual(tsrunShimAvailability(fine), { available: true, version: 'tsrun 0.1.0' });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Everything of an environment that could outlive it on the host. */
interface Traces {
  readonly bridge: boolean;
  readonly veths: readonly string[];
  readonly netnsMounted: boolean;
  readonly cniCache: readonly string[];
  readonly cgroupParent: boolean;
  readonly dirs: readonly string[];
  readonly containerdLeftovers: number;
  /** runc's k8s.io state dir exists now though it did not before the environment started. */
  readonly runcRootMade: boolean;
}

async function traces(env: CriEnvironment, netns: string, runcRootExisted: boolean): Promise<Traces> {
  const results = join(CNI_CACHE_DIR, 'results');
  const leftovers = await env.containerd.leftovers();
  return {
    bridge: await linkExists(env.network.bridge),
    veths: await bridgePorts(env.network.bridge),
    netnsMounted: (await mountsUnder(netns)).length > 0,
    cniCache: existsSync(results) ? readdirSync(results).filter((f) => f.includes(env.network.name)) : [],
    cgroupParent: existsSync(join('/sys/fs/cgroup/pids', env.cgroupParent)),
    dirs: [env.dir, env.containerd.baseDir].filter((d) => existsSync(d)),
    containerdLeftovers: leftovers.processes.length + leftovers.mounts.length,
    runcRootMade: !runcRootExisted && existsSync(CRI_RUNC_ROOT),
  };
}

const nothing: Traces = { bridge: false, veths: [], netnsMounted: false, cniCache: [], cgroupParent: false, dirs: [], containerdLeftovers: 0, runcRootMade: false };

/** Runs a pod with a running container, as a test that stopped half-way would leave it. */
async function abandonPod(env: CriEnvironment): Promise<{ podId: string; netns: string }> {
  const config = env.podConfig('abandoned');
  const { pod_sandbox_id: podId } = await env.cri.runtime.runPodSandbox({ config, runtime_handler: RUNC_HANDLER });
  const { container_id: id } = await env.cri.runtime.createContainer({
    pod_sandbox_id: podId,
    config: { metadata: { name: 'c', attempt: 0 }, image: { image: BUSYBOX_IMAGE }, command: ['sleep', '1000'], log_path: 'c/0.log' },
    sandbox_config: config,
  });
  await env.cri.runtime.startContainer({ container_id: id });
  const netns = netnsPathOf((await env.cri.runtime.podSandboxStatus({ pod_sandbox_id: podId, verbose: true })).info);
  assert.ok(netns !== undefined);
  return { podId, netns };
}

describe('CRI environment cleanup', () => {
  test('removes a pod a test left running, its veth, bridge, netns, CNI cache, cgroups and directories', { timeout: 60_000 }, async () => {
    const runcRootExisted = existsSync(CRI_RUNC_ROOT);
    const env = await startCriEnvironment();
    let netns = '';
    try {
      const pod = await abandonPod(env);
      netns = pod.netns;
      const before = await traces(env, netns, runcRootExisted);
      assert.equal(before.bridge, true);
      assert.equal(before.veths.length, 1);
      assert.equal(before.netnsMounted, true);
      assert.equal(before.cgroupParent, true);
      assert.ok(before.cniCache.length > 0, 'libcni cached the result');
      const report = await env.cleanup();
      assert.deepEqual(report.problems, []);
      assert.deepEqual(report.removedPods, [pod.podId]);
    } finally {
      await env.cleanup();
    }
    assert.deepEqual(await traces(env, netns, runcRootExisted), nothing);
  });

  test('also when containerd was SIGKILLed first: it is started again and the pod removed through CRI', { timeout: 60_000 }, async () => {
    const runcRootExisted = existsSync(CRI_RUNC_ROOT);
    const env = await startCriEnvironment();
    let netns = '';
    try {
      const pod = await abandonPod(env);
      netns = pod.netns;
      await env.containerd.kill();
      const report = await env.cleanup();
      assert.deepEqual(report.problems, []);
      assert.deepEqual(report.removedPods, [pod.podId]);
      assert.deepEqual(report.cni?.removedLinks, [env.network.bridge], 'CNI DEL removed the veth; the bridge is always left');
    } finally {
      await env.cleanup();
    }
    assert.deepEqual(await traces(env, netns, runcRootExisted), nothing);
  });
});
