#!/usr/bin/env bash
# The whole test suite on a fresh machine, as root: system packages, npm ci (builds the helper and the
# TypeScript), then type-check, lint, unit and integration tests.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "scripts/test-all.sh: run as root (the integration tests create namespaces, mounts and cgroups)" >&2
  exit 1
fi

packages=(gcc libc6-dev make iproute2 util-linux procps runc busybox-static nftables attr docker.io
  podman conmon containerd bsdutils  # engines.test.ts: dockerd, podman and ctr drive berth-oci; `script` gives ttys
  docker-registry skopeo umoci openssl  # distribution-*.test.ts: a real registry, independent push/inspect, token certs
  zstd  # images-zstd.test.ts: tar+zstd layers made by the real tool
  python3)  # oci.test.ts: a console-socket receiver (socket.recv_fds)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

npm ci --no-audit --no-fund
npm test
