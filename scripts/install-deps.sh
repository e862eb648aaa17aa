#!/usr/bin/env bash
# Installs the Debian packages spindle needs to build, test and benchmark.
# Idempotent: when every package is already installed it does nothing (no apt-get update).
#
#   scripts/install-deps.sh            # build + test + benchmark packages
#   scripts/install-deps.sh --minimal  # only what building and testing the library needs
set -euo pipefail

build_packages=(
  build-essential cmake ninja-build pkg-config git
  clang clang-format libclang-rt-14-dev
  libfmt-dev libgtest-dev libgmock-dev googletest
  libuv1-dev libcurl4-openssl-dev libcereal-dev libcli11-dev nlohmann-json3-dev libsqlite3-dev
  curl nginx-light wrk
)
bench_packages=(
  libbenchmark-dev libtbb-dev libasio-dev libthread-pool-dev python3 python3-uvloop
)

packages=("${build_packages[@]}")
if [[ "${1:-}" != "--minimal" ]]; then
  packages+=("${bench_packages[@]}")
fi

missing=()
for package in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
  if [[ "$status" != "install ok installed" ]]; then
    missing+=("$package")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install-deps: all ${#packages[@]} packages are installed"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then
  sudo_cmd=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
