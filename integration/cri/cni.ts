/**
 * The pod network of a CRI test: one CNI bridge network from Debian's
 * containernetworking-plugins (/usr/lib/cni), private to one test environment, and the
 * removal of everything CNI leaves on the host.
 *
 * Choices that keep the host as it was:
 * - `isGateway: false`: the bridge plugin enables net.ipv4.ip_forward on the host when the
 *   bridge is a gateway, and this host has it off. Pods need no route off their subnet.
 * - `ipMasq: false`: no iptables rules.
 * - host-local IPAM keeps its leases in the environment's directory (`dataDir`), not in
 *   /var/lib/cni/networks.
 * - A bridge name and a /24 of 10.88.0.0/16 (containerd's default pod range) of its own, so
 *   two environments never share a bridge; the /24 avoids every route the host has.
 * Loopback is not in this conflist: containerd's CRI adds its own `cni-loopback` network
 * (go-cni WithLoNetwork), run with the `loopback` binary of the same bin dir.
 */
import { execFile } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, rm, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

/** Debian's containernetworking-plugins. */
export const CNI_BIN_DIR = '/usr/lib/cni';
/**
 * Where libcni caches each attachment's result (`<network>-<container id>-<ifname>`); it
 * removes the entry on DEL, so a file left means a teardown that never ran.
 */
export const CNI_CACHE_DIR = '/var/lib/cni';
/** The network containerd's CRI adds for the pod's `lo` (go-cni's loopback network name). */
export const CNI_LOOPBACK_NETWORK = 'cni-loopback';

/** One test environment's network. */
export interface CniNetwork {
  /** The CNI network name (also the conflist's `name`). */
  readonly name: string;
  /** The Linux bridge the plugin creates (at most 15 bytes: IFNAMSIZ). */
  readonly bridge: string;
  /** IPv4 CIDR pods get addresses from. */
  readonly subnet: string;
  /** host-local's lease directory. */
  readonly ipamDataDir: string;
}

/** The conflist (CNI spec 1.0.0) for a network. Pure. */
export function renderCniConflist(network: CniNetwork): string {
  return `${JSON.stringify(
    {
      cniVersion: '1.0.0',
      name: network.name,
      plugins: [
        {
          type: 'bridge',
          bridge: network.bridge,
          isGateway: false,
          ipMasq: false,
          hairpinMode: false,
          ipam: { type: 'host-local', ranges: [[{ subnet: network.subnet }]], dataDir: network.ipamDataDir },
        },
      ],
    },
    null,
    2,
  )}\n`;
}

/** [first, last] address of an IPv4 CIDR as unsigned integers. @throws Error when it is not one. */
export function cidrRange(cidr: string): [number, number] {
  const match = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?:\/(\d{1,2}))?$/.exec(cidr);
  if (match === null) throw new Error(`'${cidr}' is not an IPv4 address or CIDR`);
  const octets = match.slice(1, 5).map(Number);
  if (octets.some((o) => o > 255)) throw new Error(`'${cidr}' has an octet above 255`);
  const bits = match[5] === undefined ? 32 : Number(match[5]);
  if (bits > 32) throw new Error(`'${cidr}' has a prefix longer than 32`);
  const address = octets.reduce((value, octet) => value * 256 + octet, 0);
  const size = 2 ** (32 - bits);
  const first = Math.floor(address / size) * size;
  return [first, first + size - 1];
}

/** Whether an IPv4 address lies in a CIDR. */
export function cidrContains(cidr: string, address: string): boolean {
  const [first, last] = cidrRange(cidr);
  const [value] = cidrRange(address);
  return value >= first && value <= last;
}

function overlaps(a: string, b: string): boolean {
  const [a0, a1] = cidrRange(a);
  const [b0, b1] = cidrRange(b);
  return a0 <= b1 && b0 <= a1;
}

/**
 * A /24 of 10.88.0.0/16 that overlaps none of `taken`.
 * @throws Error when every /24 is taken.
 */
export function chooseSubnet(taken: readonly string[], random: (max: number) => number = (max) => randomInt(max)): string {
  const start = random(256);
  for (let i = 0; i < 256; i++) {
    const subnet = `10.88.${(start + i) % 256}.0/24`;
    if (!taken.some((cidr) => overlaps(cidr, subnet))) return subnet;
  }
  throw new Error('every /24 of 10.88.0.0/16 overlaps a route of this host: free one, or change the range in integration/cri/cni.ts');
}

/** Every IPv4 destination the host routes (all tables), as CIDRs. */
export async function hostRoutes(): Promise<string[]> {
  const { stdout } = await execFileAsync('ip', ['-4', '-o', 'route', 'show', 'table', 'all']);
  const routes: string[] = [];
  for (const line of stdout.split('\n')) {
    // "[type] dst ...": dst is the first token that is an address (skips "local", "broadcast").
    const destination = line.split(' ').find((token) => /^\d+\.\d+\.\d+\.\d+(\/\d+)?$/.test(token));
    if (destination !== undefined && !line.startsWith('default')) routes.push(destination);
  }
  return routes;
}

/**
 * A fresh network: a random bridge name and a free /24.
 * @param ipamDataDir where host-local keeps its leases.
 */
export async function createCniNetwork(ipamDataDir: string): Promise<CniNetwork> {
  const suffix = randomBytes(4).toString('hex');
  return { name: `tsrun-cri-${suffix}`, bridge: `tsr-${suffix}`, subnet: chooseSubnet(await hostRoutes()), ipamDataDir };
}

/** One network interface as `ip -j link` prints it (the fields used here). */
interface LinkInfo {
  readonly ifname: string;
  readonly master?: string;
}

async function links(): Promise<LinkInfo[]> {
  const { stdout } = await execFileAsync('ip', ['-j', 'link', 'show']);
  return JSON.parse(stdout) as LinkInfo[];
}

/** Names of the interfaces attached to a bridge (the host ends of pod veths). */
export async function bridgePorts(bridge: string): Promise<string[]> {
  return (await links()).filter((link) => link.master === bridge).map((link) => link.ifname);
}

/** Whether a network interface exists. */
export async function linkExists(name: string): Promise<boolean> {
  return (await links()).some((link) => link.ifname === name);
}

/** What {@link removeCniLeftovers} removed. */
export interface CniCleanup {
  readonly removedLinks: readonly string[];
  readonly removedCacheEntries: readonly string[];
}

/**
 * Removes what CNI left of a network: veths still on its bridge (deleting the host end
 * deletes the pair), the bridge itself (the bridge plugin never deletes it), and libcni's
 * cached results for this network and for the loopback network of the given sandboxes.
 * Run it after containerd has stopped: a running containerd may still be tearing down.
 *
 * @param sandboxIds pod sandboxes run on this network (their loopback results are cached under their ids).
 * @param cacheDirExisted whether /var/lib/cni existed before the environment started: if
 *   not, it is removed once empty.
 * @throws Error when `ip link del` fails for an interface that still exists.
 */
export async function removeCniLeftovers(network: CniNetwork, sandboxIds: readonly string[], cacheDirExisted: boolean): Promise<CniCleanup> {
  const removedLinks: string[] = [];
  for (const name of [...(await bridgePorts(network.bridge)), network.bridge]) {
    if (!(await linkExists(name))) continue;
    await execFileAsync('ip', ['link', 'del', name]);
    removedLinks.push(name);
  }

  const removedCacheEntries: string[] = [];
  const results = join(CNI_CACHE_DIR, 'results');
  const ours = (file: string): boolean =>
    file.startsWith(`${network.name}-`) || sandboxIds.some((id) => file.startsWith(`${CNI_LOOPBACK_NETWORK}-${id}-`));
  if (existsSync(results)) {
    for (const file of await readdir(results)) {
      if (!ours(file)) continue;
      await rm(join(results, file), { force: true });
      removedCacheEntries.push(join(results, file));
    }
  }
  if (!cacheDirExisted) {
    // Only empty directories go: another user of CNI on this host keeps its files.
    for (const dir of [results, CNI_CACHE_DIR]) await rmdir(dir).catch(() => undefined);
  }
  return { removedLinks, removedCacheEntries };
}
