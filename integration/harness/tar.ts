/**
 * A minimal, deterministic ustar writer: enough to build an OCI image layer and an OCI
 * archive without network, without /bin/tar, and byte-for-byte reproducible (so digests
 * are stable and an image built twice is the same image).
 *
 * Only what image building needs: directories, regular files and symbolic links, owned by
 * root, with names of at most 100 bytes (or 255 with a split at a '/', ustar's prefix field).
 */

/** One member of a tar stream. Paths are relative ('bin/sh'), never absolute. */
export type TarEntry =
  | { readonly kind: 'directory'; readonly path: string; readonly mode: number }
  | { readonly kind: 'file'; readonly path: string; readonly mode: number; readonly data: Uint8Array }
  | { readonly kind: 'symlink'; readonly path: string; readonly target: string };

const BLOCK = 512;
/** A fixed modification time keeps the bytes (and so the digests) reproducible. */
const MTIME = 0;

/**
 * Serializes entries, in the given order, into a ustar stream ending with the two zero
 * blocks tar expects.
 *
 * @throws Error when a path or link target does not fit ustar's fields, or is absolute.
 */
export function createTar(entries: readonly TarEntry[]): Buffer {
  const chunks: Buffer[] = [];
  for (const entry of entries) {
    switch (entry.kind) {
      case 'directory':
        chunks.push(header(entry.path.endsWith('/') ? entry.path : `${entry.path}/`, entry.mode, 0, '5', ''));
        break;
      case 'file': {
        chunks.push(header(entry.path, entry.mode, entry.data.length, '0', ''));
        chunks.push(Buffer.from(entry.data.buffer, entry.data.byteOffset, entry.data.byteLength));
        const pad = (BLOCK - (entry.data.length % BLOCK)) % BLOCK;
        if (pad > 0) chunks.push(Buffer.alloc(pad));
        break;
      }
      case 'symlink':
        chunks.push(header(entry.path, 0o777, 0, '2', entry.target));
        break;
    }
  }
  chunks.push(Buffer.alloc(BLOCK * 2));
  return Buffer.concat(chunks);
}

function header(path: string, mode: number, size: number, type: '0' | '2' | '5', linkname: string): Buffer {
  if (path.startsWith('/')) throw new Error(`tar path '${path}' is absolute: image layers hold relative paths`);
  const [prefix, name] = splitPath(path);
  const block = Buffer.alloc(BLOCK);
  writeString(block, 0, 100, name, path);
  writeOctal(block, 100, 8, mode & 0o7777);
  writeOctal(block, 108, 8, 0); // uid
  writeOctal(block, 116, 8, 0); // gid
  writeOctal(block, 124, 12, size);
  writeOctal(block, 136, 12, MTIME);
  block.fill(0x20, 148, 156); // checksum is computed with its own field as spaces
  block.write(type, 156, 'latin1');
  writeString(block, 157, 100, linkname, linkname);
  block.write('ustar\u000000', 257, 'latin1'); // magic "ustar\0" + version "00"
  writeString(block, 265, 32, 'root', 'root');
  writeString(block, 297, 32, 'root', 'root');
  writeString(block, 345, 155, prefix, path);
  let sum = 0;
  for (const byte of block) sum += byte;
  // Six octal digits, NUL, space: the layout GNU tar and Go's archive/tar both write.
  block.write(`${sum.toString(8).padStart(6, '0')}\u0000 `, 148, 'latin1');
  return block;
}

/** ustar keeps names over 100 bytes as prefix (155) + '/' + name (100). */
function splitPath(path: string): [prefix: string, name: string] {
  if (Buffer.byteLength(path) <= 100) return ['', path];
  for (let i = path.lastIndexOf('/'); i > 0; i = path.lastIndexOf('/', i - 1)) {
    const prefix = path.slice(0, i);
    const name = path.slice(i + 1);
    if (Buffer.byteLength(prefix) <= 155 && Buffer.byteLength(name) <= 100 && name.length > 0) return [prefix, name];
  }
  throw new Error(`tar path '${path}' is too long for ustar (at most 100 bytes, or 255 split at a '/')`);
}

function writeString(block: Buffer, offset: number, length: number, value: string, what: string): void {
  const bytes = Buffer.from(value, 'utf8');
  if (bytes.length > length) throw new Error(`tar field '${what}' is ${bytes.length} bytes, more than ustar's ${length}`);
  bytes.copy(block, offset);
}

function writeOctal(block: Buffer, offset: number, length: number, value: number): void {
  const digits = value.toString(8);
  if (digits.length > length - 1) throw new Error(`tar numeric field value ${value} does not fit ${length - 1} octal digits`);
  block.write(`${digits.padStart(length - 1, '0')}\u0000`, offset, 'latin1');
}
