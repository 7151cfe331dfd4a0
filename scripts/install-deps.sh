#!/usr/bin/env bash
# Installs every package scisearch needs to build, test and run, from Debian's archive only.
# Idempotent: when every package is already there it prints nothing and exits 0.
#   scripts/install-deps.sh          build + run + test dependencies
#   scripts/install-deps.sh --bench  also the peers the benchmarks compare against
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git ca-certificates
  clang-14 libclang-rt-14-dev clang-format
  libsqlite3-dev sqlite3 libxapian-dev libstemmer-dev libpoppler-cpp-dev libcpp-httplib-dev
  libhdf5-dev libjemalloc-dev
  libtiff-dev libpng-dev libjpeg-dev zlib1g-dev libdeflate-dev
  nlohmann-json3-dev libcli11-dev libspdlog-dev libfmt-dev
  libtorch-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  python3 python3-numpy
  nodejs npm chromium
)
if [[ "${1:-}" == "--bench" ]]; then
  packages+=(python3-hyperspy python3-scipy python3-pil time postgresql libpq-dev)
fi

missing=()
for p in "${packages[@]}"; do
  # Node.js may come from another Debian-format archive whose nodejs package
  # provides npm (and conflicts with Debian's): a working command is enough.
  if [[ $p == nodejs || $p == npm ]] && command -v "${p/nodejs/node}" >/dev/null; then
    continue
  fi
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

SUDO=""
[[ $(id -u) -ne 0 ]] && SUDO="sudo"
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
