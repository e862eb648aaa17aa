#!/usr/bin/env python3
"""The Python peer of bench/multiprocessing_side_by_side.cpp: the same workloads through
multiprocessing and concurrent.futures.ProcessPoolExecutor, two worker processes.

Usage: multiprocessing_workloads.py WORKLOAD N [START_METHOD]

    tasks N      N tiny tasks on ProcessPoolExecutor(2), collected with as_completed: tasks/s
    roundtrip N  submit(f).result(), N times: microseconds per round trip
    map N        Pool(2).map(f, range(N)) with the default chunksize: seconds
    primes L     primes below L by trial division in 64 chunks, sequential and on
                 ProcessPoolExecutor(2): the speedup
    startup N    Process(target).start() until the child's first message arrives, N times: ms
    pipe N       a 16-byte message to a child and back through Pipe(), N times: microseconds
    bulk N       N messages of 1 MiB to a child through Pipe() (send_bytes): MiB/s

Pools are started and warmed up before the clock starts. START_METHOD (default: Python's
default) is passed to multiprocessing.get_context. Prints one line:

    result workload=<name> value=<float> unit=<unit> items=<N> seconds=<float> python=<version>
"""

import multiprocessing
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed

WORKERS = 2
CHUNKS = 64
MIB = 1 << 20


def tiny(x):
    return x + 1


def count_primes(bounds):
    low, high = bounds
    count = 0
    for n in range(max(low, 2), high):
        if n % 2 == 0:
            count += n == 2
            continue
        d = 3
        prime = True
        while d * d <= n:
            if n % d == 0:
                prime = False
                break
            d += 2
        count += prime
    return count


def chunks(limit):
    step = (limit + CHUNKS - 1) // CHUNKS
    return [(i, min(i + step, limit)) for i in range(0, limit, step)]


def hello(connection):
    connection.send(b"up")


def echo(connection):
    while True:
        message = connection.recv_bytes()
        if not message:
            return
        connection.send_bytes(message)


def sink(connection, count):
    for _ in range(count):
        connection.recv_bytes()
    connection.send_bytes(b"done")


def warm(executor):
    list(executor.map(tiny, range(WORKERS * 4)))


def main():
    workload, n = sys.argv[1], int(sys.argv[2])
    context = multiprocessing.get_context(sys.argv[3] if len(sys.argv) > 3 else None)
    unit = ""
    if workload == "tasks":
        with ProcessPoolExecutor(WORKERS, mp_context=context) as executor:
            warm(executor)
            start = time.perf_counter()
            total = sum(f.result() for f in as_completed([executor.submit(tiny, i) for i in range(n)]))
            seconds = time.perf_counter() - start
        assert total == n * (n + 1) // 2
        value, unit = n / seconds, "tasks/s"
    elif workload == "roundtrip":
        with ProcessPoolExecutor(WORKERS, mp_context=context) as executor:
            warm(executor)
            start = time.perf_counter()
            for i in range(n):
                executor.submit(tiny, i).result()
            seconds = time.perf_counter() - start
        value, unit = seconds / n * 1e6, "us"
    elif workload == "map":
        with context.Pool(WORKERS) as pool:
            pool.map(tiny, range(WORKERS * 4))
            start = time.perf_counter()
            results = pool.map(tiny, range(n))
            seconds = time.perf_counter() - start
        assert len(results) == n
        value, unit = seconds, "s"
    elif workload == "primes":
        start = time.perf_counter()
        sequential = sum(count_primes(c) for c in chunks(n))
        sequential_seconds = time.perf_counter() - start
        with ProcessPoolExecutor(WORKERS, mp_context=context) as executor:
            warm(executor)
            start = time.perf_counter()
            parallel = sum(executor.map(count_primes, chunks(n)))
            seconds = time.perf_counter() - start
        assert sequential == parallel
        value, unit = sequential_seconds / seconds, "x"
    elif workload == "startup":
        total = 0.0
        for _ in range(n):
            mine, theirs = context.Pipe()
            process = context.Process(target=hello, args=(theirs,))
            start = time.perf_counter()
            process.start()
            mine.recv()
            total += time.perf_counter() - start
            process.join()
        seconds = total
        value, unit = total / n * 1e3, "ms"
    elif workload == "pipe":
        mine, theirs = context.Pipe()
        process = context.Process(target=echo, args=(theirs,))
        process.start()
        message = b"x" * 16
        mine.send_bytes(message)
        mine.recv_bytes()
        start = time.perf_counter()
        for _ in range(n):
            mine.send_bytes(message)
            mine.recv_bytes()
        seconds = time.perf_counter() - start
        mine.send_bytes(b"")
        process.join()
        value, unit = seconds / n * 1e6, "us"
    elif workload == "bulk":
        mine, theirs = context.Pipe()
        process = context.Process(target=sink, args=(theirs, n))
        process.start()
        message = b"x" * MIB
        start = time.perf_counter()
        for _ in range(n):
            mine.send_bytes(message)
        mine.recv_bytes()
        seconds = time.perf_counter() - start
        process.join()
        value, unit = n / seconds, "MiB/s"
    else:
        sys.exit(f"unknown workload {workload}")
    print(f"result workload={workload} value={value:.6g} unit={unit} items={n} "
          f"seconds={seconds:.6g} python={platform.python_version()}", flush=True)


if __name__ == "__main__":
    main()
