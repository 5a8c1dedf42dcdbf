/**
 * Validation of container and exec ids. Ids become path components (bundle files,
 * pid files, runc state directories), so anything that could escape a directory or
 * confuse runc is refused up front with a sentence (DESIGN.md section 3, "Bad input
 * never takes the daemon down").
 */
import { invalidArgument } from './errors.js';

/** The longest id accepted (containerd's own identifiers allow 76 characters). */
export const MAX_ID_LENGTH = 76;

const ID_PATTERN = /^[A-Za-z0-9._-]+$/;

/** What an id names, for the error message. */
export type IdKind = 'container' | 'exec';

/** True when `id` is a valid container or exec id. */
export function isValidId(id: string): boolean {
  return id.length >= 1 && id.length <= MAX_ID_LENGTH && ID_PATTERN.test(id) && !id.includes('..') && id !== '.';
}

/**
 * Throws InvalidArgument unless `id` holds only letters, digits, '.', '_' and '-',
 * is 1 to 76 characters long, is not '.' and contains no '..'.
 */
export function validateId(kind: IdKind, id: string): void {
  if (isValidId(id)) return;
  throw invalidArgument(
    `${kind} id '${printable(id)}' is invalid: ids may hold letters, digits, '.', '_' and '-' (at most ${MAX_ID_LENGTH})`,
  );
}

/** The id as it may appear in a message: control characters escaped, long ids shortened. */
function printable(id: string): string {
  // eslint-disable-next-line no-control-regex
  const escaped = id.replace(/[\u0000-\u001f\u007f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
  return escaped.length > 100 ? `${escaped.slice(0, 100)}...` : escaped;
}
