#!/usr/bin/env bash
# Builds spindle with a CMake preset and runs the whole test suite under ctest.
#
#   scripts/test.sh            # release (also tests the installed package)
#   scripts/test.sh tsan       # or debug, asan
#
# Installs any missing Debian packages first (scripts/install-deps.sh; a no-op when all
# are present).
set -euo pipefail
cd "$(dirname "$0")/.."
preset="${1:-release}"

scripts/install-deps.sh
cmake --preset "$preset"
cmake --build --preset "$preset"
ctest --preset "$preset"
