"""Per-key limits and a full queue: 429 with Retry-After, not a slower service; target limits: 422."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fake_openai import FakeOpenAI
from tests.serve_process import ServiceProcess

pytestmark = pytest.mark.integration

A, B, C = "limit-key-a", "limit-key-b", "limit-key-c"


def h(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def teacher() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(delay=0.5) as server:  # slow: jobs stay running while the test fills the queue
        yield server


def test_key_limits_and_a_full_queue(teacher: FakeOpenAI, tmp_path: Path):
    args = [
        "--data-dir", str(tmp_path / "data"), "--teacher", "openai", "--base-url", teacher.base_url,
        "--model", "fake", "--no-cache", "--concurrency", "1", "--max-queued", "1",
        "--max-jobs-per-key", "2", "--max-target", "100", "--generate-max-target", "10",
    ]  # fmt: skip
    with (
        ServiceProcess(args, keys=[A, B, C], log=tmp_path / "serve.log") as svc,
        httpx.Client(base_url=svc.url, timeout=60) as client,
    ):
        r = client.post("/v1/jobs", json={"target": 101}, headers=h(A))
        assert (
            r.status_code == 422
            and r.json()["error"] == "target: at most 100 for this request on this server, got 101"
        )
        r = client.post("/v1/generate", json={"target": 11}, headers=h(A))
        assert r.status_code == 422 and r.json()["error"].startswith("target: at most 10")

        running = client.post("/v1/jobs", json={"target": 100}, headers=h(A)).json()["id"]
        deadline = time.monotonic() + 60
        while client.get(f"/v1/jobs/{running}", headers=h(A)).json()["state"] != "running":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        queued = client.post("/v1/jobs", json={"target": 100}, headers=h(A))
        assert queued.status_code == 202 and queued.json()["state"] == "queued"

        # this key has two jobs queued or running: its third is refused, with a time to come back
        r = client.post("/v1/jobs", json={"target": 5}, headers=h(A))
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
        assert "this key has 2 jobs queued or running" in r.json()["error"]
        # another key is refused too, for another reason: the queue (1) is full
        for path in ("/v1/jobs", "/v1/generate"):
            started = time.monotonic()
            r = client.post(path, json={"target": 5}, headers=h(B))
            assert r.status_code == 429 and "the server is busy" in r.json()["error"]
            assert time.monotonic() - started < 5  # refused at once, not slowed down
            assert int(r.headers["retry-after"]) > 0

        # cancel the queued job: it leaves the queue at once, never runs, and frees the key's slot
        r = client.delete(f"/v1/jobs/{queued.json()['id']}", headers=h(A))
        assert r.status_code == 200 and r.json()["state"] == "cancelled"
        assert r.json()["started_at"] is None and r.json()["error"] == "cancelled before it started"
        r = client.post("/v1/jobs", json={"target": 5}, headers=h(B))  # the queue has room again
        assert r.status_code == 202 and r.json()["state"] == "queued"
        client.delete(f"/v1/jobs/{r.json()['id']}", headers=h(B))
        client.delete(f"/v1/jobs/{running}", headers=h(A))
        deadline = time.monotonic() + 60
        while client.get(f"/v1/jobs/{running}", headers=h(A)).json()["state"] != "cancelled":
            assert time.monotonic() < deadline, "the running job was not cancelled"
            time.sleep(0.1)
        teacher.delay = 0.0
        r = client.post("/v1/generate", json={"target": 3}, headers=h(C))
        assert r.status_code == 200 and r.json()["stats"]["counts"]["dataset_instructions"] == 3
