#!/usr/bin/env bash
# Sets everything up on a fresh Debian 12 machine, builds the Release preset and runs the
# main job: `spindle compare`, the tutorials' lesson measured on this machine (sequential vs
# threads vs processes vs asyncio, on waiting and on computing), with its timeline drawn.
# Extra arguments go to spindle compare (for example --quick). scripts/showcase.sh
# build/release runs the ported tutorial programs.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cmake --preset release
cmake --build --preset release
build/release/apps/spindle compare --svg timeline.svg --trace trace.json "$@"
