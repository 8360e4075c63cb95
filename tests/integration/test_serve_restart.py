"""kill -9 of the service with a job in flight: restarted, it lists every job, resumes the interrupted
one (or marks it interrupted), loses and repeats no accepted row, and a client that was streaming
gets the rest with ?after=."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fake_openai import FakeOpenAI
from tests.serve_process import ServiceProcess

pytestmark = pytest.mark.integration

KEY = "restart-key-42"
H = {"Authorization": f"Bearer {KEY}"}


def service(teacher: FakeOpenAI, tmp: Path, *extra: str) -> ServiceProcess:
    args = [
        "--data-dir", str(tmp / "data"), "--teacher", "openai", "--base-url", teacher.base_url,
        "--model", "fake", "--cache-path", str(tmp / "cache.sqlite"), "--concurrency", "1", *extra,
    ]  # fmt: skip
    return ServiceProcess(args, keys=[KEY], log=tmp / "serve.log")


def job(client: httpx.Client, job_id: str) -> dict[str, Any]:
    return client.get(f"/v1/jobs/{job_id}", headers=H).json()


def wait_until_finished(client: httpx.Client, job_id: str, timeout: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        j = job(client, job_id)
        if j["state"] not in ("queued", "running"):
            return j
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish: {j}")


def stream_some(url: str, job_id: str, count: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with httpx.stream("GET", f"{url}/v1/jobs/{job_id}/items", headers=H, timeout=120) as s:
        for line in s.iter_lines():
            rows.append(json.loads(line))
            if len(rows) == count:
                break
    return rows


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def teacher() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


def test_kill_9_with_a_job_in_flight_then_restart(teacher: FakeOpenAI, tmp_path: Path):
    body = {"target": 80, "seed": 3, "prompts_per_round": 4}
    teacher.delay = 0.1  # slow enough to kill the server in the middle of the job
    first = service(teacher, tmp_path).start()
    try:
        job_id = httpx.post(f"{first.url}/v1/jobs", json=body, headers=H).json()["id"]
        seen = stream_some(first.url, job_id, 3)  # a client streaming rows as they come
        assert httpx.get(f"{first.url}/v1/jobs/{job_id}", headers=H).json()["state"] == "running"
    finally:
        first.kill9()
    run_dir = tmp_path / "data" / "jobs" / job_id / "run"
    assert not (run_dir / "alpaca.json").exists(), "the job was meant to be cut short"

    teacher.delay = 0.0
    with service(teacher, tmp_path) as second, httpx.Client(base_url=second.url, timeout=120) as client:
        listed = client.get("/v1/jobs", headers=H).json()["jobs"]
        assert [j["id"] for j in listed] == [job_id]
        done = wait_until_finished(client, job_id)
        assert done["state"] == "succeeded", done
        # the client reconnects where it was and gets the rest: no gap, no repeat
        rest = [
            json.loads(x) for x in client.get(f"/v1/jobs/{job_id}/items?after=3", headers=H).iter_lines() if x
        ]
        dataset = client.get(f"/v1/jobs/{job_id}/dataset", headers=H).json()
        assert seen + rest == dataset
        ids = [r["id"] for r in read_jsonl(run_dir / "instructions.jsonl")]
        assert len(ids) == len(set(ids)), "an accepted item was written twice"

        # the same request, uninterrupted, makes the same dataset
        ref_id = client.post("/v1/jobs", json=body, headers=H).json()["id"]
        assert wait_until_finished(client, ref_id)["state"] == "succeeded"
        assert client.get(f"/v1/jobs/{ref_id}/dataset", headers=H).json() == dataset

        # a second job, killed in flight, is marked interrupted by a server that does not resume
        teacher.delay = 0.1
        slow_id = client.post("/v1/jobs", json={**body, "target": 200, "seed": 9}, headers=H).json()["id"]
        kept = stream_some(second.url, slow_id, 2)
        second.kill9()

    with (
        service(teacher, tmp_path, "--on-restart", "interrupt") as third,
        httpx.Client(base_url=third.url, timeout=120) as client,
    ):
        j = job(client, slow_id)
        assert j["state"] == "interrupted" and "server stopped" in j["error"]
        assert {x["id"] for x in client.get("/v1/jobs", headers=H).json()["jobs"]} == {
            job_id,
            ref_id,
            slow_id,
        }
        rows = [json.loads(x) for x in client.get(f"/v1/jobs/{slow_id}/items", headers=H).iter_lines() if x]
        assert rows[:2] == kept and len(rows) >= 2  # what it accepted stays readable
    teacher.delay = 0.0


def test_sigterm_stops_a_job_after_its_round_and_the_next_start_resumes_it(
    teacher: FakeOpenAI, tmp_path: Path
):
    body = {"target": 150, "seed": 4, "prompts_per_round": 4}
    teacher.delay = 0.3  # the job is far from done when the signal comes
    first = service(teacher, tmp_path).start()
    job_id = httpx.post(f"{first.url}/v1/jobs", json=body, headers=H).json()["id"]
    seen = stream_some(first.url, job_id, 2)
    code = first.stop()  # SIGTERM: uvicorn's graceful shutdown, the job's round in flight commits
    assert code in (0, -15) and "Application shutdown complete" in first.log_text()
    assert "stopped by the server's shutdown" in first.log_text()
    run_dir = tmp_path / "data" / "jobs" / job_id / "run"
    committed = json.loads((run_dir / "state.json").read_text())["bootstrap"]["round"]

    teacher.delay = 0.0
    with service(teacher, tmp_path) as second, httpx.Client(base_url=second.url, timeout=120) as client:
        done = wait_until_finished(client, job_id)
        assert done["state"] == "succeeded" and done["progress"]["kept"] >= 150
        rows = [json.loads(x) for x in client.get(f"/v1/jobs/{job_id}/items", headers=H).iter_lines() if x]
        assert rows[:2] == seen and rows == client.get(f"/v1/jobs/{job_id}/dataset", headers=H).json()
    assert f"resuming bootstrap in {run_dir} after round {committed}" in (tmp_path / "serve.log").read_text()
    ids = [r["id"] for r in read_jsonl(run_dir / "instructions.jsonl")]
    assert len(ids) == len(set(ids))
