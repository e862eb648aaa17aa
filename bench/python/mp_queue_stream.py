#!/usr/bin/env python3
"""The Python peer of bench/multiprocessing_shared_bench.cpp: the same streams through
multiprocessing.Queue, from a child process to the parent.

- small: a child Process puts N ints, then a sentinel; the parent gets until the sentinel.
- large: a child Process puts M messages of 1 MiB (bytes); the parent gets them.
Time runs from before the child starts until the parent has the last item and the child is
joined. Prints one line:

    small_items_per_second=<float> large_mib_per_second=<float> python=<version>

Usage: mp_queue_stream.py [N] [M]   (defaults 200000 and 200)
"""

import multiprocessing
import platform
import sys
import time

MIB = 1 << 20


def put_small(q, n):
    for i in range(n):
        q.put(i)
    q.put(None)


def put_large(q, m):
    payload = b"x" * MIB
    for _ in range(m):
        q.put(payload)


def small(n):
    q = multiprocessing.Queue()
    start = time.perf_counter()
    child = multiprocessing.Process(target=put_small, args=(q, n))
    child.start()
    total = 0
    count = 0
    while True:
        item = q.get()
        if item is None:
            break
        total += item
        count += 1
    child.join()
    elapsed = time.perf_counter() - start
    if count != n or total != n * (n - 1) // 2:
        raise SystemExit("small stream check failed")
    return n / elapsed


def large(m):
    q = multiprocessing.Queue()
    start = time.perf_counter()
    child = multiprocessing.Process(target=put_large, args=(q, m))
    child.start()
    for _ in range(m):
        if len(q.get()) != MIB:
            raise SystemExit("large stream check failed")
    child.join()
    elapsed = time.perf_counter() - start
    return m / elapsed


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    m = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    multiprocessing.set_start_method("fork")
    print(
        f"small_items_per_second={small(n):.1f} large_mib_per_second={large(m):.1f} "
        f"python={platform.python_version()}"
    )


if __name__ == "__main__":
    main()
