// Post-build steps that tsc cannot do: make the shim binary executable.
import { chmodSync, existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const bin = fileURLToPath(new URL('../bin/containerd-shim-tsrun-v1', import.meta.url));
if (existsSync(bin)) chmodSync(bin, 0o755);
