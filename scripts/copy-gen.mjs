// Copies the generated protobufjs modules (JS + declarations) into build/ before
// tsc -b runs: tsc does not emit a .js that sits beside its own .d.ts, and the
// projects that reference protos/ resolve build/protos/gen/*.d.ts.
import { cpSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const from = join(root, 'protos', 'gen');
const to = join(root, 'build', 'protos', 'gen');
mkdirSync(to, { recursive: true });
for (const name of readdirSync(from)) {
  if (name.endsWith('.js') || name.endsWith('.d.ts')) cpSync(join(from, name), join(to, name));
}
