// Runs the node:test files of the build output. `--unit` leaves out integration/
// and bench/ (they need root, containerd and runc); the default runs everything.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const unitOnly = process.argv.includes('--unit');
const only = process.argv.slice(2).filter((a) => !a.startsWith('--'));

function tests(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return tests(path);
    return name.endsWith('.test.js') ? [path] : [];
  });
}

const layers = unitOnly ? ['protos', 'ttrpc', 'native', 'core', 'shim'] : ['protos', 'ttrpc', 'native', 'core', 'shim', 'integration', 'bench'];
let files = layers.flatMap((layer) => {
  try {
    return tests(join(root, 'build', layer));
  } catch {
    return [];
  }
});
if (only.length > 0) files = files.filter((f) => only.some((o) => f.includes(o)));
if (files.length === 0) {
  console.error('no test files found under build/: run `npm run build` first');
  process.exit(1);
}
const result = spawnSync(process.execPath, ['--test', '--test-concurrency=1', ...files], { stdio: 'inherit' });
process.exit(result.status ?? 1);
