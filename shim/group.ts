/**
 * Which daemon serves a container, and where that daemon listens.
 *
 * The group key comes from the bundle's OCI annotations, first
 * `io.containerd.tsrun.v1.group`, then `io.kubernetes.cri.sandbox-id` (one daemon
 * per pod, as the Go shim groups on `io.containerd.runc.v2.group` then the sandbox
 * id), else from the configured policy (DESIGN.md section 2).
 *
 * The socket address follows containerd's `SocketAddress`,
 * `unix:///run/containerd/s/<hex(sha256(...))>` (containerd pkg/shim/util_unix.go;
 * facts section 2.4), hashing `join(address, namespace, group)` behind a tsrun
 * prefix: a group key maps to one socket per containerd and namespace, and never to
 * the socket of another runtime's group of the same name.
 */
import { createHash } from 'node:crypto';
import { posix } from 'node:path';

/** The annotation a user sets to put containers in one tsrun daemon. */
export const groupAnnotation = 'io.containerd.tsrun.v1.group';
/** The annotation containerd's CRI plugin sets on every container of a pod. */
export const sandboxIdAnnotation = 'io.kubernetes.cri.sandbox-id';

/**
 * How containers without a group annotation are grouped:
 * `container`: one daemon per container (the default, like `ctr run`);
 * `pod`: one daemon per CRI pod (the sandbox id annotation; else per container);
 * `namespace`: one daemon per containerd namespace (highest density).
 */
export type GroupPolicy = 'container' | 'pod' | 'namespace';

/** Parses a policy name; undefined when it is not one. */
export function parseGroupPolicy(value: string): GroupPolicy | undefined {
  switch (value) {
    case 'container':
    case 'pod':
    case 'namespace':
      return value;
    default:
      return undefined;
  }
}

/**
 * The group key of a container.
 * @param annotations the `annotations` of the bundle's config.json (may be empty).
 */
export function groupKey(id: string, namespace: string, annotations: Readonly<Record<string, string>>, policy: GroupPolicy): string {
  const explicit = annotations[groupAnnotation];
  if (explicit !== undefined && explicit !== '') return explicit;
  // A CRI container always groups with its pod, as the Go shim does.
  const sandbox = annotations[sandboxIdAnnotation];
  if (sandbox !== undefined && sandbox !== '') return sandbox;
  switch (policy) {
    case 'container':
    case 'pod':
      // Without a sandbox annotation there is no pod to join: one daemon per container.
      return id;
    case 'namespace':
      return `namespace:${namespace}`;
  }
}

/** Keeps tsrun's socket names apart from other shims' (the NUL never occurs in a containerd address). */
const socketHashPrefix = 'io.containerd.tsrun.v1\0';

/** containerd's default socket directory (1.6 hard-codes it; 2.3 makes it configurable). */
export const defaultSocketDir = '/run/containerd/s';

/**
 * The `unix://` address of a group's daemon socket.
 * @param containerdAddress the `-address` flag (containerd's gRPC socket path).
 */
export function socketAddress(containerdAddress: string, namespace: string, group: string, socketDir = defaultSocketDir): string {
  // containerd's input, behind a prefix of ours: a runc shim group with the same
  // name (io.containerd.runc.v2.group=G) must never land on a tsrun daemon's socket.
  const hash = createHash('sha256').update(socketHashPrefix).update(posix.join(containerdAddress, namespace, group)).digest('hex');
  return `unix://${posix.join(socketDir, hash)}`;
}

/** The filesystem path of a `unix://` address. */
export function socketPath(address: string): string {
  return address.startsWith('unix://') ? address.slice('unix://'.length) : address;
}
