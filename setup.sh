#!/usr/bin/env bash
# Installs every Debian package this project needs. Idempotent: quiet when all is present.
# Usage: ./setup.sh        (as root, or with sudo available)
set -euo pipefail

packages=(
  g++ bazel-bootstrap bazel-rules-java
  libboost-dev libboost-fiber-dev libboost-context-dev
  libbenchmark-dev libbenchmark-tools libgtest-dev
  liburing-dev nlohmann-json3-dev libcli11-dev libfmt-dev
  python3 python3-matplotlib python3-numpy python3-scipy python3-jsonschema python3-gevent
  iproute2 procps socat slurm-wlm munge
  linux-perf
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "setup.sh: apt-get not found; install these Debian packages by hand: ${missing[*]}" >&2
  exit 1
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    sudo=(sudo)
  else
    echo "setup.sh: not root and no sudo; as root run: apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi

echo "setup.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq >/dev/null
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup.sh: done" >&2
