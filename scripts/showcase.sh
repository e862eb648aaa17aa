#!/usr/bin/env bash
# Runs the quick tutorial programs (examples/threading, examples/futures) from a build tree,
# each under a heading, with stdin from /dev/null. Exits non-zero if any program fails.
#
# Usage: scripts/showcase.sh BUILD_DIR
#   e.g. cmake --preset release && cmake --build --preset release &&
#        scripts/showcase.sh build/release
set -uo pipefail

if [[ $# -ne 1 ]]; then
  echo "usage: $0 BUILD_DIR" >&2
  exit 2
fi
examples_dir="$1/examples"
if [[ ! -d $examples_dir ]]; then
  echo "$0: no $examples_dir: build the project (with SPINDLE_BUILD_EXAMPLES=ON) first" >&2
  exit 2
fi

# program [arguments]|what it shows
showcase=(
  "many_threads_sleeping|ten threads sleep 1 s each and finish together in about 1 s"
  "thread_subclass_result|a Thread subclass keeps its result, read after join()"
  "concurrent_find_replace|one thread per file: find and replace in 10 temporary files"
  "race_condition_lost_update|a lost update without a lock (20), none with a Lock (30)"
  "bank_account_lock|five customers share an account guarded by a Lock"
  "thread_safe_counter|5 threads x 100,000 increments under a Lock"
  "event_signalling|an Event releases waiting threads, and stops a worker early"
  "producer_consumer_queue|producers and consumers over a Queue, with task_done() and join()"
  "repeating_timer|a Timer subclass reports progress while the main thread computes"
  "pool_submit_result|submit() two 1 s calls to a ThreadPoolExecutor; result() waits for each"
  "map_squares|executor.map with max_workers=3 returns the squares in input order"
  "pool_thread_safe_counter|5 pool tasks x 100,000 increments under a Lock"
  "as_completed_random_sleeps 0.1|as_completed yields ten random sleeps (0.1-1 s) as they finish"
)

failed=()
for entry in "${showcase[@]}"; do
  command=${entry%%|*}
  summary=${entry#*|}
  read -r -a words <<<"$command"
  program=${words[0]}
  printf '\n=== %s: %s ===\n' "$command" "$summary"
  if [[ ! -x $examples_dir/$program ]]; then
    echo "missing: $examples_dir/$program" >&2
    failed+=("$program")
    continue
  fi
  "$examples_dir/$program" "${words[@]:1}" </dev/null
  status=$?
  if [[ $status -ne 0 ]]; then
    echo "$program failed (exit status $status)" >&2
    failed+=("$program")
  fi
done

echo
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "Failed: ${failed[*]}" >&2
  exit 1
fi
echo "All ${#showcase[@]} examples ran successfully."
