"""What the REST service costs on top of the library call it wraps, under concurrent clients.

    .venv/bin/python benchmarks/serve_load.py                        # 1, 8, 32 clients, both teachers
    .venv/bin/python benchmarks/serve_load.py --clients 8 --teachers synthetic --target 20

For each teacher (the synthetic zero-latency one, and the OpenAI-compatible test server in its own
process) and each number of concurrent clients N, three ways of growing the same small datasets:

- direct: N threads of this process call `generator.run.run(config, workers=pool)` (the library
  entry point the service calls, "grow"), sharing one worker pool as the service's jobs do;
- generate: N clients POST /v1/generate to the service (a real process on 127.0.0.1) and wait for rows;
- stream: N clients POST /v1/jobs and read the job's rows as NDJSON until the job ends.

Every client makes `--requests` requests, one after another, each with its own seed (the same seeds
in the three ways, so the same rows), after one untimed request per client that warms the way's Ray
worker processes. Latency is per request, from its start until its last row;
rows/s is every row over the phase's wall time. The overhead is the service's p50 against the direct
p50 of the same N and teacher, measured in the same run (goal: at most 5%).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ["TQDM_DISABLE"] = "1"  # no progress bars from the direct runs (read when tqdm is imported)

from generator.config import RunConfig  # noqa: E402
from generator.ray_runtime import ray_runtime  # noqa: E402
from generator.run import run  # noqa: E402
from generator.teachers.scripted import ScriptedTeacher  # noqa: E402
from generator.worker_pool import start_workers, teacher_settings  # noqa: E402
from tests.serve_process import free_port  # noqa: E402

SEEDS = REPO / "seeds" / "175.jsonl"
ENV = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONPATH": str(REPO)}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        args, cwd=REPO, env=ENV, stdout=log.open("ab"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
    )


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the service exited with {proc.returncode}")
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError("the service did not get ready")


def clients(n: int, requests: int, one: Callable[[int], int]) -> dict[str, float]:
    """n threads, each making `requests` calls of `one(seed) -> rows`; latencies and rows/s."""
    latencies: list[float] = []
    rows = [0]
    lock = threading.Lock()
    errors: list[BaseException] = []

    def client(c: int) -> None:
        for r in range(requests):
            began = time.perf_counter()
            try:
                got = one(1000 * c + r)
            except BaseException as exc:
                errors.append(exc)
                return
            with lock:
                latencies.append(time.perf_counter() - began)
                rows[0] += got

    began = time.perf_counter()
    threads = [threading.Thread(target=client, args=(c,)) for c in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - began
    if errors:
        raise errors[0]
    return {
        "p50": statistics.median(latencies),
        "p99": percentile(latencies, 0.99),
        "rows_s": rows[0] / wall,
        "rows": rows[0],
    }


def measure(teacher: str, args: argparse.Namespace, tmp: Path) -> list[dict[str, Any]]:
    """Start the service (and the test server) for one teacher; measure the three ways at each N."""
    concurrency = max(args.clients)
    fake = None
    factory = None
    if teacher == "http":
        fake = subprocess.Popen(
            [sys.executable, "-m", "tests.fake_openai", "--port", "0", "--delay", str(args.delay)],
            cwd=REPO, env=ENV, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert fake.stdout is not None
        base_url = fake.stdout.readline().decode().strip()
        run_fields: dict[str, Any] = {
            "teacher": "openai",
            "base_url": base_url,
            "model": "fake",
            "cache": False,
        }
        server_args = [sys.executable, "-m", "serve", "--no-auth", "--teacher", "openai", "--base-url", base_url,
                       "--model", "fake", "--no-cache", "--max-queued", "1000", "--max-jobs-per-key", "1000"]  # fmt: skip
    else:
        run_fields = {"teacher": "openai", "model": "scripted", "cache": False}
        server_args = [sys.executable, str(REPO / "benchmarks" / "serve_app.py")]
        factory = ScriptedTeacher
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    service = start([*server_args, "--port", str(port), "--data-dir", str(tmp / f"svc-{teacher}"),
                     "--concurrency", str(concurrency)], tmp / f"svc-{teacher}.log")  # fmt: skip
    pool = start_workers(teacher_settings(RunConfig(seeds=SEEDS, **run_fields)), factory)
    http = httpx.Client(base_url=url, timeout=600, limits=httpx.Limits(max_connections=concurrency + 4))
    counter = iter(range(10**9))

    def direct(seed: int) -> int:
        out = tmp / f"direct-{teacher}-{next(counter)}"
        cfg = RunConfig(seeds=SEEDS, out=out, target=args.target, seed=seed, **run_fields)
        return int(run(cfg, workers=pool)["counts"]["dataset_rows"])

    def generate(seed: int) -> int:
        r = http.post("/v1/generate", json={"target": args.target, "seed": seed})
        r.raise_for_status()
        return len(r.json()["rows"])

    def stream(seed: int) -> int:
        r = http.post("/v1/jobs", json={"target": args.target, "seed": seed})
        r.raise_for_status()
        with http.stream("GET", f"/v1/jobs/{r.json()['id']}/items") as s:
            return sum(1 for line in s.iter_lines() if line)

    results = []
    try:
        wait_ready(url, service)
        direct(0), generate(0), stream(0)  # warm up: worker processes, imports, caches
        for n in args.clients:
            row: dict[str, Any] = {"teacher": teacher, "clients": n}
            for name, one in (("direct", direct), ("generate", generate), ("stream", stream)):
                # Untimed first: N requests at once start N pool actors, so N Ray worker processes;
                # warmed, each way reuses its Ray's idle workers as the others do.
                clients(n, 1, one)
                row[name] = clients(n, args.requests, one)
                print(f"{teacher:9} {n:3} clients  {name:8} p50 {row[name]['p50']:.3f} s  "
                      f"p99 {row[name]['p99']:.3f} s  {row[name]['rows_s']:.1f} rows/s", flush=True)  # fmt: skip
            for name in ("generate", "stream"):
                row[f"{name}_overhead"] = row[name]["p50"] / row["direct"]["p50"] - 1
            results.append(row)
    finally:
        http.close()
        pool.stop()
        service.terminate()
        service.wait(60)
        if fake is not None:
            fake.terminate()
            fake.wait(30)
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--teachers", nargs="+", default=["synthetic", "http"], choices=["synthetic", "http"])
    p.add_argument("--target", type=int, default=20, help="instructions per request (generate's limit is 50)")
    p.add_argument("--requests", type=int, default=3, help="requests per client")
    p.add_argument("--delay", type=float, default=0.0, help="the test server's latency per request (s)")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="serve-load-"))
    results: list[dict[str, Any]] = []
    with ray_runtime(None):
        for teacher in args.teachers:
            results += measure(teacher, args, tmp)

    print()
    print(
        "| teacher | clients | direct p50 / p99 (s) | generate p50 / p99 (s) | stream p50 / p99 (s) | rows/s direct / generate / stream | overhead at p50: generate, stream |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in results:
        d, g, s = r["direct"], r["generate"], r["stream"]
        print(f"| {r['teacher']} | {r['clients']} | {d['p50']:.3f} / {d['p99']:.3f} | {g['p50']:.3f} / {g['p99']:.3f} | "
              f"{s['p50']:.3f} / {s['p99']:.3f} | {d['rows_s']:.0f} / {g['rows_s']:.0f} / {s['rows_s']:.0f} | "
              f"{r['generate_overhead']:+.1%}, {r['stream_overhead']:+.1%} |")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
