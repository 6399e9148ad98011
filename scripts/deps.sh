#!/usr/bin/env bash
# Installs the Debian packages mstperf builds and tests with. Idempotent: it only calls apt-get
# when a package is missing, so `make build` can call it every time at no cost.
set -euo pipefail

PACKAGES=(
  cmake ninja-build g++ pkg-config make git curl ca-certificates
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler grpc-proto
  libabsl-dev libcurl4-openssl-dev prometheus-cpp-dev nlohmann-json3-dev
  libboost-dev libboost-system-dev libgtest-dev libgmock-dev googletest
  prometheus python3 python3-yaml
  ccache       # a second build tree (worktree, fresh clone) reuses compiled objects
  nginx-light  # bench/loadgen: a static SSE target that is never the bottleneck
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
