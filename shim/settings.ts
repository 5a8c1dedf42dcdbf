/**
 * tsrun's settings, from the two option types containerd sends a shim
 * (DESIGN.md section 4; facts section 2.10):
 *
 * - `containerd.runc.v1.Options` (ctr with runc flags, containerd's tasks API):
 *   the OCI runtime settings (BinaryName, Root, SystemdCgroup, ...).
 * - `runtimeoptions.v1.Options` (what CRI sends for a non-runc runtime type, and
 *   `ctr --runtime-config-path`): a TOML file path or body. Its keys are the CRI
 *   runtime's `options` table, so they carry the same PascalCase runc keys plus
 *   tsrun's own: `GroupPolicy` ("container" | "pod" | "namespace") and `LogLevel`.
 *
 * No new option proto: containerd 2.x rejects any other task option type.
 */
import { parse as parseToml } from 'smol-toml';
import { defaultRuntimeSettings } from '../core/runc.js';
import { parseGroupPolicy, type GroupPolicy } from './group.js';

/** Log levels the daemon understands (pino's names). */
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';

/** Everything configurable, with defaults filled in. */
export interface Settings {
  /** The OCI runtime binary ('runc' looked up in PATH by default). */
  readonly binaryName: string;
  /** The OCI runtime's `--root`; '' means `/run/containerd/runc/<namespace>`. */
  readonly root: string;
  readonly systemdCgroup: boolean;
  readonly noPivotRoot: boolean;
  readonly noNewKeyring: boolean;
  readonly ioUid: number;
  readonly ioGid: number;
  readonly shimCgroup: string;
  readonly criuImagePath: string;
  readonly criuWorkPath: string;
  readonly groupPolicy: GroupPolicy;
  readonly logLevel: LogLevel;
}

/** The settings when containerd sends no options. */
export const defaultSettings: Settings = {
  ...defaultRuntimeSettings,
  shimCgroup: '',
  groupPolicy: 'container',
  logLevel: 'info',
};

/** A settings source that is malformed; the message says which key and what is allowed. */
export class SettingsError extends Error {
  override readonly name = 'SettingsError';
}

/** The fields of a decoded `containerd.runc.v1.Options` that tsrun reads (protobufjs camelCase). */
export interface RuncOptionsFields {
  readonly noPivotRoot?: boolean | null;
  readonly noNewKeyring?: boolean | null;
  readonly shimCgroup?: string | null;
  readonly ioUid?: number | null;
  readonly ioGid?: number | null;
  readonly binaryName?: string | null;
  readonly root?: string | null;
  readonly systemdCgroup?: boolean | null;
  readonly criuImagePath?: string | null;
  readonly criuWorkPath?: string | null;
}

/** Settings from runc Options; empty strings keep the defaults, as the Go shim does. */
export function settingsFromRuncOptions(options: RuncOptionsFields, base: Settings = defaultSettings): Settings {
  return {
    ...base,
    binaryName: nonEmpty(options.binaryName) ?? base.binaryName,
    root: nonEmpty(options.root) ?? base.root,
    systemdCgroup: options.systemdCgroup ?? base.systemdCgroup,
    noPivotRoot: options.noPivotRoot ?? base.noPivotRoot,
    noNewKeyring: options.noNewKeyring ?? base.noNewKeyring,
    ioUid: options.ioUid ?? base.ioUid,
    ioGid: options.ioGid ?? base.ioGid,
    shimCgroup: nonEmpty(options.shimCgroup) ?? base.shimCgroup,
    criuImagePath: nonEmpty(options.criuImagePath) ?? base.criuImagePath,
    criuWorkPath: nonEmpty(options.criuWorkPath) ?? base.criuWorkPath,
  };
}

const logLevels: readonly LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'];

/**
 * Settings from the TOML of `runtimeoptions.v1.Options` (CRI's runtime `options`
 * table). Unknown keys are ignored (CRI passes the whole table).
 * @throws SettingsError when the TOML does not parse or a known key has the wrong type.
 */
export function settingsFromToml(text: string, base: Settings = defaultSettings, source = 'runtime options'): Settings {
  let table: Record<string, unknown>;
  try {
    table = parseToml(text);
  } catch (error) {
    throw new SettingsError(`${source}: not valid TOML: ${error instanceof Error ? error.message : String(error)}`);
  }
  const read = new TomlReader(table, source);
  const policyName = read.string('GroupPolicy');
  let groupPolicy = base.groupPolicy;
  if (policyName !== undefined) {
    const parsed = parseGroupPolicy(policyName);
    if (parsed === undefined) {
      throw new SettingsError(`${source}: GroupPolicy "${policyName}" is not one of "container", "pod", "namespace"`);
    }
    groupPolicy = parsed;
  }
  const levelName = read.string('LogLevel');
  let logLevel = base.logLevel;
  if (levelName !== undefined) {
    const level = logLevels.find((l) => l === levelName.toLowerCase());
    if (level === undefined) throw new SettingsError(`${source}: LogLevel "${levelName}" is not one of ${logLevels.join(', ')}`);
    logLevel = level;
  }
  return {
    ...settingsFromRuncOptions(
      {
        binaryName: read.string('BinaryName') ?? null,
        root: read.string('Root') ?? null,
        systemdCgroup: read.boolean('SystemdCgroup') ?? null,
        noPivotRoot: read.boolean('NoPivotRoot') ?? null,
        noNewKeyring: read.boolean('NoNewKeyring') ?? null,
        ioUid: read.uint32('IoUid') ?? null,
        ioGid: read.uint32('IoGid') ?? null,
        shimCgroup: read.string('ShimCgroup') ?? null,
        criuImagePath: read.string('CriuImagePath') ?? null,
        criuWorkPath: read.string('CriuWorkPath') ?? null,
      },
      base,
    ),
    groupPolicy,
    logLevel,
  };
}

class TomlReader {
  readonly #table: Record<string, unknown>;
  readonly #source: string;

  constructor(table: Record<string, unknown>, source: string) {
    this.#table = table;
    this.#source = source;
  }

  string(key: string): string | undefined {
    const value = this.#table[key];
    if (value === undefined) return undefined;
    if (typeof value !== 'string') throw new SettingsError(`${this.#source}: ${key} must be a string`);
    return value;
  }

  boolean(key: string): boolean | undefined {
    const value = this.#table[key];
    if (value === undefined) return undefined;
    if (typeof value !== 'boolean') throw new SettingsError(`${this.#source}: ${key} must be true or false`);
    return value;
  }

  uint32(key: string): number | undefined {
    const value = this.#table[key];
    if (value === undefined) return undefined;
    const n = typeof value === 'bigint' ? Number(value) : value;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > 0xffffffff) {
      throw new SettingsError(`${this.#source}: ${key} must be an integer from 0 to 4294967295`);
    }
    return n;
  }
}

function nonEmpty(value: string | null | undefined): string | undefined {
  return value === undefined || value === null || value === '' ? undefined : value;
}
