#!/usr/bin/env bash
# Runs a real container through tsrun on a fresh Debian 12 machine, as root:
# installs containerd, runc and busybox-static if missing, builds tsrun, starts a
# private containerd on an embedded config, imports a locally built busybox image
# and runs a container with --runtime io.containerd.tsrun.v1. Leaves nothing behind
# but the build.
set -euo pipefail
cd "$(dirname "$0")"
if [ "$(id -u)" != 0 ]; then echo "demo.sh: run as root (containerd and runc need it): sudo ./demo.sh" >&2; exit 1; fi
if ! command -v containerd >/dev/null || ! command -v runc >/dev/null || ! [ -x /bin/busybox ]; then
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends containerd runc busybox-static
fi
[ -d node_modules ] || npm ci --no-audit --no-fund
npm run build --silent
exec node build/integration/demo.js
