/**
 * What containerd writes on the shim's stdin for `start` (and `-info`), decoded
 * into tsrun's settings (facts sections 2.10 and 2.15):
 *
 * - containerd 1.6 to 2.2: `proto.Marshal(Any)` of the runtime options (runc
 *   Options, or CRI's runtimeoptions.v1.Options), or nothing at all.
 * - containerd 2.3+: a `BootstrapParams` whose `extensions` carry that Any. A
 *   legacy Any can also decode as BootstrapParams (field 1 `type_url` reads as
 *   `instance_id`, field 2 `value` as `namespace`), so BootstrapParams are
 *   recognised only when `instance_id` and `namespace` equal the `-id` and
 *   `-namespace` flags, as containerd's pkg/shim/compat.go does; anything else is
 *   the legacy form (where containerd main refuses, we fall back).
 */
import { readFileSync } from 'node:fs';
import { containerd, google, typeNameOf, unpackAnyAs } from '../protos/index.js';
import { defaultSettings, settingsFromRuncOptions, settingsFromToml, SettingsError, type Settings } from './settings.js';

/** The 2.3 bootstrap parameters tsrun uses. */
export interface Bootstrap {
  readonly containerdVersion: string;
  readonly ttrpcAddress: string;
  readonly grpcAddress: string;
  /** '' means containerd's default (/run/containerd/s). */
  readonly socketDir: string;
}

/** Decoded stdin: settings, and the bootstrap parameters when containerd 2.3+ sent them. */
export interface StartInput {
  readonly settings: Settings;
  readonly bootstrap: Bootstrap | undefined;
}

/**
 * Decodes `start`/`-info` stdin.
 * @throws SettingsError when the options are present but unusable (the message says why).
 */
export function decodeStartInput(stdin: Uint8Array, id: string, namespace: string): StartInput {
  if (stdin.length === 0) return { settings: defaultSettings, bootstrap: undefined };
  const params = tryBootstrapParams(stdin, id, namespace);
  if (params !== undefined) {
    const extension = params.extensions.map((e) => e.value).find((any) => any !== null && any !== undefined && isOptionsType(any.type_url ?? ''));
    return {
      settings: extension === undefined || extension === null ? defaultSettings : settingsFromAny(extension),
      bootstrap: {
        containerdVersion: params.containerdVersion,
        ttrpcAddress: params.containerdTtrpcAddress,
        grpcAddress: params.containerdGrpcAddress,
        socketDir: params.socketDir ?? '',
      },
    };
  }
  let any: google.protobuf.Any;
  try {
    any = google.protobuf.Any.decode(stdin);
  } catch (error) {
    throw new SettingsError(`runtime options on stdin are not a protobuf Any: ${error instanceof Error ? error.message : String(error)}`);
  }
  return { settings: settingsFromAny(any), bootstrap: undefined };
}

/**
 * Settings from a runtime options Any: runc Options or CRI's runtimeoptions.
 * An unknown type is refused, naming what is accepted.
 */
export function settingsFromAny(any: google.protobuf.Any.$Properties): Settings {
  const typeUrl = any.type_url ?? '';
  if (typeUrl === '' && (any.value === undefined || any.value === null || any.value.length === 0)) return defaultSettings;
  const name = typeNameOf(typeUrl);
  try {
    if (name === 'containerd.runc.v1.Options') {
      return settingsFromRuncOptions(unpackAnyAs(any, 'containerd.runc.v1.Options'));
    }
    if (name === 'runtimeoptions.v1.Options') {
      const options = unpackAnyAs(any, 'runtimeoptions.v1.Options');
      const path = options.configPath;
      if (path !== '') {
        let text: string;
        try {
          text = readFileSync(path, 'utf8');
        } catch (error) {
          throw new SettingsError(`runtime options config_path '${path}' cannot be read: ${error instanceof Error ? error.message : String(error)}`);
        }
        return settingsFromToml(text, defaultSettings, path);
      }
      return settingsFromToml(Buffer.from(options.configBody).toString('utf8'), defaultSettings, 'runtime options config_body');
    }
  } catch (error) {
    if (error instanceof SettingsError) throw error;
    throw new SettingsError(`runtime options of type '${typeUrl}' do not decode: ${error instanceof Error ? error.message : String(error)}`);
  }
  throw new SettingsError(`runtime options of type '${typeUrl}' are not supported: send containerd.runc.v1.Options or runtimeoptions.v1.Options`);
}

function isOptionsType(typeUrl: string): boolean {
  const name = typeNameOf(typeUrl);
  return name === 'containerd.runc.v1.Options' || name === 'runtimeoptions.v1.Options';
}

function tryBootstrapParams(stdin: Uint8Array, id: string, namespace: string): containerd.runtime.bootstrap.v1.BootstrapParams | undefined {
  let params: containerd.runtime.bootstrap.v1.BootstrapParams;
  try {
    params = containerd.runtime.bootstrap.v1.BootstrapParams.decode(stdin);
  } catch {
    return undefined;
  }
  return params.instanceId === id && params.namespace === namespace && id !== '' ? params : undefined;
}
