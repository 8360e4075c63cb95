"""The same app as a Ray Serve deployment: a local Ray cluster (`ray start --head`), then
`python -m serve --ray-address ADDRESS`, and one generate call over HTTP through Serve's proxy."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from tests.fake_openai import FakeOpenAI
from tests.serve_process import ServiceProcess, free_port

pytestmark = pytest.mark.integration

KEY = "ray-serve-key"


def ray_head(port: int, temp_dir: str, log: Path) -> subprocess.Popen[bytes]:
    """A one-node Ray cluster in its own process group (`ray stop` would stop every Ray on the machine).

    Its own temp dir: `ray start` records its address in `<temp dir>/ray_current_cluster`, and every
    later `ray.init()` without an address on the machine (the other tests') would join it from there.
    """
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    ray = Path(sys.executable).parent / "ray"
    args = [str(ray), "start", "--head", "--block", "--port", str(port), "--num-cpus", "2",
            "--include-dashboard", "false", "--disable-usage-stats", "--temp-dir", temp_dir]  # fmt: skip
    return subprocess.Popen(
        args, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(30)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def test_ray_serve_deployment_answers_a_generate_call(tmp_path: Path):
    port = free_port()
    while 10000 <= port < 20000:  # Ray keeps 10002-19999 for its workers
        port = free_port()
    address_file = Path("/tmp/ray/ray_current_cluster")
    recorded = address_file.read_text() if address_file.exists() else None
    temp_dir = tempfile.mkdtemp(prefix="sr-", dir="/tmp")  # short: Ray's socket paths must fit in 107 bytes
    head = ray_head(port, temp_dir, tmp_path / "ray.log")
    try:
        with FakeOpenAI() as teacher:
            args = [
                "--ray-address", f"127.0.0.1:{port}", "--data-dir", str(tmp_path / "data"),
                "--teacher", "openai", "--base-url", teacher.base_url, "--model", "fake", "--no-cache",
            ]  # fmt: skip
            deadline = time.monotonic() + 120
            while subprocess.run([str(Path(sys.executable).parent / "ray"), "status", "--address", f"127.0.0.1:{port}"],
                                 capture_output=True, env={**os.environ, "RAY_AUTH_MODE": "disabled"}).returncode:  # fmt: skip
                assert time.monotonic() < deadline, (tmp_path / "ray.log").read_text()[-3000:]
                time.sleep(1)
            with ServiceProcess(args, keys=[KEY], log=tmp_path / "serve.log").start(timeout=240) as svc:
                r = httpx.post(
                    f"{svc.url}/v1/generate", json={"target": 4, "seed": 2},
                    headers={"Authorization": f"Bearer {KEY}"}, timeout=120,
                )  # fmt: skip
                assert r.status_code == 200, r.text
                assert r.json()["stats"]["counts"]["dataset_instructions"] == 4
                assert len(r.json()["rows"]) == r.json()["stats"]["counts"]["dataset_rows"]
                assert "Ray Serve" in svc.log_text()  # served by Serve's proxy, not uvicorn of its own
                assert httpx.get(f"{svc.url}/v1/jobs", timeout=30).status_code == 401
            # the replica kept its state where the server said
            assert (tmp_path / "data" / "jobs.sqlite").exists()
            assert any((tmp_path / "data" / "jobs").iterdir())
    finally:
        stop_group(head)
        shutil.rmtree(temp_dir, ignore_errors=True)
    assert (address_file.read_text() if address_file.exists() else None) == recorded
