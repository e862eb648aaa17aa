#!/bin/sh
# with_spindle_serve.sh SPINDLE PROGRAM [--twice] [ARG...]
# Starts `SPINDLE serve --port 0`, reads the base URL from the first line it prints, runs
# `PROGRAM BASE_URL ARG...` (twice with --twice), then stops the server. Exits with the
# program's status, printing "example exited with status N" when it is not 0.
set -u
spindle=$1
program=$2
shift 2
runs=1
if [ "${1:-}" = "--twice" ]; then
  runs=2
  shift
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkfifo "$work/address"
"$spindle" serve --port 0 >"$work/address" &
server=$!
exec 3<"$work/address"  # kept open until the end, so the server never writes to a closed pipe
if ! read -r base <&3 || [ -z "$base" ]; then
  echo "example exited with status 1: spindle serve printed no address"
  kill "$server" 2>/dev/null
  exit 1
fi
status=0
while [ "$runs" -gt 0 ] && [ "$status" -eq 0 ]; do
  "$program" "$base" "$@" </dev/null
  status=$?
  runs=$((runs - 1))
done
kill "$server" 2>/dev/null
wait "$server" 2>/dev/null
exec 3<&-
if [ "$status" -ne 0 ]; then
  echo "example exited with status $status"
fi
exit "$status"
