"""One vLLM engine in a Ray actor: `EngineActor` and the `EngineSpec` it is built from.

Each `EngineActor` owns one vLLM `AsyncLLM` engine (continuous batching: every request handed to it
joins the running batch at the next step); `VLLMTeacher` (vllm_teacher.py) creates one per replica
and sends each request to it as its own actor call.

Shutdown: `shutdown()` stops the engine (vLLM's engine-core process and its `/dev/shm/psm_*`
segments go with it). Killing an actor without that step left 168 MB + 252 MB shared-memory
segments behind (engine-notes A), so the actor also shuts the engine down from `atexit` and on
SIGTERM, and a watchdog process (shm_reaper.py) reaps the engine's processes and segments if the
actor dies without either (SIGKILL, `ray.kill`).

vllm and torch are imported inside the actor's methods only: importing this module needs neither.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import signal
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from generator.teachers.base import SamplingParams
from generator.teachers.shm_reaper import EngineTracker
from generator.teachers.vllm_placement import set_cpu_engine_env
from generator.teachers.vllm_requests import cpu_engine_kwargs, finish_reason, sampling_kwargs

SHUTDOWN_TIMEOUT_S = 20.0  # the pipeline gives teachers 30 s to close before it kills actors


@dataclass
class EngineSpec:
    """Everything an EngineActor needs to build its engine (plain data: it crosses process lines)."""

    model: str
    max_model_len: int = 2048
    tensor_parallel: int = 1
    gpu: bool = False
    replica: int = 0
    replicas: int = 1
    engine_kwargs: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)


class EngineActor:
    """One vLLM AsyncLLM engine inside a Ray actor.

    Construction is cheap; `start()` builds the engine (20-40 s for a small model on CPU) so the
    caller can start every replica at once and see each one's error. `generate_one` is async: the
    actor runs many of them concurrently and the engine batches them.
    """

    def __init__(self, spec: EngineSpec) -> None:
        self.spec = spec
        self.engine: Any = None
        self.tokenizer: Any = None
        self._tracker = EngineTracker()

    # -- lifecycle ------------------------------------------------------------------------------------

    async def start(self) -> dict[str, Any]:
        """Build the engine; returns facts for the log (init seconds, pid, KV cache, CPUs)."""
        started = time.monotonic()
        for key, value in self.spec.env.items():
            os.environ.setdefault(key, value)
        if not self.spec.gpu:
            set_cpu_engine_env(self.spec.replica, self.spec.replicas)
        self._tracker.start()
        threading.Thread(target=self._record_loop, name="engine-recorder", daemon=True).start()

        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        kwargs: dict[str, Any] = {
            "model": self.spec.model,
            "max_model_len": self.spec.max_model_len,
            "tensor_parallel_size": self.spec.tensor_parallel,
            "disable_log_stats": True,
            "enable_log_requests": False,
        }
        if not self.spec.gpu:
            kwargs.update(cpu_engine_kwargs(self.spec.max_model_len))
        else:
            # The actor holds no GPU itself; vLLM's Ray executor puts one worker in each GPU bundle
            # of the placement group this actor runs in.
            kwargs.update(distributed_executor_backend="ray")
        kwargs.update(self.spec.engine_kwargs)
        try:
            self.engine = AsyncLLM.from_engine_args(AsyncEngineArgs(**kwargs))
            self.tokenizer = self.engine.get_tokenizer()
        except BaseException:
            self._tracker.record()  # whatever the failed start left running goes too
            self._shutdown_sync()
            raise
        self._tracker.record()
        # Shut the engine down however this process ends: normal exit (atexit); SIGTERM where the
        # handler can be installed (Ray runs async actor methods off the main thread, where it cannot:
        # then the watchdog is what cleans up after a hard kill).
        atexit.register(self._shutdown_sync)
        with contextlib.suppress(ValueError):
            signal.signal(signal.SIGTERM, self._on_sigterm)
        return {
            "pid": os.getpid(),
            "init_s": round(time.monotonic() - started, 1),
            "model": self.spec.model,
            "dtype": str(kwargs.get("dtype", "auto")),
            "chunked_prefill": bool(kwargs.get("enable_chunked_prefill", True)),
            "kv_cache_gib": os.environ.get("VLLM_CPU_KVCACHE_SPACE") if not self.spec.gpu else None,
            "cpus": os.environ.get("VLLM_CPU_OMP_THREADS_BIND", "auto") if not self.spec.gpu else None,
            "engine_pids": list(self._tracker.pids),
            "shm": sorted(self._tracker.shm),
        }

    def _record_loop(self) -> None:
        """Background thread: keep the watchdog's list current (every 1 s starting, then every 5 s),
        so a kill in the middle of a 30-90 s start-up is covered too, not only one after it."""
        while not self._tracker.closed:
            self._tracker.record()
            time.sleep(1.0 if self.engine is None else 5.0)

    def _on_sigterm(self, signum: int, frame: object) -> None:
        self._shutdown_sync()
        os._exit(0)

    def _shutdown_sync(self) -> None:
        if not self._tracker.close():  # after this no recorder write can bring the state file back
            return
        engine, self.engine = self.engine, None
        if engine is not None:
            with contextlib.suppress(Exception):
                engine.shutdown(timeout=SHUTDOWN_TIMEOUT_S)
        self._tracker.reap()

    async def shutdown(self) -> bool:
        """Stop the engine and its processes; safe to call twice."""
        await asyncio.get_running_loop().run_in_executor(None, self._shutdown_sync)
        return True

    def pid(self) -> int:
        return os.getpid()

    # -- requests -------------------------------------------------------------------------------------

    def _prompt_ids(self, request: dict[str, Any]) -> list[int]:
        if request["kind"] == "chat":
            # Rendered here, with the model's own template, so chat requests look exactly like what
            # an OpenAI-compatible server would send the model.
            text = self.tokenizer.apply_chat_template(
                request["messages"], tokenize=False, add_generation_prompt=True
            )
            # The template already holds the special tokens; adding a BOS again would double it.
            ids = self.tokenizer.encode(text, add_special_tokens=False)
        else:
            ids = self.tokenizer.encode(request["prompt"] or "")
        return list(ids)

    async def generate_one(self, request: dict[str, Any]) -> dict[str, Any]:
        """One request in, one response dict out; errors come back as {"error": ...}, never raised."""
        started = time.monotonic()
        try:
            if self.engine is None:
                raise RuntimeError("the engine is not running (not started, or shut down)")
            from vllm import SamplingParams as VSamplingParams
            from vllm.sampling_params import RequestOutputKind

            ids = self._prompt_ids(request)
            params = SamplingParams(**request["params"])
            room = self.spec.max_model_len - len(ids)
            if room < 1:
                raise ValueError(
                    f"prompt is {len(ids)} tokens, max_model_len is {self.spec.max_model_len}: no room to answer"
                )
            # Clamp like the OpenAI server does, rather than letting the engine reject the request.
            sp = VSamplingParams(
                **sampling_kwargs(params, min(params.max_tokens, room)),
                output_kind=RequestOutputKind.FINAL_ONLY,  # one output per request, no streaming deltas
            )
            prompt: Any = {"prompt_token_ids": ids}
            renderer = getattr(self.engine, "renderer", None)
            if renderer is not None:
                # vLLM 0.32 deprecates raw prompt dicts in generate(); its renderer turns our token
                # ids into the engine input the OpenAI server would build.
                (prompt,) = renderer.render_cmpl([prompt])
            final = None
            async for out in self.engine.generate(prompt, sp, request_id=uuid.uuid4().hex):
                final = out
            if final is None or not final.outputs:
                raise RuntimeError("the engine returned no output")
            choice = final.outputs[0]
            if choice.finish_reason in ("abort", "error"):
                raise RuntimeError(f"the engine ended the request with finish_reason={choice.finish_reason}")
            return {
                "text": choice.text,
                "finish_reason": finish_reason(choice.finish_reason),
                "prompt_tokens": len(ids),
                "completion_tokens": len(choice.token_ids),
                "latency_s": time.monotonic() - started,
            }
        except Exception as exc:
            return {"error": f"{type(exc).__name__}: {exc}", "latency_s": time.monotonic() - started}

    async def generate_many(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Several requests in one actor call, all in flight together (used by benchmarks)."""
        return list(await asyncio.gather(*(self.generate_one(r) for r in requests)))
