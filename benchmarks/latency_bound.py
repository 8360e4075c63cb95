"""How close does a run come to the teacher's in-flight limit when the teacher is slow?

    .venv/bin/python benchmarks/latency_bound.py                      # every profile, limit and latency
    .venv/bin/python benchmarks/latency_bound.py --profiles self-instruct --in-flight 32 --latencies 0.2
    .venv/bin/python benchmarks/latency_bound.py --baseline-repo /tmp/old-checkout   # and that version
    .venv/bin/python benchmarks/latency_bound.py --startup            # where a 5-instruction run's time goes

With a real teacher, a run's speed is set by latency: by Little's law it can send at most
`in-flight limit / latency` requests per second. This starts the OpenAI-compatible test server
(`tests/fake_openai.py`, in its own process, as a real server is) answering every request after a fixed
latency, grows a dataset with `--max-in-flight F --prompts-per-round F --no-cache` for each limit F and
latency, and prints requests/s, the limit and the efficiency (requests/s / limit). `--jitter J` draws
each answer's latency from [latency·(1-J), latency·(1+J)] instead, so answers arrive out of order.

Each run is sized to give the teacher `--windows` windows' worth of requests (F each; a run of one
window can only show its ramp), from each profile's requests per instruction. Requests count the
committed rounds' (stats.json `teacher.requests`); the answers of rounds abandoned once the target is
met are in the `answers` column. `cpu` is the share of the host's cores busy during the run (all
processes: the driver, the actors, the test server): near 1.0, the host's CPU, not latency, is what
bounds the run.

`--baseline-repo DIR` runs the same measurements on the code in DIR (a `git worktree` of an earlier
commit, say), interleaved with this checkout's, and prints the speedup. Each measurement runs in its
own process (Ray started and stopped there); the figures are the loop's own time (`wall_time_s` in
stats.json), not Ray's start-up, which `--startup` measures on its own.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SEEDS = REPO / "seeds" / "175.jsonl"
PROFILES = {  # name -> (RunConfig settings, teacher requests per instruction, as measured)
    "self-instruct": ({"profile": "self-instruct"}, 2.4),  # propose, classify, instances
    "alpaca": ({"profile": "alpaca"}, 0.19),  # one proposal brings several with their answers
    "evolve": (
        {"profile": "self-instruct", "evolve_rounds": 2},
        12.0,
    ),  # + 2 x (evolve, judge, answer, 2 scores)
}

# One measurement, run in a child process with the code under test on sys.path.
CHILD = r"""
import json, sys
from pathlib import Path
from generator.config import RunConfig
from generator.run import run

spec = json.loads(sys.argv[1])
summary = run(RunConfig(**spec))
teacher = summary["teacher"]
print(json.dumps({"requests": teacher["requests"], "seconds": summary["wall_time_s"],
                  "answers": teacher.get("in_flight", {}).get("answers", teacher["requests"]),
                  "rows": summary["counts"]["dataset_rows"]}))
"""


@contextmanager
def test_server(latency: float, jitter: float) -> Iterator[str]:
    """This checkout's test server in its own process; yields its base URL."""
    args = [sys.executable, "-m", "tests.fake_openai", "--port", "0", "--delay", str(latency)]
    args += ["--jitter", str(jitter)]
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def cpu_times() -> tuple[float, float]:
    """(busy, total) jiffies of every core since boot (/proc/stat)."""
    fields = [float(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def measure(
    code: Path, url: str, profile: str, in_flight: int, target: int, latency: float, similarity: bool
) -> dict:
    settings, _ = PROFILES[profile]
    if not similarity:  # dedup decisions only: no top-10 neighbours per kept item (the pool's big CPU cost)
        settings = {**settings, "dedup": [{"name": "rouge_l", "params": {"similarity": False}}]}
    with tempfile.TemporaryDirectory() as tmp:
        spec = {
            "seeds": str(SEEDS),
            "out": f"{tmp}/out",
            "target": target,
            "teacher": "openai",
            "model": "fake",
            "base_url": url,
            "cache": False,
            "max_in_flight": in_flight,
            "prompts_per_round": in_flight,
            "seed": 1,
            "max_retries": 2,
            **settings,
        }
        env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONPATH": str(code)}
        busy0, total0 = cpu_times()
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, json.dumps(spec)],
            cwd=code,
            env=env,
            capture_output=True,
            text=True,
            timeout=3600,
        )
        if proc.returncode != 0:
            raise SystemExit(f"measurement failed ({code}):\n{proc.stderr[-3000:]}")
        busy1, total1 = cpu_times()
        result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["cpu"] = (busy1 - busy0) / (total1 - total0)  # the whole child, start-up included
    rate = result["requests"] / result["seconds"]
    limit = in_flight / latency
    return {**result, "requests_per_s": rate, "limit": limit, "efficiency": rate / limit}


def startup(repeats: int) -> None:
    """Where the time of a 5-instruction run through an HTTP teacher goes, end to end."""
    script = r"""
import json, sys, time
t0 = time.perf_counter()
import ray
from generator.config import RunConfig
from generator.run import run
from generator.ray_runtime import ray_runtime
t1 = time.perf_counter()
ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
t2 = time.perf_counter()
summary = run(RunConfig(seeds=sys.argv[1], out=sys.argv[2], target=5, teacher="openai", model="fake",
                        base_url=sys.argv[3], cache=False, seed=1))
t3 = time.perf_counter()
ray.shutdown()
t4 = time.perf_counter()
print(json.dumps({"imports": t1 - t0, "ray.init": t2 - t1, "run": t3 - t2, "loop": summary["wall_time_s"],
                  "ray.shutdown": t4 - t3}))
"""
    print("| run | process | imports | ray.init | run() | of which the loop | ray.shutdown |")
    print("|---|---|---|---|---|---|---|")
    with test_server(0.0, 0.0) as url:
        for i in range(repeats):
            with tempfile.TemporaryDirectory() as tmp:
                env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONPATH": str(REPO)}
                started = time.perf_counter()
                proc = subprocess.run(
                    [sys.executable, "-c", script, str(SEEDS), f"{tmp}/out", url],
                    cwd=REPO,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=600,
                )
                total = time.perf_counter() - started
                if proc.returncode != 0:
                    raise SystemExit(proc.stderr[-3000:])
                t = json.loads(proc.stdout.strip().splitlines()[-1])
                print(
                    f"| {i + 1} | {total:.2f} | {t['imports']:.2f} | {t['ray.init']:.2f} | {t['run']:.2f} | "
                    f"{t['loop']:.2f} | {t['ray.shutdown']:.2f} |",
                    flush=True,
                )


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[2], formatter_class=argparse.RawTextHelpFormatter
    )
    p.add_argument("--profiles", nargs="+", default=list(PROFILES), choices=list(PROFILES))
    p.add_argument(
        "--in-flight",
        type=int,
        nargs="+",
        default=[8, 32, 128],
        help="in-flight limits (and proposals per round)",
    )
    p.add_argument("--latencies", type=float, nargs="+", default=[0.2, 2.0], help="seconds per answer")
    p.add_argument("--jitter", type=float, default=0.0, help="random share of the latency, e.g. 0.5")
    p.add_argument("--windows", type=float, default=25.0, help="windows' worth of requests per run")
    p.add_argument(
        "--no-similarity", action="store_true", help="dedup without the top-10 neighbours of each kept item"
    )
    p.add_argument("--baseline-repo", type=Path, default=None, help="also measure the code in this folder")
    p.add_argument("--startup", action="store_true", help="only report where a 5-instruction run's time goes")
    args = p.parse_args()
    if args.startup:
        startup(3)
        return

    print(
        "| code | profile | in flight | latency s | requests | answers | seconds | requests/s | limit | efficiency | cpu |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    runs = [("this", REPO)] + ([("baseline", args.baseline_repo)] if args.baseline_repo else [])
    for latency in args.latencies:
        with test_server(latency, args.jitter) as url:
            for profile in args.profiles:
                for in_flight in args.in_flight:
                    target = max(5, round(args.windows * in_flight / PROFILES[profile][1]))
                    found = {}
                    for name, code in runs:
                        r = found[name] = measure(
                            code, url, profile, in_flight, target, latency, not args.no_similarity
                        )
                        print(
                            f"| {name} | {profile} | {in_flight} | {latency:g} | {r['requests']} | "
                            f"{r['answers']} | {r['seconds']:.1f} | {r['requests_per_s']:.1f} | "
                            f"{r['limit']:.0f} | {r['efficiency']:.2f} | {r['cpu']:.2f} |",
                            flush=True,
                        )
                    if "baseline" in found:
                        speedup = found["this"]["requests_per_s"] / found["baseline"]["requests_per_s"]
                        print(
                            f"| speedup | {profile} | {in_flight} | {latency:g} | | | | {speedup:.2f}x | | | |",
                            flush=True,
                        )


if __name__ == "__main__":
    main()
