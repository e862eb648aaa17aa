#!/usr/bin/env python3
"""The Python peer of bench/futures_side_by_side.cpp: the same workloads through
concurrent.futures.ThreadPoolExecutor(max_workers=2).

Usage: futures_workloads.py WORKLOAD N

    W1 N   N tiny tasks (each takes the next value of a shared counter) submitted from one
           thread, then wait for all: the task that takes the N-th value sets an Event.
    W2 N   submit one task and block on its result, N times in a row.
    W3 N   N tasks returning ints, collected with as_completed.
    W4 N   count the primes below N by trial division in 64 chunks, once sequentially and
           once on the pool; the figure is the speedup.

The pool is created and warmed up (its two threads started) before the clock starts. Prints
one machine-readable line:

    result workload=W1 value=<float> unit=<unit> items=<N> seconds=<float> python=<version>

W4 adds sequential_seconds=, pool_seconds= and primes=.
"""

import itertools
import platform
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed, wait

WORKERS = 2
CHUNKS = 64


def warm_up(executor):
    # Python starts a worker per submit until max_workers while none is idle: two tasks that
    # overlap start both threads.
    barrier = threading.Barrier(WORKERS)
    wait([executor.submit(barrier.wait) for _ in range(WORKERS)])


def w1(executor, n):
    counter = itertools.count(1)  # next() on it is atomic under the GIL
    done = threading.Event()

    def task():
        if next(counter) == n:
            done.set()

    start = time.perf_counter()
    for _ in range(n):
        executor.submit(task)
    done.wait()
    elapsed = time.perf_counter() - start
    if next(counter) != n + 1:
        raise SystemExit("W1 check failed")
    return n / elapsed, "tasks_per_second", elapsed, {}


def one():
    return 1


def w2(executor, n):
    total = 0
    start = time.perf_counter()
    for _ in range(n):
        total += executor.submit(one).result()
    elapsed = time.perf_counter() - start
    if total != n:
        raise SystemExit("W2 check failed")
    return elapsed / n * 1e6, "microseconds_per_round_trip", elapsed, {}


def identity(i):
    return i


def w3(executor, n):
    start = time.perf_counter()
    futures = [executor.submit(identity, i) for i in range(n)]
    total = 0
    for future in as_completed(futures):
        total += future.result()
    elapsed = time.perf_counter() - start
    if total != n * (n - 1) // 2:
        raise SystemExit("W3 check failed")
    return n / elapsed, "items_per_second", elapsed, {}


def is_prime(n):
    if n < 2:
        return False
    if n % 2 == 0:
        return n == 2
    d = 3
    while d * d <= n:
        if n % d == 0:
            return False
        d += 2
    return True


def count_primes(first, last):
    return sum(1 for n in range(first, last) if is_prime(n))


def chunks(limit):
    return [(limit * c // CHUNKS, limit * (c + 1) // CHUNKS) for c in range(CHUNKS)]


def w4(executor, limit):
    start = time.perf_counter()
    sequential = sum(count_primes(first, last) for first, last in chunks(limit))
    sequential_seconds = time.perf_counter() - start

    start = time.perf_counter()
    futures = [executor.submit(count_primes, first, last) for first, last in chunks(limit)]
    pooled = sum(future.result() for future in futures)
    pool_seconds = time.perf_counter() - start
    if pooled != sequential:
        raise SystemExit("W4 check failed")
    extra = {
        "sequential_seconds": f"{sequential_seconds:.6f}",
        "pool_seconds": f"{pool_seconds:.6f}",
        "primes": str(pooled),
    }
    return sequential_seconds / pool_seconds, "speedup", pool_seconds, extra


WORKLOADS = {"W1": w1, "W2": w2, "W3": w3, "W4": w4}


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in WORKLOADS:
        raise SystemExit(__doc__)
    workload = sys.argv[1]
    n = int(sys.argv[2])
    if n < 1:
        raise SystemExit("N must be at least 1")
    with ThreadPoolExecutor(max_workers=WORKERS) as executor:
        warm_up(executor)
        value, unit, seconds, extra = WORKLOADS[workload](executor, n)
    fields = [
        f"workload={workload}",
        f"value={value:.6g}",
        f"unit={unit}",
        f"items={n}",
        f"seconds={seconds:.6f}",
    ]
    fields += [f"{key}={text}" for key, text in extra.items()]
    fields.append(f"python={platform.python_version()}")
    print("result " + " ".join(fields))


if __name__ == "__main__":
    main()
