"""How many programs per second the sandbox runs, against plain `subprocess` in the same run.

    .venv/bin/python benchmarks/sandbox.py [--n 200] [--parallel 2] [--isolation all]

Each program is what the code domain's verifier runs, in small: a function and a few asserts on it
(each program a little different). The sandbox runs them with `run_many(parallel=2)`: a fresh temp dir,
the isolation wrapper (bwrap, unshare or none), the rlimits bootstrap, output capture. The baseline
runs the same sources with `subprocess.run([sys.executable, "-c", source])` from a pool of as many
threads: the cost of a Python process and nothing else. Both get a warm-up pass, then the measurements
alternate for --rounds rounds and each keeps its best (other load on the machine only slows a round
down); the ratio is sandboxed / plain executions per second (1.0 would be a free sandbox).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from generator import sandbox_child  # noqa: E402
from generator.sandbox import Limits, run_many  # noqa: E402


def program(i: int) -> str:
    return (
        f"def scale(xs, k={i % 7 + 2}):\n"
        "    return [x * k for x in xs]\n"
        f"assert scale([1, 2, 3]) == [{i % 7 + 2}, {2 * (i % 7 + 2)}, {3 * (i % 7 + 2)}]\n"
        f"assert sorted([{i}, 3, 1]) == sorted([1, 3, {i}])\n"
        f"assert ''.join(reversed('ab{i}')) == '{str(i)[::-1]}ba'\n"
        "print('ok')\n"
    )


def plain(sources: list[str], parallel: int) -> float:
    """Seconds to run every source as a bare `python -c`, `parallel` at a time."""

    def one(source: str) -> None:
        done = subprocess.run([sys.executable, "-c", source], capture_output=True, timeout=30)
        assert done.returncode == 0, done.stderr

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        list(pool.map(one, sources))
    return time.perf_counter() - start


def sandboxed(sources: list[str], parallel: int, isolation: str) -> float:
    """Seconds to run every source in the sandbox, `parallel` at a time."""
    start = time.perf_counter()
    results = run_many(sources, Limits(), parallel=parallel, isolation=isolation)
    elapsed = time.perf_counter() - start
    bad = [r for r in results if r.status != "ok"]
    assert not bad, bad[0]
    return elapsed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=200, help="programs per measurement (default %(default)s)")
    p.add_argument("--parallel", type=int, default=2, help="runs at a time (default %(default)s)")
    p.add_argument(
        "--rounds", type=int, default=3, help="alternating rounds, best kept (default %(default)s)"
    )
    p.add_argument(
        "--isolation",
        choices=[*sandbox_child.ISOLATIONS, "all"],
        help="default: the best this host has; all: each that works here",
    )
    args = p.parse_args(argv)
    if args.isolation == "all":
        isolations = [i for i in sandbox_child.ISOLATIONS if sandbox_child.works(i)]
    else:
        isolations = [args.isolation or sandbox_child.best_isolation()]

    sources = [program(i) for i in range(args.n)]
    warm = sources[: 2 * args.parallel]
    print(f"sandbox benchmark: {args.n} programs, {args.parallel} at a time, {os.cpu_count()} CPUs")
    measures: dict[str, Callable[[list[str]], float]] = {
        "plain subprocess": partial(plain, parallel=args.parallel)
    }
    for isolation in isolations:
        measures[f"sandbox ({isolation})"] = partial(sandboxed, parallel=args.parallel, isolation=isolation)
    best: dict[str, float] = {}
    for measure in measures.values():
        measure(warm)
    for _ in range(args.rounds):
        for name, measure in measures.items():
            best[name] = min(best.get(name, float("inf")), measure(sources))
    base = args.n / best["plain subprocess"]
    for name, seconds in best.items():
        rate = args.n / seconds
        ratio = "" if name == "plain subprocess" else f"  ratio {rate / base:.2f}"
        print(f"  {name:<18} {rate:7.1f} executions/s  ({1000 / rate * args.parallel:5.1f} ms each){ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
