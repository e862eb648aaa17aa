#!/usr/bin/env python3
"""`spindle grep` side by side with GNU grep and Python, in one run, on the same files.

Counts the whole-word occurrences of a word in a set of large text files already in the page
cache, the tutorials' log-analysis exercise:

    spindle      spindle grep -j 2 WORD FILE...  (its own count per file and a total)
    grep -o -w   LC_ALL=C grep -o -w -F WORD FILE... | wc -l  (the reference count)
    grep -c -w   LC_ALL=C grep -c -w -F WORD FILE...  (counts matching lines, not words: the
                 classic `grep -c`; its figure is shown for speed only)
    python       the tutorial's Python version: a ThreadPoolExecutor(2) over the files, each
                 counted with len(re.findall(rb"\\bWORD\\b", mmap)) ("\\b" on bytes uses the same
                 ASCII word bytes as grep -w)
    python-mp    the same with a ProcessPoolExecutor(2) (Python's answer to the GIL)

Each peer runs --rounds times (the Python ones --python-rounds times); the figure is the best round, in GB/s (10^9 bytes per second)
of input, with the ratio of spindle's speed to the peer's, and the CPU time (user + system,
all threads and processes) of that round with the GB per CPU-second it gives: on a busy
machine the wall-clock figures measure the load, the CPU figures much less. Every count is
checked against grep -o -w's.

Usage: grep_side_by_side.py --spindle PATH [--files 4] [--file-mib 256] [--word the]
                            [--rounds 3] [--python-rounds 1] [--dir DIR] [--keep]
                            [--no-python]
"""

import argparse
import concurrent.futures
import mmap
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time

VOCABULARY = (
    b"the of and to in is was he for it with as his on be at by had are but from or have an "
    b"they which one you were all we her she there would their will when who him been has more "
    b"if no out do so can what up said about other into than its time only could new them man "
    b"some these then two first may any like now my such make over our even most me state after "
    b"also made many did must before back see through way where get much go well your know "
    b"should down work year because come people just say each those take day good how long "
    b"theory thesis other_the the_end 2024-01-02T03:04:05Z ERROR WARN INFO request=42 "
    b"user@example.com GET /index.html 200 404 500 The THE"
).split()


def make_files(directory, count, mib, seed=6):
    rng = random.Random(seed)
    block = bytearray()
    while len(block) < 8 << 20:
        line = b" ".join(rng.choice(VOCABULARY) for _ in range(rng.randint(4, 18)))
        block += line + rb"." + b"\n"
    paths = []
    for i in range(count):
        path = os.path.join(directory, f"log{i}.txt")
        with open(path, "wb") as out:
            written = 0
            while written < mib << 20:
                # Vary the block a little per file and per repetition.
                piece = bytes(block[rng.randrange(1024):])
                out.write(piece)
                written += len(piece)
        paths.append(path)
    return paths


def warm(paths):
    for path in paths:
        with open(path, "rb") as f:
            while f.read(1 << 24):
                pass


def count_python(args):
    path, word = args
    pattern = re.compile(rb"\b" + re.escape(word) + rb"\b")
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        return len(pattern.findall(m))


def run_python(paths, word, executor_type):
    with executor_type(max_workers=2) as pool:
        return sum(pool.map(count_python, [(p, word) for p in paths]))


def cpu_seconds():
    """CPU time (user + system) of this process and its finished children so far."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(function, rounds):
    """Best wall time of `rounds` calls, the CPU time of that call, and the value."""
    best = None
    best_cpu = None
    value = None
    for _ in range(rounds):
        cpu_start = cpu_seconds()
        start = time.perf_counter()
        value = function()
        elapsed = time.perf_counter() - start
        cpu = cpu_seconds() - cpu_start
        if best is None or elapsed < best:
            best, best_cpu = elapsed, cpu
    return best, best_cpu, value


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spindle", required=True, help="the spindle command")
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--file-mib", type=int, default=256)
    parser.add_argument("--word", default="the")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--python-rounds", type=int, default=1,
                        help="rounds for the (slow) Python peers")
    parser.add_argument("--dir", help="folder for the files (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the files")
    parser.add_argument("--no-python", action="store_true")
    options = parser.parse_args()

    directory = options.dir or tempfile.mkdtemp(prefix="spindle_grep_bench_")
    os.makedirs(directory, exist_ok=True)
    try:
        paths = make_files(directory, options.files, options.file_mib)
        total_bytes = sum(os.path.getsize(p) for p in paths)
        warm(paths)
        word = options.word
        env = dict(os.environ, LC_ALL="C")
        load = os.getloadavg()[0]
        print(f"grep_side_by_side: {len(paths)} files, {total_bytes / 1e9:.2f} GB, word "
              f"'{word}', best of {options.rounds}, {os.cpu_count()} cores, load average "
              f"{load:.2f} at start")

        def spindle():
            out = subprocess.run([options.spindle, "grep", "-j", "2", word] + paths,
                                 check=True, capture_output=True, text=True).stdout
            return int(out.strip().splitlines()[-1].split()[0])

        def grep_words():
            quoted = " ".join(f"'{p}'" for p in paths)
            out = subprocess.run(f"grep -o -w -F '{word}' {quoted} | wc -l", shell=True,
                                 check=True, capture_output=True, text=True, env=env).stdout
            return int(out)

        def grep_lines():
            out = subprocess.run(["grep", "-c", "-w", "-F", word] + paths, capture_output=True,
                                 text=True, env=env).stdout
            return sum(int(line.rsplit(":", 1)[1]) for line in out.splitlines())

        peers = [("spindle", spindle), ("grep -o -w", grep_words), ("grep -c -w", grep_lines)]
        if not options.no_python:
            peers.append(("python", lambda: run_python(paths, word.encode(),
                                                       concurrent.futures.ThreadPoolExecutor)))
            peers.append(("python-mp", lambda: run_python(paths, word.encode(),
                                                          concurrent.futures.ProcessPoolExecutor)))
        results = {}
        for name, function in peers:
            rounds = options.python_rounds if name.startswith("python") else options.rounds
            results[name] = timed(function, rounds)
        reference = results["grep -o -w"][2]
        spindle_seconds = results["spindle"][0]
        print(f"{'peer':<12} {'seconds':>8} {'GB/s':>7} {'spindle x':>10} {'CPU s':>7} "
              f"{'GB/CPU-s':>9}  count")
        for name, (seconds, cpu, value) in results.items():
            note = ""
            if name == "grep -c -w":
                note = " (matching lines)"
            elif value != reference:
                note = f" MISMATCH: reference {reference}"
            print(f"{name:<12} {seconds:8.3f} {total_bytes / seconds / 1e9:7.2f} "
                  f"{seconds / spindle_seconds:10.2f} {cpu:7.2f} "
                  f"{total_bytes / max(cpu, 1e-9) / 1e9:9.2f}  {value}{note}")
        mismatched = [n for n, (_, _, v) in results.items()
                      if n != "grep -c -w" and v != reference]
        return 1 if mismatched else 0
    finally:
        if not options.keep and not options.dir:
            shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
