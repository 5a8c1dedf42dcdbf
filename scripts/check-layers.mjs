// Fails when a source file imports against the layer direction of DESIGN.md
// section 1: shim -> core -> native, shim -> ttrpc, shim -> protos, ttrpc -> protos.
// (Import cycles are caught by madge on the build output.)
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

/** Which layers each layer may import. integration/ and bench/ sit on top of everything. */
const allowed = {
  protos: [],
  ttrpc: ['protos'],
  native: [],
  core: ['native'],
  shim: ['core', 'native', 'ttrpc', 'protos'],
  integration: ['shim', 'core', 'native', 'ttrpc', 'protos'],
  bench: ['integration', 'shim', 'core', 'native', 'ttrpc', 'protos'],
};

function sources(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (name === 'node_modules' || name === 'build' || name === 'gen') return [];
    if (statSync(path).isDirectory()) return sources(path);
    return name.endsWith('.ts') && !name.endsWith('.d.ts') ? [path] : [];
  });
}

const importRe = /(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;
const violations = [];
for (const [layer, deps] of Object.entries(allowed)) {
  for (const file of sources(join(root, layer))) {
    const text = readFileSync(file, 'utf8');
    for (const match of text.matchAll(importRe)) {
      const spec = match[1] ?? match[2];
      if (spec === undefined || !spec.startsWith('.')) continue;
      const target = relative(root, resolve(dirname(file), spec)).split(sep)[0];
      if (target === layer || target === undefined) continue;
      if (!deps.includes(target)) violations.push(`${relative(root, file)} imports '${spec}': ${layer}/ may not import ${target}/`);
    }
  }
}
if (violations.length > 0) {
  console.error(`layer check failed (DESIGN.md section 1):\n  ${violations.join('\n  ')}`);
  process.exit(1);
}
console.log('layer check: ok');
