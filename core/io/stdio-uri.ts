/**
 * What containerd's stdio strings mean: where a process's output goes, decided by
 * the scheme of stdout as the Go shim does (containerd-shim-facts.md section 3.4;
 * process/io.go createIO, process/io_util.go NewBinaryCmd).
 *
 * Pure functions: no fds, no processes. Everything a user can get wrong here is an
 * InvalidArgument with a sentence.
 */
import type { Stdio } from '../api.js';
import { invalidArgument } from '../errors.js';

/**
 * Where stdout and stderr go.
 * - `fifo`: stdout and stderr are paths (no scheme, or `fifo://`), normally fifos
 *   made by containerd; a path that is a regular file is appended to (as the Go shim).
 * - `file`: `file:///path`: both streams appended to that one file.
 * - `binary`: `binary:///path?k=v`: a logging program started with the streams on
 *   its fds 3 and 4.
 */
export type OutputTarget =
  | { readonly kind: 'fifo' }
  | { readonly kind: 'file'; readonly path: string }
  | { readonly kind: 'binary'; readonly logger: BinaryLoggerCommand };

/** How to start a `binary://` logger: argv and the variables added to its environment. */
export interface BinaryLoggerCommand {
  /** Absolute path of the program (the URI's path). */
  readonly path: string;
  /** Query pairs in order, `[k1, v1, k2, v2, ...]` (the first value of a repeated key). */
  readonly args: readonly string[];
  /** `KEY=value` from `env.KEY=value` query pairs (newer containerd), in order. */
  readonly env: readonly string[];
}

/** True when the process has no stdio at all (runc gets /dev/null for 0, 1 and 2). */
export function isNullStdio(stdio: Stdio): boolean {
  return stdio.stdin === '' && stdio.stdout === '' && stdio.stderr === '';
}

/**
 * The scheme of a stdio string, lower-cased, or '' when it has none. Follows Go's
 * url.Parse: a scheme is a letter then letters, digits, '+', '-' or '.', before the
 * first ':'; a plain path such as `/run/x:y` has none.
 */
export function schemeOf(uri: string): string {
  const match = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(uri);
  return match?.[1]?.toLowerCase() ?? '';
}

/**
 * Decides where output goes from the stdout string. An empty stdout means `fifo`
 * (stderr alone may still be a fifo path). Throws InvalidArgument for an unknown
 * scheme or a malformed `file://` / `binary://` URI.
 */
export function parseOutputTarget(stdout: string): OutputTarget {
  const scheme = schemeOf(stdout);
  switch (scheme) {
    case '':
    case 'fifo':
      return { kind: 'fifo' };
    case 'file':
      return { kind: 'file', path: absolutePathOf(stdout, 'file') };
    case 'binary':
      return { kind: 'binary', logger: binaryCommandOf(stdout) };
    default:
      throw invalidArgument(
        `unknown STDIO scheme '${scheme}' in stdout '${stdout}': use a fifo path, file:///path or binary:///path`,
      );
  }
}

/** The filesystem path of a fifo stdio string: itself, or the path of a `fifo://` URI. */
export function fifoPathOf(uri: string): string {
  return schemeOf(uri) === 'fifo' ? absolutePathOf(uri, 'fifo') : uri;
}

/** Query pairs whose key starts with this become environment variables of a binary logger. */
const ENV_PREFIX = 'env.';

/** Variables the runtime sets itself; `env.` pairs may not override them (as the Go shim). */
const RESERVED_ENV = new Set(['CONTAINER_ID', 'CONTAINER_NAMESPACE']);

function binaryCommandOf(uri: string): BinaryLoggerCommand {
  const path = absolutePathOf(uri, 'binary');
  const { searchParams } = new URL(uri);
  const args: string[] = [];
  const env: string[] = [];
  const seen = new Set<string>();
  for (const [key, value] of searchParams) {
    // Go's url.Values keeps every value but NewBinaryCmd uses the first one.
    if (seen.has(key)) continue;
    seen.add(key);
    if (key.startsWith(ENV_PREFIX)) {
      const name = key.slice(ENV_PREFIX.length);
      if (name !== '' && !RESERVED_ENV.has(name)) env.push(`${name}=${value}`);
    } else {
      args.push(key, value);
    }
  }
  return { path, args, env };
}

/** The decoded, absolute path of a `scheme:///path` URI; refuses a host and relative paths. */
function absolutePathOf(uri: string, scheme: string): string {
  let url: URL;
  try {
    url = new URL(uri);
  } catch (err) {
    throw invalidArgument(`stdio URI '${uri}' is not a valid URI: use ${scheme}:///absolute/path`, err);
  }
  let path: string;
  try {
    path = decodeURIComponent(url.pathname);
  } catch (err) {
    throw invalidArgument(`stdio URI '${uri}' has an invalid percent-encoding in its path`, err);
  }
  if (url.host !== '' || !path.startsWith('/') || path === '/') {
    throw invalidArgument(`stdio URI '${uri}' must name an absolute path: use ${scheme}:///absolute/path`);
  }
  return path;
}
