"""How close does a run come to the teacher's in-flight limit when the teacher is slow?

    .venv/bin/python benchmarks/latency_bound.py [--in-flight 8 32 128] [--latencies 0.2 2] [-n 300]
    .venv/bin/python benchmarks/latency_bound.py --baseline-repo /tmp/old-checkout   # and that version

With a real teacher, a run's speed is set by latency: by Little's law it can send at most
`in-flight limit / latency` requests per second. This starts the OpenAI-compatible test server
(`tests/fake_openai.py`) answering every request after a fixed latency, grows `-n` instructions with
`--max-in-flight F --prompts-per-round F --no-cache` for each limit F and latency, and prints requests/s,
the limit and the efficiency (requests/s / limit). `--jitter J` delays each answer by a random time in
[latency·(1-J), latency·(1+J)] instead, so answers arrive out of order.

`--baseline-repo DIR` runs the same measurements on the code in DIR (a `git worktree` of an earlier
commit, say), in the same invocation and interleaved with this checkout's, and prints the speedup.
Each measurement runs in its own process (Ray started and stopped there); the figures are the loop's
own time (`wall_time_s` in stats.json), not Ray's start-up.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SEEDS = REPO / "seeds" / "175.jsonl"

# One measurement, run in a child process with the code under test first on sys.path.
CHILD = r"""
import json, random, sys, time, zlib
from pathlib import Path
sys.path.insert(0, sys.argv[1])           # the code under test
sys.path.insert(1, sys.argv[2])           # this checkout, for the test server
import tests.fake_openai as fake_openai
from generator.config import RunConfig
from generator.run import run

seeds, out, in_flight, latency, jitter, target = sys.argv[3:9]
in_flight, latency, jitter, target = int(in_flight), float(latency), float(jitter), int(target)
with fake_openai.FakeOpenAI() as server:
    if jitter:
        answer = server.answer
        def jittered(body, chat):  # a delay drawn from the request itself: the same on every run
            rng = random.Random(zlib.crc32(json.dumps(body, sort_keys=True).encode()))
            time.sleep(latency * (1 + jitter * (2 * rng.random() - 1)))
            return answer(body, chat)
        server.answer = jittered
    else:
        server.delay = latency
    config = RunConfig(
        seeds=Path(seeds), out=Path(out), target=target, teacher="openai", model="fake",
        base_url=server.base_url, cache=False, max_in_flight=in_flight, prompts_per_round=in_flight,
        seed=1, max_retries=2,
    )
    summary = run(config)
print(json.dumps({"requests": summary["teacher"]["requests"], "seconds": summary["wall_time_s"],
                  "rows": summary["counts"]["dataset_rows"]}))
"""


def measure(code: Path, in_flight: int, latency: float, jitter: float, target: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONPATH": str(code)}
        args = [sys.executable, "-c", CHILD, str(code), str(REPO), str(SEEDS), f"{tmp}/out"]
        args += [str(in_flight), str(latency), str(jitter), str(target)]
        proc = subprocess.run(args, cwd=code, env=env, capture_output=True, text=True, timeout=3600)
        if proc.returncode != 0:
            raise SystemExit(f"measurement failed ({code}):\n{proc.stderr[-3000:]}")
        result = json.loads(proc.stdout.strip().splitlines()[-1])
    rate = result["requests"] / result["seconds"]
    limit = in_flight / latency
    return {**result, "requests_per_s": rate, "limit": limit, "efficiency": rate / limit}


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[2], formatter_class=argparse.RawTextHelpFormatter
    )
    p.add_argument(
        "--in-flight",
        type=int,
        nargs="+",
        default=[8, 32, 128],
        help="in-flight limits (and proposals per round)",
    )
    p.add_argument("--latencies", type=float, nargs="+", default=[0.2, 2.0], help="seconds per answer")
    p.add_argument("--jitter", type=float, default=0.0, help="random share of the latency, e.g. 0.5")
    p.add_argument("-n", "--target", type=int, default=300, help="instructions to grow per measurement")
    p.add_argument("--baseline-repo", type=Path, default=None, help="also measure the code in this folder")
    args = p.parse_args()

    print("| code | in flight | latency s | requests | seconds | requests/s | limit | efficiency |")
    print("|---|---|---|---|---|---|---|---|")
    for latency in args.latencies:
        for in_flight in args.in_flight:
            runs = [("this", REPO)] + ([("baseline", args.baseline_repo)] if args.baseline_repo else [])
            found = {}
            for name, code in runs:
                r = found[name] = measure(code, in_flight, latency, args.jitter, args.target)
                print(
                    f"| {name} | {in_flight} | {latency:g} | {r['requests']} | {r['seconds']:.1f} | "
                    f"{r['requests_per_s']:.1f} | {r['limit']:.0f} | {r['efficiency']:.2f} |",
                    flush=True,
                )
            if "baseline" in found:
                speedup = found["this"]["requests_per_s"] / found["baseline"]["requests_per_s"]
                print(f"| speedup | {in_flight} | {latency:g} | | | {speedup:.2f}x | | |", flush=True)


if __name__ == "__main__":
    main()
