"""The Python peers of bench/asyncio_side_by_side.cpp: asyncio and uvloop.

    python3 asyncio_side_by_side.py LOOP WORKLOAD N

LOOP is asyncio or uvloop; WORKLOAD is sleep (N tasks each sleeping 1 s, gathered),
trivial (N tasks that return at once, created then gathered) or empty (the interpreter and
the loop, no tasks: the baseline of the memory figure). Prints one line:
    wall=SECONDS peak_rss_kb=KB
"""
import asyncio
import resource
import sys
import time


async def sleeper():
    await asyncio.sleep(1)


async def trivial():
    pass


async def main(workload, n):
    if workload == "sleep":
        tasks = [asyncio.create_task(sleeper()) for _ in range(n)]
        await asyncio.gather(*tasks)
    elif workload == "trivial":
        tasks = [asyncio.create_task(trivial()) for _ in range(n)]
        await asyncio.gather(*tasks)


def run():
    loop_name, workload, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if loop_name == "uvloop":
        import uvloop
        uvloop.install()  # uvloop.run arrived in 0.18; Debian 12 has 0.17
    runner = asyncio.run
    start = time.perf_counter()
    runner(main(workload, n))
    wall = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"wall={wall:.6f} peak_rss_kb={rss}")


if __name__ == "__main__":
    run()
