#!/usr/bin/env bash
# Sets everything up on a fresh Debian 12 machine, builds the Release preset and runs the
# showcase of the ported tutorial programs.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cmake --preset release
cmake --build --preset release
scripts/showcase.sh build/release
