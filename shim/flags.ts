/**
 * The shim's command line, parsed with Go's `flag` package rules because containerd
 * builds it for a Go shim: single- or double-dash long flags, `-name value` or
 * `-name=value`, boolean flags without a value (or `-name=true|false`), parsing
 * stops at the first non-flag argument or at `--`; the action is the first
 * positional argument (`start`, `delete`, or none for the daemon).
 *
 * containerd 1.6-2.3 builds:
 *   <shim> -namespace ns -address grpc.sock -publish-binary containerd -id id [-debug] start
 *   <shim> -namespace ns -address grpc.sock -publish-binary containerd -id id -bundle b [-debug] delete
 * (facts section 2.2; containerd pkg/shim/shim.go parseFlags).
 *
 * tsrun's own modes (native/launcher/PROTOCOL.md): `-manager -address a` is the
 * long-lived manager the launcher starts (with `-spare-pid p` when the launcher forked
 * its first spare beside it); `-spare` is a pre-booted daemon it keeps.
 */

/** The flags containerd (or our own start action) may pass. */
export interface ShimFlags {
  readonly namespace: string;
  readonly address: string;
  readonly publishBinary: string;
  readonly id: string;
  readonly bundle: string;
  readonly socket: string;
  readonly debugSocket: string;
  readonly debug: boolean;
  readonly info: boolean;
  readonly version: boolean;
  /** Run as the manager of the containerd at `-address` (manager.ts). */
  readonly manager: boolean;
  /** Run as a spare daemon waiting on fd 3 for a group to adopt (spare.ts). */
  readonly spare: boolean;
  /**
   * With `-manager`: the pid of a spare the launcher forked beside this manager (its
   * child, channel on fd 3; native/launcher/PROTOCOL.md); '' when there is none.
   */
  readonly sparePid: string;
}

/** The parsed command line: flags and the action. */
export interface ShimCommandLine {
  readonly flags: ShimFlags;
  /** `start`, `delete`, or '' (run as the daemon). */
  readonly action: string;
  /** Positional arguments after the action. */
  readonly rest: readonly string[];
}

/** A command line containerd (or a person) got wrong; the message says what and how to fix it. */
export class FlagError extends Error {
  override readonly name = 'FlagError';
}

type StringFlag = 'namespace' | 'address' | 'publishBinary' | 'id' | 'bundle' | 'socket' | 'debugSocket' | 'sparePid';
type BoolFlag = 'debug' | 'info' | 'version' | 'manager' | 'spare';

const stringFlags: ReadonlyMap<string, StringFlag> = new Map([
  ['namespace', 'namespace'],
  ['address', 'address'],
  ['publish-binary', 'publishBinary'],
  ['id', 'id'],
  ['bundle', 'bundle'],
  ['socket', 'socket'],
  ['debug-socket', 'debugSocket'],
  ['spare-pid', 'sparePid'],
]);

const boolFlags: ReadonlyMap<string, BoolFlag> = new Map([
  ['debug', 'debug'],
  ['info', 'info'],
  ['v', 'version'],
  ['manager', 'manager'],
  ['spare', 'spare'],
]);

/**
 * Parses argv (without the executable) the way Go's `flag.Parse` does.
 * @throws FlagError on an unknown flag, a missing value or a malformed boolean.
 */
export function parseFlags(argv: readonly string[]): ShimCommandLine {
  const strings: Record<StringFlag, string> = {
    namespace: '',
    address: '',
    publishBinary: '',
    id: '',
    bundle: '',
    socket: '',
    debugSocket: '',
    sparePid: '',
  };
  const bools: Record<BoolFlag, boolean> = { debug: false, info: false, version: false, manager: false, spare: false };

  let i = 0;
  for (; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (arg === '--') {
      i++;
      break;
    }
    if (arg.length < 2 || !arg.startsWith('-')) break;
    const body = arg.startsWith('--') ? arg.slice(2) : arg.slice(1);
    if (body === '' || body.startsWith('-') || body.startsWith('=')) throw new FlagError(`bad flag syntax: ${arg}`);
    const eq = body.indexOf('=');
    const name = eq === -1 ? body : body.slice(0, eq);
    const inline = eq === -1 ? undefined : body.slice(eq + 1);

    const boolKey = boolFlags.get(name);
    if (boolKey !== undefined) {
      bools[boolKey] = inline === undefined ? true : parseBool(name, inline);
      continue;
    }
    const stringKey = stringFlags.get(name);
    if (stringKey === undefined) {
      throw new FlagError(`flag provided but not defined: -${name} (known: ${[...stringFlags.keys(), ...boolFlags.keys()].map((k) => `-${k}`).join(' ')})`);
    }
    if (inline !== undefined) {
      strings[stringKey] = inline;
      continue;
    }
    const value = argv[i + 1];
    if (value === undefined) throw new FlagError(`flag needs an argument: -${name}`);
    strings[stringKey] = value;
    i++;
  }
  const positional = argv.slice(i);
  return { flags: { ...strings, ...bools }, action: positional[0] ?? '', rest: positional.slice(1) };
}

/** Go's strconv.ParseBool, which `flag` uses for `-name=value`. */
function parseBool(name: string, value: string): boolean {
  if (['1', 't', 'T', 'true', 'TRUE', 'True'].includes(value)) return true;
  if (['0', 'f', 'F', 'false', 'FALSE', 'False'].includes(value)) return false;
  throw new FlagError(`invalid boolean value "${value}" for -${name}: use true or false`);
}
