#!/usr/bin/env python3
"""The Python peer of bench/queue_side_by_side.cpp: the same stream through queue.Queue.

2 producer threads put N items in all (N/2 each, then one sentinel each); 2 consumer threads
get until they see a sentinel. Time runs from before the threads start until the last one is
joined. Prints one line:

    items_per_second=<float> python=<version> items=<N> seconds=<float>

Usage: queue_stream.py [N]   (default 200000)
"""

import platform
import queue
import sys
import threading
import time

PRODUCERS = 2
CONSUMERS = 2
SENTINEL = None


def run_stream(n):
    q = queue.Queue()
    sums = [0] * CONSUMERS
    counts = [0] * CONSUMERS

    def consume(slot):
        total = 0
        count = 0
        while True:
            item = q.get()
            if item is SENTINEL:
                break
            total += item
            count += 1
        sums[slot] = total
        counts[slot] = count

    def produce(first, last):
        for i in range(first, last):
            q.put(i)
        q.put(SENTINEL)

    threads = [threading.Thread(target=consume, args=(c,)) for c in range(CONSUMERS)]
    threads += [
        threading.Thread(target=produce, args=(n * p // PRODUCERS, n * (p + 1) // PRODUCERS))
        for p in range(PRODUCERS)
    ]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start

    if sum(counts) != n or sum(sums) != n * (n - 1) // 2:
        raise SystemExit("stream check failed: items lost or duplicated")
    return elapsed


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    if n < 2:
        raise SystemExit("N must be at least 2")
    elapsed = run_stream(n)
    print(
        f"items_per_second={n / elapsed:.1f} python={platform.python_version()} "
        f"items={n} seconds={elapsed:.6f}"
    )


if __name__ == "__main__":
    main()
