#!/usr/bin/env bash
# Puts containerd-shim-tsrun-v1 on containerd's PATH: a symlink in /usr/local/bin
# (or the directory given as $1) to this repository's built bin/containerd-shim-tsrun-v1.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
dest=${1:-/usr/local/bin}
if [ ! -x "$repo/bin/containerd-shim-tsrun-v1" ]; then
  echo "install-shim: $repo/bin/containerd-shim-tsrun-v1 is missing: run 'npm ci && npm run build' first" >&2
  exit 1
fi
ln -sfn "$repo/bin/containerd-shim-tsrun-v1" "$dest/containerd-shim-tsrun-v1"
echo "installed $dest/containerd-shim-tsrun-v1 -> $repo/bin/containerd-shim-tsrun-v1"
echo "run containers with: ctr run --runtime io.containerd.tsrun.v1 <image> <id> <command>"
