"""In-process vLLM teacher: engines live inside Ray actors and keep many requests in flight.

    VLLMTeacher(model=None)            # the embedded SmolLM2-135M-Instruct, converted on first use
    VLLMTeacher(model="/models/qwen", replicas=2)         # data parallel: two engines
    VLLMTeacher(model="Qwen/Qwen2.5-7B-Instruct", tensor_parallel=2)   # on GPUs

`VLLMTeacher` implements the Teacher protocol on one `EngineActor` (vllm_actor.py) per replica, placed
as vllm_placement.py says: it sends each request to the least busy replica as its own actor call, so
concurrent `generate` calls from several pipeline coroutines all feed the same engines.

Shutdown: `close()` asks every actor to shut its engine down, then kills the actors and frees their
placement groups (what a killed actor still leaves behind, shm_reaper.py reaps).

vllm and torch are imported inside the actor only: importing this module needs neither.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from typing import Any

import ray

from generator.teachers.base import TeacherRequest, TeacherResponse, failed
from generator.teachers.embedded import EMBEDDED_NAME, resolve_model
from generator.teachers.vllm_actor import SHUTDOWN_TIMEOUT_S, EngineActor, EngineSpec
from generator.teachers.vllm_placement import GPU_MEMORY_UTILIZATION, actor_options, engine_placement_group
from generator.teachers.vllm_requests import has_gpu, request_payload

log = logging.getLogger(__name__)

ENGINE_START_TIMEOUT_S = 900.0  # first start may compile or download; a stuck start must still end


class VLLMTeacher:
    """The Teacher protocol on `replicas` in-process vLLM engines (Ray actors).

    `ray.init` must already have been called. Construction blocks until every engine is up (about
    25-40 s for the embedded model on a CPU host) and raises if one fails to start, since a run cannot
    do anything without its teacher. `max_in_flight` is per replica: each engine keeps up to that many
    requests in its running batch.
    """

    backend = "vllm"

    def __init__(
        self,
        model: str | None = None,
        replicas: int = 1,
        tensor_parallel: int = 1,
        max_model_len: int = 2048,
        max_in_flight: int = 64,
        engine_kwargs: dict[str, Any] | None = None,
        gpu_share: float = 1.0,
    ) -> None:
        if replicas < 1 or tensor_parallel < 1 or max_in_flight < 1:
            raise ValueError("replicas, tensor_parallel and max_in_flight must be >= 1")
        path = resolve_model(model)
        # The name is part of every cache key: keep it stable across machines (not a cache path).
        self.model = EMBEDDED_NAME if model is None or path.endswith(os.sep + EMBEDDED_NAME) else model
        self.model_path = path
        self.replicas = replicas
        self.tensor_parallel = tensor_parallel
        self.max_in_flight = max_in_flight
        self.gpu = has_gpu()
        # Below 1, this teacher's engines share GPUs with another teacher's: a part of each GPU, and
        # that part of its memory (vllm_placement.plan_gpu_shares).
        self.gpu_share = gpu_share
        engine_kwargs = dict(engine_kwargs or {})
        if self.gpu and gpu_share < 1:
            engine_kwargs.setdefault("gpu_memory_utilization", round(GPU_MEMORY_UTILIZATION * gpu_share, 3))
        self._placement_groups: list[Any] = []
        self._actors: list[Any] = []
        self._load = [0] * replicas
        self._sems: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Semaphore]] = {}
        self._closed = False
        self.engine_info: list[dict[str, Any]] = []

        log.warning(
            "starting %d vLLM engine(s) for %s on %s (about 30 s for the embedded model on CPU)",
            replicas,
            self.model,
            "GPU" if self.gpu else "CPU",
        )
        started = time.monotonic()
        try:
            for i in range(replicas):
                spec = EngineSpec(
                    model=path,
                    max_model_len=max_model_len,
                    tensor_parallel=tensor_parallel,
                    gpu=self.gpu,
                    replica=i,
                    replicas=replicas,
                    engine_kwargs=dict(engine_kwargs or {}),
                )
                self._actors.append(self._make_actor(spec, i))
            self.engine_info = ray.get(
                [a.start.remote() for a in self._actors], timeout=ENGINE_START_TIMEOUT_S
            )
        except BaseException:
            self._close_sync()
            raise
        log.warning(
            "vLLM engine(s) ready in %.0f s: %s",
            time.monotonic() - started,
            ", ".join(f"init {info['init_s']} s" for info in self.engine_info),
        )

    def _make_actor(self, spec: EngineSpec, index: int) -> Any:
        pg = None
        if self.gpu:
            pg = engine_placement_group(spec.tensor_parallel, self.gpu_share)
            self._placement_groups.append(pg)  # listed before waiting: a failed wait still frees it
            ray.get(pg.ready(), timeout=ENGINE_START_TIMEOUT_S)
        options = actor_options(spec.tensor_parallel, self.max_in_flight, pg)
        return ray.remote(EngineActor).options(**options).remote(spec)

    # -- Teacher protocol -------------------------------------------------------------------------------

    def _semaphore(self) -> asyncio.Semaphore:
        # One semaphore per event loop: asyncio primitives are bound to the loop that first waits on
        # them, and a teacher may be driven from several loops (tests, benchmarks).
        loop = asyncio.get_running_loop()
        entry = self._sems.get(id(loop))
        if entry is None or entry[0] is not loop:
            entry = (loop, asyncio.Semaphore(self.max_in_flight * self.replicas))
            self._sems[id(loop)] = entry
        return entry[1]

    async def _one(self, request: TeacherRequest) -> TeacherResponse:
        key = request.cache_key(self.backend, self.model)
        started = time.monotonic()
        async with self._semaphore():
            if self._closed:
                return failed(key, "the vLLM teacher is closed")
            replica = min(range(self.replicas), key=self._load.__getitem__)  # least busy engine
            self._load[replica] += 1
            try:
                out = await self._actors[replica].generate_one.remote(request_payload(request))
            except Exception as exc:  # the actor died (OOM, killed): this request fails, not the run
                return failed(
                    key,
                    f"vLLM engine {replica} failed: {type(exc).__name__}: {exc}",
                    latency_s=time.monotonic() - started,
                )
            finally:
                self._load[replica] -= 1
        if out.get("error"):
            return failed(key, str(out["error"]), latency_s=float(out.get("latency_s", 0.0)))
        return TeacherResponse(
            text=out["text"],
            finish_reason=out["finish_reason"],
            prompt_tokens=out["prompt_tokens"],
            completion_tokens=out["completion_tokens"],
            latency_s=out["latency_s"],
            request_key=key,
        )

    async def generate(self, requests: list[TeacherRequest]) -> list[TeacherResponse]:
        """One response per request, in order; failures come back as responses with `error` set."""
        results = await asyncio.gather(*(self._one(r) for r in requests), return_exceptions=True)
        out: list[TeacherResponse] = []
        for request, result in zip(requests, results, strict=True):
            if isinstance(result, BaseException):
                out.append(
                    failed(request.cache_key(self.backend, self.model), f"{type(result).__name__}: {result}")
                )
            else:
                out.append(result)
        return out

    async def close(self) -> None:
        """Shut every engine down, then kill the actors and free their placement groups."""
        if self._closed:
            return
        self._closed = True
        refs = [a.shutdown.remote() for a in self._actors]
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.gather(*refs, return_exceptions=True), SHUTDOWN_TIMEOUT_S + 5)
        self._kill_actors()

    def _close_sync(self) -> None:
        """close() for callers without an event loop (and for a failed constructor)."""
        self._closed = True
        refs = [a.shutdown.remote() for a in self._actors]
        with contextlib.suppress(Exception):
            ray.get(refs, timeout=SHUTDOWN_TIMEOUT_S + 5)
        self._kill_actors()

    def _kill_actors(self) -> None:
        if not ray.is_initialized():  # Ray is gone, and its actors with it (ray.kill would start a new one)
            self._actors, self._placement_groups = [], []
            return
        for actor in self._actors:
            with contextlib.suppress(Exception):
                ray.kill(actor)
        self._actors = []
        if self._placement_groups:
            from ray.util.placement_group import remove_placement_group

            for pg in self._placement_groups:
                with contextlib.suppress(Exception):
                    remove_placement_group(pg)
            self._placement_groups = []
