/**
 * Call metadata: the `repeated KeyValue metadata = 5` of the request envelope
 * (containerd/ttrpc metadata.go). Keys are case-insensitive: ttrpc-ts lower-cases
 * them in both directions, and a key may carry several values.
 */
import type { Metadata } from './service.js';

/** Metadata a client sends: key to one value or several. */
export type MetadataInit = Readonly<Record<string, string | readonly string[]>>;

/** One `ttrpc.KeyValue` as the envelope encodes it. */
export interface KeyValue {
  key: string;
  value: string;
}

/** What the envelope decoder yields for one KeyValue (protobufjs leaves defaults unset). */
interface DecodedKeyValue {
  key?: string | null;
  value?: string | null;
}

/** Flattens client metadata into envelope KeyValues, lower-casing keys. */
export function metadataToKeyValues(init: MetadataInit): KeyValue[] {
  const out: KeyValue[] = [];
  for (const [rawKey, values] of Object.entries(init)) {
    const key = rawKey.toLowerCase();
    if (typeof values === 'string') out.push({ key, value: values });
    else for (const value of values) out.push({ key, value });
  }
  return out;
}

/** Groups envelope KeyValues by lower-cased key, keeping the order of values. */
export function metadataFromKeyValues(pairs: readonly DecodedKeyValue[] | null | undefined): Metadata {
  if (pairs == null || pairs.length === 0) return new Map<string, readonly string[]>();
  const map = new Map<string, string[]>();
  for (const pair of pairs) {
    const key = (pair.key ?? '').toLowerCase();
    const value = pair.value ?? '';
    const list = map.get(key);
    if (list === undefined) map.set(key, [value]);
    else list.push(value);
  }
  return map;
}
